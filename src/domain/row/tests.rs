use super::*;
use crate::domain::schedule::default_schedule;
use crate::domain::sync_plan::{Due, Trigger, next_sync, retry_delay};

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn attempt(started: &str, request: Option<&'static str>) -> Attempt<'static> {
    Attempt { pod: "gw-0", generation: Some(3), started: ts(started), request }
}

fn facts(request: Option<&'static str>, approval: Option<&'static str>) -> ConnectionFacts<'static> {
    ConnectionFacts { suspended: false, generation: 3, request, approval }
}

fn synced(duplicates: &DuplicateReport) -> Outcome<'_> {
    Outcome::Synced {
        server: "dc1.corp.test:389",
        site: Some("hq"),
        objects: 12,
        counts: Counts { users: 10, contacts: 1, groups: 1, recipients: 0, addresses: 14 },
        duplicates,
        snapshot_hash: "file-hash",
        content_hash: "content-hash",
        size: 4096,
        took: Duration::from_millis(1500),
        read: &FULL_READ,
    }
}

static FULL_READ: ReadSummary =
    ReadSummary { mode: SyncMode::Full, full_reason: None, entries_read: 12, changes: 0, state: None, deletions: None };

#[test]
fn a_delta_that_changed_nothing_keeps_what_the_row_shows_of_the_content() {
    use crate::domain::incremental::{ChangeTracking, FullReason, Watermark};
    let duplicates = DuplicateReport::default();
    let mut memory = WorkerMemory::default();
    let first = memory.record(&attempt("2026-01-01T00:00:00Z", None), &synced(&duplicates), ts("2026-01-01T00:00:02Z"));
    assert_eq!(first.last_sync.as_ref().map(|s| s.mode.as_str()), Some("Full"));
    assert_eq!(first.last_full_sync_time, Some(Time(ts("2026-01-01T00:00:02Z"))));
    let state = SyncState {
        tracking: ChangeTracking::Syncrepl,
        server: "ldap1:389".into(),
        server_identity: String::new(),
        schema: String::new(),
        plan: "p".into(),
        watermark: Watermark::Cookie(b"c".to_vec()),
        full_at: ts("2026-01-01T00:00:02Z").as_second(),
    };
    let read =
        ReadSummary { mode: SyncMode::Incremental, entries_read: 1, state: Some(state.clone()), ..FULL_READ.clone() };
    let unchanged =
        Outcome::Unchanged { server: "ldap1:389", site: None, took: Duration::from_millis(20), read: &read };
    let row = memory.record(&attempt("2026-01-01T00:05:00Z", None), &unchanged, ts("2026-01-01T00:05:01Z"));
    assert_eq!(row.phase, Some(NodePhase::Synced));
    assert_eq!(row.content_hash.as_deref(), Some("content-hash"), "the content is what it was");
    assert_eq!(row.counts, first.counts);
    assert_eq!(row.last_success_time, Some(Time(ts("2026-01-01T00:05:01Z"))));
    assert_eq!(row.last_full_sync_time, first.last_full_sync_time, "the content still descends from that full read");
    let summary = row.last_sync.expect("summary");
    assert_eq!((summary.mode.as_str(), summary.entries_read, summary.changes_applied), ("Incremental", 1, 0));
    assert_eq!(memory.sync_state, Some(state));
    assert!(row.message.as_deref().is_some_and(|m| m.contains("no changes")), "{:?}", row.message);
    let periodic = ReadSummary { full_reason: Some(FullReason::Periodic), ..FULL_READ.clone() };
    let duplicates = DuplicateReport::default();
    let Outcome::Synced { server, site, objects, counts, duplicates, snapshot_hash, content_hash, size, took, .. } =
        synced(&duplicates)
    else {
        unreachable!()
    };
    let full = Outcome::Synced {
        server,
        site,
        objects,
        counts,
        duplicates,
        snapshot_hash,
        content_hash,
        size,
        took,
        read: &periodic,
    };
    let row = memory.record(&attempt("2026-01-02T00:05:00Z", None), &full, ts("2026-01-02T00:06:00Z"));
    assert_eq!(row.last_sync.and_then(|s| s.full_reason).as_deref(), Some("Periodic"));
    assert_eq!(memory.sync_state, None, "a read without tracking leaves no state to continue from");
}

