//! Deletion safety: a sync that would drop many cached objects at once is held until approved.

use std::collections::HashSet;

use super::snapshot::Snapshot;

/// Limits; 0 turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletionLimits {
    pub max_objects: u64,
    pub max_percent: u64,
}

/// A held sync, with the numbers an administrator needs to decide.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the new snapshot would remove {deleted} of {previous} cached objects (limits: {max_objects} objects, {max_percent} %); \
     set ldapsync.io/approve-deletions to {content_hash} to accept it"
)]
pub struct DeletionHeld {
    pub previous: u64,
    pub next: u64,
    pub deleted: u64,
    pub max_objects: u64,
    pub max_percent: u64,
    pub content_hash: String,
    /// Ids of a few of the objects it would remove (the smallest, so every pod shows the same).
    pub removed_sample: Vec<String>,
}

/// How many removed objects a hold names.
pub const REMOVED_SAMPLE: usize = 5;

/// Objects of `previous` that `next` no longer has (by stable id), and the smallest few of them.
pub fn deleted_objects(previous: &Snapshot, next: &Snapshot) -> (u64, Vec<String>) {
    let kept: HashSet<&str> = next.objects.iter().map(|o| o.id.as_str()).collect();
    let mut count = 0;
    let mut sample: Vec<&str> = Vec::with_capacity(REMOVED_SAMPLE + 1);
    for id in previous.objects.iter().map(|o| &o.id).filter(|id| !kept.contains(id.as_str())) {
        count += 1;
        if sample.len() < REMOVED_SAMPLE || sample.last().is_some_and(|last| id.as_str() < *last) {
            let at = sample.partition_point(|s| *s < id.as_str());
            sample.insert(at, id);
            sample.truncate(REMOVED_SAMPLE);
        }
    }
    (count, sample.into_iter().map(str::to_owned).collect())
}

/// Whether an approval annotation names `hash`: one content hash, or several separated by commas
/// (pods holding different content, approved together).
pub fn approval_names(approval: &str, hash: &str) -> bool {
    approval.split(',').any(|a| a.trim() == hash)
}

/// Checks `next` against `previous`. `approved_hash` lets exactly the snapshot with that hash through.
pub fn check_deletions(
    previous: Option<&Snapshot>,
    next: &Snapshot,
    next_hash: &str,
    limits: DeletionLimits,
    approved_hash: Option<&str>,
) -> Result<u64, DeletionHeld> {
    let Some(previous) = previous else {
        return Ok(0);
    };
    let (deleted, removed_sample) = deleted_objects(previous, next);
    let total = previous.objects.len() as u64;
    let over_count = limits.max_objects > 0 && deleted > limits.max_objects;
    let over_percent = limits.max_percent > 0 && total > 0 && deleted * 100 > limits.max_percent * total;
    if (over_count || over_percent) && !approved_hash.is_some_and(|a| approval_names(a, next_hash)) {
        return Err(DeletionHeld {
            previous: total,
            next: next.objects.len() as u64,
            deleted,
            max_objects: limits.max_objects,
            max_percent: limits.max_percent,
            content_hash: next_hash.to_owned(),
            removed_sample,
        });
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::snapshot::{ConnectionRef, DirObject, ObjectKind};

    fn snap(ids: std::ops::Range<u32>) -> Snapshot {
        Snapshot {
            connection: ConnectionRef::default(),
            domain: String::new(),
            search_base: String::new(),
            taken_at: 0,
            server: String::new(),
            objects: ids
                .map(|i| DirObject {
                    kind: ObjectKind::User,
                    dn: format!("CN=u{i}"),
                    id: format!("id{i}"),
                    account_name: None,
                    principal_name: None,
                    display_name: None,
                    disabled: false,
                    primary_address: None,
                    addresses: vec![],
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

    const DEFAULT: DeletionLimits = DeletionLimits { max_objects: 500, max_percent: 20 };

    #[test]
    fn a_hold_names_the_smallest_removed_ids() {
        let previous = snap(0..100);
        let held = check_deletions(Some(&previous), &snap(50..60), "h1", DEFAULT, None).expect_err("held");
        assert_eq!(held.deleted, 90);
        assert_eq!(held.removed_sample, ["id0", "id1", "id10", "id11", "id12"]);
    }

    #[test]
    fn table_of_limits() {
        let cases = [
            ("first sync", None, snap(0..10), DEFAULT, None, Ok(0)),
            ("small change", Some(snap(0..1000)), snap(10..1000), DEFAULT, None, Ok(10)),
            ("exactly 20 %", Some(snap(0..100)), snap(20..100), DEFAULT, None, Ok(20)),
            ("over 20 %", Some(snap(0..100)), snap(21..100), DEFAULT, None, Err(21)),
            ("over 500", Some(snap(0..10_000)), snap(501..10_000), DEFAULT, None, Err(501)),
            ("everything gone", Some(snap(0..10)), snap(0..0), DEFAULT, None, Err(10)),
            (
                "limits off",
                Some(snap(0..10)),
                snap(0..0),
                DeletionLimits { max_objects: 0, max_percent: 0 },
                None,
                Ok(10),
            ),
            ("approved", Some(snap(0..10)), snap(0..0), DEFAULT, Some("h1"), Ok(10)),
            ("approval of another snapshot", Some(snap(0..10)), snap(0..0), DEFAULT, Some("h0"), Err(10)),
            ("approved in a list", Some(snap(0..10)), snap(0..0), DEFAULT, Some("h0,h1"), Ok(10)),
        ];
        for (name, prev, next, limits, approval, want) in cases {
            let got = check_deletions(prev.as_ref(), &next, "h1", limits, approval).map_err(|h| h.deleted);
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn the_hold_message_names_the_numbers_and_the_hash() {
        let held = check_deletions(Some(&snap(0..100)), &snap(50..100), "abc123", DEFAULT, None).expect_err("held");
        assert_eq!((held.previous, held.next, held.deleted), (100, 50, 50));
        let msg = held.to_string();
        assert!(msg.contains("remove 50 of 100") && msg.contains("abc123"), "{msg}");
    }
}
