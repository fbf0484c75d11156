use super::*;
use crate::api::{DuplicateSummary, HeldSync, ObjectCounts};

fn t(s: &str) -> Time {
    Time(s.parse().expect("time"))
}

fn row(pod: &str, phase: NodePhase, generation: i64) -> NodeStatus {
    NodeStatus {
        pod: pod.into(),
        phase: Some(phase),
        observed_generation: Some(generation),
        last_success_time: Some(t("2026-11-30T08:00:00Z")),
        counts: Some(ObjectCounts { users: 40, contacts: 2, groups: 5, recipients: 0, addresses: 60 }),
        ..Default::default()
    }
}

fn pods(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

fn accepted() -> Acceptance {
    Acceptance::Accepted { kerberos_principal: None, overlaps: vec![] }
}

fn get<'a>(s: &'a DesiredStatus, t: &str) -> Option<&'a Condition> {
    s.conditions.iter().find(|c| c.type_ == t)
}

fn status_of(s: &DesiredStatus, t: &str) -> Option<(String, String)> {
    get(s, t).map(|c| (c.status.clone(), c.reason.clone()))
}

fn pair(status: &str, reason: &str) -> Option<(String, String)> {
    Some((status.to_owned(), reason.to_owned()))
}

#[test]
fn rows_become_conditions() {
    let now = t("2026-11-30T09:00:00Z");
    let a = accepted();
    let live = pods(&["pod-a", "pod-b"]);
    type Expected = Option<(String, String)>;
    let cases: Vec<(Vec<NodeStatus>, Expected, Expected, Expected)> = vec![
        (
            vec![row("pod-a", NodePhase::Synced, 3), row("pod-b", NodePhase::Synced, 3)],
            pair("True", "Synced"),
            None,
            pair("False", "Fresh"),
        ),
        (
            vec![row("pod-a", NodePhase::Synced, 3)],
            pair("False", "Progressing"),
            pair("True", "Progressing"),
            pair("False", "Fresh"),
        ),
        (
            vec![row("pod-a", NodePhase::Synced, 3), row("pod-b", NodePhase::Synced, 2)],
            pair("False", "Progressing"),
            pair("True", "Progressing"),
            pair("False", "Fresh"),
        ),
        (
            vec![
                row("pod-a", NodePhase::Synced, 3),
                NodeStatus { reason: Some("NoDomainControllerReachable".into()), ..row("pod-b", NodePhase::Stale, 3) },
            ],
            pair("False", "NoDomainControllerReachable"),
            pair("True", "NoDomainControllerReachable"),
            pair("True", "NoDomainControllerReachable"),
        ),
        (
            vec![
                row("pod-a", NodePhase::Synced, 3),
                NodeStatus { reason: Some("AuthenticationFailed".into()), ..row("pod-b", NodePhase::Failed, 3) },
            ],
            pair("False", "AuthenticationFailed"),
            pair("True", "AuthenticationFailed"),
            pair("False", "Fresh"),
        ),
        // A row of a pod that is gone does not count.
        (
            vec![
                row("pod-a", NodePhase::Synced, 3),
                row("pod-b", NodePhase::Synced, 3),
                row("pod-gone", NodePhase::Stale, 3),
            ],
            pair("True", "Synced"),
            None,
            pair("False", "Fresh"),
        ),
    ];
    for (rows, ready, reconciling, stale) in cases {
        let s = desired_status(Facts { generation: 3, acceptance: &a, rows: &rows, live_pods: &live }, &[], &now);
        let pods: Vec<_> = rows.iter().map(|r| (&r.pod, r.phase)).collect();
        assert_eq!(status_of(&s, READY), ready, "{pods:?}");
        assert_eq!(status_of(&s, RECONCILING), reconciling, "{pods:?}");
        assert_eq!(status_of(&s, STALE), stale, "{pods:?}");
        assert_eq!(status_of(&s, ACCEPTED), pair("True", "Accepted"));
    }
}

#[test]
fn no_gateway_pods_is_not_ready() {
    let a = accepted();
    let s = desired_status(
        Facts { generation: 1, acceptance: &a, rows: &[], live_pods: &pods(&[]) },
        &[],
        &t("2026-11-30T09:00:00Z"),
    );
    assert_eq!(status_of(&s, READY), pair("False", "NoGatewayPods"));
    assert_eq!(s.summary.nodes_synced.as_deref(), Some("0/0"));
}

#[test]
fn held_sync_stalls_with_the_approval_hint() {
    let a = accepted();
    let held = NodeStatus {
        held: Some(HeldSync {
            previous_objects: 100,
            new_objects: 10,
            deleted_objects: 90,
            content_hash: Some("abc123".into()),
            snapshot_hash: "abc123".into(),
            removed_examples: Vec::new(),
        }),
        ..row("pod-a", NodePhase::Held, 1)
    };
    let s = desired_status(
        Facts { generation: 1, acceptance: &a, rows: &[held], live_pods: &pods(&["pod-a"]) },
        &[],
        &t("2026-11-30T09:00:00Z"),
    );
    assert_eq!(status_of(&s, STALLED), pair("True", "DeletionHeld"));
    let ready = get(&s, READY).expect("ready");
    assert!(ready.message.contains("ldapsync.io/approve-deletions=abc123"), "{}", ready.message);
    assert!(transitions(&[], &s.conditions).iter().any(|e| e.reason == "DeletionHeld" && e.warning));
}