fn held() -> DeletionHeld {
    DeletionHeld {
        previous: 100,
        next: 10,
        deleted: 90,
        max_objects: 50,
        max_percent: 10,
        content_hash: "c1".into(),
        removed_sample: vec!["id-1".into()],
    }
}

#[test]
fn the_first_sync_shows_a_syncing_row_and_later_ones_do_not() {
    let mut memory = WorkerMemory::default();
    let first = attempt("2026-12-01T10:00:00Z", None);
    let row = memory.first_row(&first).expect("first row");
    assert_eq!((row.phase, row.observed_generation), (Some(NodePhase::Syncing), Some(3)));
    let dups = DuplicateReport::default();
    memory.record(&first, &synced(&dups), ts("2026-12-01T10:00:02Z"));
    assert_eq!(memory.first_row(&first), None);
}

#[test]
fn a_success_fills_the_row_and_resets_the_retries() {
    let mut memory = WorkerMemory { failures: 3, ..WorkerMemory::default() };
    let dups = DuplicateReport { user_names: 1, addresses: 2, examples: vec!["a@corp.test: x, y".into()] };
    let row = memory.record(&attempt("2026-12-01T10:00:00Z", Some("r1")), &synced(&dups), ts("2026-12-01T10:00:02Z"));
    assert_eq!(row.phase, Some(NodePhase::Synced));
    assert_eq!(row.server.as_deref(), Some("dc1.corp.test:389"));
    assert_eq!(row.counts.as_ref().map(|c| (c.users, c.addresses)), Some((10, 14)));
    assert_eq!(row.duplicates.as_ref().map(|d| d.user_names + d.addresses), Some(3));
    assert_eq!(row.content_hash.as_deref(), Some("content-hash"));
    assert_eq!(row.snapshot_hash.as_deref(), Some("file-hash"));
    assert_eq!(row.message.as_deref(), Some("synced 12 objects in 1.5 s"));
    assert_eq!(row.last_handled_sync_request.as_deref(), Some("r1"));
    assert_eq!((memory.failures, memory.handled_generation), (0, Some(3)));
    assert_eq!(memory.last_sync, Some(ts("2026-12-01T10:00:02Z")));
}

#[test]
fn a_failure_keeps_what_is_served_and_says_why() {
    let mut memory = WorkerMemory::default();
    let dups = DuplicateReport::default();
    memory.record(&attempt("2026-12-01T10:00:00Z", None), &synced(&dups), ts("2026-12-01T10:00:02Z"));
    let failed =
        Outcome::Failed { reason: Reason::NoDomainControllerReachable, message: "dc1: refused".into(), cached: true };
    let row = memory.record(&attempt("2026-12-01T10:30:00Z", None), &failed, ts("2026-12-01T10:30:05Z"));
    assert_eq!(row.phase, Some(NodePhase::Stale));
    assert_eq!(row.reason.as_deref(), Some("NoDomainControllerReachable"));
    assert_eq!(row.server.as_deref(), Some("dc1.corp.test:389"), "the served snapshot's server stays");
    assert_eq!(row.last_success_time, Some(Time(ts("2026-12-01T10:00:02Z"))));
    assert_eq!((memory.failures, memory.last_attempt), (1, Some(ts("2026-12-01T10:30:00Z"))));

    let uncached = Outcome::Failed { reason: Reason::AuthenticationFailed, message: "52e".into(), cached: false };
    let row =
        WorkerMemory::default().record(&attempt("2026-12-01T10:00:00Z", None), &uncached, ts("2026-12-01T10:00:01Z"));
    assert_eq!(row.phase, Some(NodePhase::Failed));
}

