//! Every manifest under examples/ parses, and its search base and filters are valid.

#[test]
fn example_manifests_are_valid() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).expect("examples/ exists") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let (connection, spec) = ldapsync::cli::load_manifest(&path).unwrap_or_else(|e| panic!("{e}"));
        assert!(!connection.name.is_empty());
        ldapsync::domain::dn::Dn::parse(&spec.search_base).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        ldapsync::domain::profile::read_plan(&spec).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        seen += 1;
    }
    assert!(seen >= 3, "only {seen} examples");
}