#[test]
fn rejected_connections_stall_and_name_the_field() {
    let r = Acceptance::Rejected(Rejection {
        reason: Reason::SecretNotFound,
        field: "spec.auth.simple.passwordSecretRef".into(),
        message: "Secret \"pw\" not found".into(),
    });
    let s = desired_status(
        Facts { generation: 2, acceptance: &r, rows: &[], live_pods: &pods(&["pod-a"]) },
        &[],
        &t("2026-11-30T09:00:00Z"),
    );
    assert_eq!(status_of(&s, ACCEPTED), pair("False", "SecretNotFound"));
    assert_eq!(status_of(&s, STALLED), pair("True", "SecretNotFound"));
    assert_eq!(status_of(&s, READY), pair("False", "SecretNotFound"));
    assert!(get(&s, ACCEPTED).expect("accepted").message.starts_with("spec.auth.simple.passwordSecretRef: "));
    assert_eq!(get(&s, STALE), None);
}

#[test]
fn duplicates_come_from_the_newest_row() {
    let a = accepted();
    let mut old = row("pod-a", NodePhase::Synced, 1);
    old.duplicates = Some(DuplicateSummary { user_names: 9, addresses: 9, examples: vec![] });
    old.last_success_time = Some(t("2026-11-30T07:00:00Z"));
    let mut new = row("pod-b", NodePhase::Synced, 1);
    new.duplicates =
        Some(DuplicateSummary { user_names: 1, addresses: 2, examples: vec!["address a@x: A and B".into()] });
    let s = desired_status(
        Facts { generation: 1, acceptance: &a, rows: &[old, new], live_pods: &pods(&["pod-a", "pod-b"]) },
        &[],
        &t("2026-11-30T09:00:00Z"),
    );
    assert_eq!(status_of(&s, DUPLICATES_FOUND), pair("True", "DuplicatesFound"));
    assert!(get(&s, DUPLICATES_FOUND).expect("dup").message.contains("a@x: A and B"));
    assert_eq!(s.summary, StatusSummary { nodes_synced: Some("2/2".into()), users: Some(40), duplicates: Some(3) });
}

#[test]
fn unchanged_facts_give_an_identical_status_and_no_events() {
    let a = Acceptance::Accepted { kerberos_principal: Some("svc@CORP".into()), overlaps: vec!["top".into()] };
    let rows = [row("pod-a", NodePhase::Synced, 1)];
    let live = pods(&["pod-a"]);
    let facts = Facts { generation: 1, acceptance: &a, rows: &rows, live_pods: &live };
    let first = desired_status(facts, &[], &t("2026-11-30T09:00:00Z"));
    let second = desired_status(facts, &first.conditions, &t("2026-11-30T10:00:00Z"));
    assert_eq!(first, second);
    let current = LdapConnectionStatus {
        observed_generation: Some(1),
        conditions: first.conditions.clone(),
        summary: Some(first.summary.clone()),
        kerberos_principal: first.kerberos_principal.clone(),
        ..Default::default()
    };
    assert!(!status_differs(Some(&current), &second));
    assert!(transitions(&first.conditions, &second.conditions).is_empty());
    let events: Vec<_> = transitions(&[], &first.conditions).into_iter().map(|e| e.reason).collect();
    assert_eq!(events, ["Accepted", "NestedSearchBase", "Ready"]);
}

#[test]
fn a_status_change_moves_the_transition_time() {
    let a = accepted();
    let live = pods(&["pod-a"]);
    let rows = [row("pod-a", NodePhase::Synced, 1)];
    let before = desired_status(
        Facts { generation: 1, acceptance: &a, rows: &[], live_pods: &live },
        &[],
        &t("2026-11-30T09:00:00Z"),
    );
    let after = desired_status(
        Facts { generation: 1, acceptance: &a, rows: &rows, live_pods: &live },
        &before.conditions,
        &t("2026-11-30T10:00:00Z"),
    );
    let ready = get(&after, READY).expect("ready");
    assert_eq!(ready.last_transition_time, t("2026-11-30T10:00:00Z"));
    assert_eq!(get(&after, ACCEPTED).expect("accepted").last_transition_time, t("2026-11-30T09:00:00Z"));
    let conflict = Acceptance::Rejected(Rejection {
        reason: SEARCH_BASE_CONFLICT,
        field: "spec.searchBase".into(),
        message: "owned by a".into(),
    });
    let rejected = desired_status(
        Facts { generation: 1, acceptance: &conflict, rows: &rows, live_pods: &live },
        &after.conditions,
        &t("2026-11-30T11:00:00Z"),
    );
    let events = transitions(&after.conditions, &rejected.conditions);
    assert_eq!(
        events,
        [Transition { warning: true, reason: SEARCH_BASE_CONFLICT.into(), note: "spec.searchBase: owned by a".into() }]
    );
}

#[test]
fn rows_of_gone_pods_are_listed_for_removal() {
    let rows = [row("pod-a", NodePhase::Synced, 1), row("pod-x", NodePhase::Synced, 1)];
    assert_eq!(rows_to_remove(&rows, &pods(&["pod-a"])), [(1, "pod-x".to_owned())]);
}