#[test]
fn failures_drive_retries_with_backoff() {
    let mut memory = WorkerMemory::default();
    let failed = Outcome::Failed { reason: Reason::Timeout, message: "slow".into(), cached: false };
    let schedule = default_schedule();
    for n in 1..=3u32 {
        memory.record(&attempt("2026-12-01T10:00:00Z", None), &failed, ts("2026-12-01T10:00:01Z"));
        let due = next_sync(memory.plan(&schedule, facts(None, None), ts("2026-12-01T10:00:01Z"), Duration::ZERO));
        let at = ts("2026-12-01T10:00:00Z").checked_add(retry_delay(n)).expect("time");
        assert_eq!(due, Due::At(at, Trigger::Retry), "after {n} failures");
    }
}

#[test]
fn refused_credentials_are_not_retried_until_the_spec_or_a_request_changes() {
    let mut memory = WorkerMemory::default();
    let schedule = default_schedule();
    let refused = Outcome::Failed { reason: Reason::InvalidCredentials, message: "data 52e".into(), cached: true };
    let row = memory.record(&attempt("2026-12-01T10:00:00Z", None), &refused, ts("2026-12-01T10:00:01Z"));
    assert_eq!(row.reason.as_deref(), Some("InvalidCredentials"));
    assert!(row.message.as_deref().is_some_and(|m| m.starts_with("data 52e; not retried")), "{row:?}");
    // Hours later: still only the Secret is looked at, every 30 s after the last look.
    let later = ts("2026-12-01T14:00:00Z");
    let due = next_sync(memory.plan(&schedule, facts(None, None), later, Duration::ZERO));
    assert_eq!(due, Due::Now(Trigger::CredentialsCheck));
    memory.credentials_unchanged(later);
    let due = next_sync(memory.plan(&schedule, facts(None, None), later, Duration::ZERO));
    assert_eq!(due, Due::At(ts("2026-12-01T14:00:30Z"), Trigger::CredentialsCheck));
    // A sync request or a new spec is tried.
    let due = next_sync(memory.plan(&schedule, facts(Some("r9"), None), later, Duration::ZERO));
    assert_eq!(due, Due::Now(Trigger::Requested));
    let new_spec = ConnectionFacts { generation: 4, ..facts(None, None) };
    assert_eq!(next_sync(memory.plan(&schedule, new_spec, later, Duration::ZERO)), Due::Now(Trigger::Retry));
    // Another failure cause, or a success, ends the wait.
    let unreachable = Outcome::Failed { reason: Reason::Timeout, message: "slow".into(), cached: true };
    memory.record(&attempt("2026-12-01T14:00:00Z", None), &unreachable, ts("2026-12-01T14:00:05Z"));
    assert_eq!(memory.credentials_refused, None);
    memory.record(&attempt("2026-12-01T14:01:00Z", None), &refused, ts("2026-12-01T14:01:01Z"));
    let dups = DuplicateReport::default();
    memory.record(&attempt("2026-12-01T14:02:00Z", Some("r9")), &synced(&dups), ts("2026-12-01T14:02:02Z"));
    assert_eq!((memory.credentials_refused, memory.failures), (None, 0));
}

#[test]
fn a_handled_request_is_not_synced_again() {
    let mut memory = WorkerMemory::default();
    let schedule = default_schedule();
    let now = ts("2026-12-01T10:00:05Z");
    let before = next_sync(memory.plan(&schedule, facts(Some("r1"), None), now, Duration::ZERO));
    assert_eq!(before, Due::Now(Trigger::Requested));
    let dups = DuplicateReport::default();
    memory.record(&attempt("2026-12-01T10:00:00Z", Some("r1")), &synced(&dups), now);
    let after = next_sync(memory.plan(&schedule, facts(Some("r1"), None), now, Duration::ZERO));
    assert!(matches!(after, Due::At(_, Trigger::Scheduled)), "{after:?}");
}

