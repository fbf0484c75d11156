#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout, unreachable_pub)] // test code states its expectations
//! The checked-in CRDs must equal what `ldapsync crd` generates from the Rust types.

#[test]
fn checked_in_crds_equal_generated_output() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/crds/ldapsync.io_crds.yaml");
    let checked_in = std::fs::read_to_string(path).expect("crds/ldapsync.io_crds.yaml is readable");
    let generated = ldapsync::api::crds_yaml().expect("CRDs render");
    assert!(
        checked_in == generated,
        "crds/ldapsync.io_crds.yaml is out of date: run `cargo run -- crd > crds/ldapsync.io_crds.yaml`"
    );
}

#[test]
fn binary_prints_the_same_crds() {
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_ldapsync")).arg("crd").output().expect("ldapsync crd runs");
    assert!(out.status.success(), "ldapsync crd failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), ldapsync::api::crds_yaml().expect("CRDs render"));
}
