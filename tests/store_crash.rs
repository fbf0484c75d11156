#![allow(unsafe_code)] // fork and _exit: a child killed mid-write, to prove the store crash-safe.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout, unreachable_pub)]
//! A writer killed with SIGKILL at any point of a snapshot write leaves the old or the new snapshot,
//! whole and valid — never a torn one. The writer is a forked child that replaces the snapshot in a
//! loop; the parent kills it after a random delay, 150 times.

use ldapsync::domain::codec;
use ldapsync::domain::snapshot::{ConnectionRef, DirObject, ObjectKind, Snapshot};
use ldapsync::store::local::LocalStore;

fn snapshot(tag: &str, n: u32) -> Snapshot {
    Snapshot {
        connection: ConnectionRef { namespace: "ns".into(), name: "crash".into(), uid: "crash-uid".into() },
        domain: "example.test".into(),
        search_base: "dc=example,dc=test".into(),
        taken_at: 0,
        server: tag.into(),
        objects: (0..n)
            .map(|i| DirObject {
                kind: ObjectKind::User,
                dn: format!("uid=u{i},dc=example,dc=test"),
                id: format!("{tag}-{i}"),
                account_name: Some(format!("u{i}")),
                principal_name: None,
                display_name: Some(format!("{tag} user {i}")),
                disabled: false,
                primary_address: Some(format!("u{i}@example.test")),
                addresses: vec![format!("u{i}@example.test")],
                sid: None,
                primary_group_sid: None,
            })
            .map(std::sync::Arc::new)
            .collect(),
        memberships: Default::default(),
        unresolved_members: 0,
        foreign_members: Vec::new(),
        sync_state: None,
    }
}

/// A small xorshift generator: the kill points differ from run to run but need no extra crate.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn sigkill_during_writes_leaves_the_old_or_the_new_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let old = codec::encode(&snapshot("old", 20_000)).expect("encode");
    let new = codec::encode(&snapshot("new", 25_000)).expect("encode");
    LocalStore::open(dir.path()).expect("store").write("crash-uid", &old).expect("first write");
    let mut seed =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(7, |d| d.as_nanos() as u64) | 1;
    let (mut saw_old, mut saw_new) = (0, 0);
    for round in 0..150 {
        // SAFETY: the child only writes files and exits; it never returns into the test harness.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let store = match LocalStore::open(dir.path()) {
                Ok(s) => s,
                Err(_) => unsafe { libc::_exit(3) },
            };
            loop {
                for encoded in [&new, &old] {
                    if store.write("crash-uid", encoded).is_err() {
                        unsafe { libc::_exit(2) };
                    }
                }
            }
        }
        let delay_us = next(&mut seed) % 20_000;
        std::thread::sleep(std::time::Duration::from_micros(delay_us));
        let mut status = 0;
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, &mut status, 0);
        }
        assert!(libc::WIFSIGNALED(status), "round {round}: the writer exited on its own (status {status})");
        let store = LocalStore::open(dir.path()).expect("reopen");
        let loaded =
            store.load("crash-uid").unwrap_or_else(|e| panic!("round {round}: torn snapshot: {e}")).expect("present");
        match loaded.hash.as_str() {
            h if h == old.hash => saw_old += 1,
            h if h == new.hash => saw_new += 1,
            other => panic!("round {round}: unknown snapshot {other}"),
        }
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "round {round}: temporary files left after reopening: {leftovers:?}");
    }
    assert!(saw_old > 0 && saw_new > 0, "kills should land on both sides: old {saw_old}, new {saw_new}");
}