#[test]
fn a_hold_waits_for_the_approval_of_its_content() {
    let mut memory = WorkerMemory::default();
    let hold = held();
    let outcome = Outcome::Held { held: &hold, examples: vec!["CN=Gone,DC=corp".into()] };
    let row = memory.record(&attempt("2026-12-01T10:00:00Z", None), &outcome, ts("2026-12-01T10:00:03Z"));
    assert_eq!(row.phase, Some(NodePhase::Held));
    assert_eq!(row.reason.as_deref(), Some("DeletionThresholdExceeded"));
    let shown = row.held.expect("held details");
    assert_eq!(shown.removed_examples, ["CN=Gone,DC=corp"]);
    assert_eq!((shown.content_hash.as_deref(), shown.snapshot_hash.as_str()), (Some("c1"), "c1"));
    assert_eq!(memory.held_hash(), Some("c1"));
    let schedule = default_schedule();
    let now = ts("2026-12-01T10:01:00Z");
    let other = next_sync(memory.plan(&schedule, facts(None, Some("c0")), now, Duration::ZERO));
    assert_eq!(other, Due::Now(Trigger::ApprovalRefused), "another hash approves nothing, and the row says so");
    let approved = next_sync(memory.plan(&schedule, facts(None, Some("c1")), now, Duration::ZERO));
    assert_eq!(approved, Due::Now(Trigger::Approved));
}

#[test]
fn resuming_from_a_row_and_a_cache() {
    let row = NodeStatus {
        pod: "gw-0".into(),
        phase: Some(NodePhase::Synced),
        observed_generation: Some(2),
        last_handled_sync_request: Some("r9".into()),
        ..NodeStatus::default()
    };
    let warm = WorkerMemory::resume(Some(row.clone()), Some(ts("2026-12-01T09:00:00Z")));
    assert_eq!((warm.handled_generation, warm.handled_request.as_deref()), (Some(2), Some("r9")));
    assert_eq!(warm.last_sync, Some(ts("2026-12-01T09:00:00Z")));
    let cold = WorkerMemory::resume(Some(row), None);
    assert_eq!(cold.handled_generation, None, "no cache: the first sync runs at once");
    let purged = NodeStatus { phase: Some(NodePhase::Purged), ..NodeStatus::default() };
    assert_eq!(WorkerMemory::resume(Some(purged), None).row, None);
}

#[test]
fn an_approval_of_other_content_is_refused_once_and_the_hold_stays() {
    let mut memory = WorkerMemory::default();
    let hold = held();
    let outcome = Outcome::Held { held: &hold, examples: Vec::new() };
    memory.record(&attempt("2026-12-01T10:00:00Z", None), &outcome, ts("2026-12-01T10:00:03Z"));
    let schedule = default_schedule();
    let now = ts("2026-12-01T10:01:00Z");
    let due = next_sync(memory.plan(&schedule, facts(None, Some("c0")), now, Duration::ZERO));
    assert_eq!(due, Due::Now(Trigger::ApprovalRefused));
    let row = memory.record(&attempt("2026-12-01T10:01:00Z", None), &Outcome::ApprovalRefused { approval: "c0" }, now);
    assert_eq!(row.phase, Some(NodePhase::Held), "nothing was applied");
    assert_eq!(row.reason.as_deref(), Some("ApprovalNotHeld"));
    assert!(row.message.as_deref().is_some_and(|m| m.contains("c0") && m.contains("c1")), "{:?}", row.message);
    assert_eq!(row.held.as_ref().and_then(|h| h.content_hash.as_deref()), Some("c1"), "the row still shows the hold");
    let again = next_sync(memory.plan(&schedule, facts(None, Some("c0")), now, Duration::ZERO));
    assert!(matches!(again, Due::At(_, Trigger::Scheduled)), "said once: {again:?}");
    let both = next_sync(memory.plan(&schedule, facts(None, Some("c0, c1")), now, Duration::ZERO));
    assert_eq!(both, Due::Now(Trigger::Approved), "a list of hashes approves each pod's own");
}
