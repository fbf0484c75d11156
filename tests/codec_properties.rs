//! Property tests of the snapshot format (cargo-fuzz needs a nightly toolchain, which this machine
//! does not have): any snapshot round-trips exactly and deterministically, and the decoder returns
//! an error — never panics — on arbitrary or damaged bytes.

use ldapsync::domain::codec::{decode, encode};
use ldapsync::domain::snapshot::{ConnectionRef, DirObject, ObjectKind, Snapshot};
use proptest::prelude::*;

fn object() -> impl Strategy<Value = DirObject> {
    (
        prop_oneof![Just(ObjectKind::User), Just(ObjectKind::Contact), Just(ObjectKind::Group)],
        "\\PC{0,40}",
        "[0-9a-f-]{0,36}",
        proptest::option::of("\\PC{0,20}"),
        proptest::option::of("\\PC{0,30}"),
        any::<bool>(),
        proptest::collection::vec("[a-z0-9.]{1,10}@[a-z]{1,8}\\.test", 0..4),
        proptest::collection::vec(0u32..50, 0..5),
    )
        .prop_map(|(kind, dn, id, account_name, display_name, disabled, addresses, member_of)| DirObject {
            kind,
            dn,
            id,
            principal_name: account_name.as_ref().map(|a| format!("{a}@example.test")),
            account_name,
            display_name,
            disabled,
            primary_address: addresses.first().cloned(),
            addresses,
            member_of,
        })
}

fn snapshot() -> impl Strategy<Value = Snapshot> {
    (proptest::collection::vec(object(), 0..60), "\\PC{0,20}", any::<i64>(), any::<u64>()).prop_map(
        |(objects, server, taken_at, unresolved_members)| Snapshot {
            connection: ConnectionRef { namespace: "ns".into(), name: "c".into(), uid: "u".into() },
            domain: "example.test".into(),
            search_base: "dc=example,dc=test".into(),
            taken_at,
            server,
            objects,
            unresolved_members,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_snapshot_round_trips_deterministically(s in snapshot()) {
        let a = encode(&s).expect("encode");
        let b = encode(&s).expect("encode again");
        prop_assert_eq!(&a.bytes, &b.bytes);
        prop_assert_eq!(decode(&a.bytes).expect("decode"), s);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes);
    }

    #[test]
    fn damaged_snapshots_are_refused(s in snapshot(), at in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let mut bytes = encode(&s).expect("encode").bytes;
        let i = at.index(bytes.len());
        bytes[i] ^= flip;
        prop_assert!(decode(&bytes).is_err(), "a flipped byte at {} was accepted", i);
    }
}
