//! The controller's view of a connection: conditions and summary computed from its acceptance and
//! the gateway pods' rows, plus the Events its transitions deserve. Pure: the time comes in.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::{LdapConnectionStatus, NodePhase, NodeStatus, StatusSummary};
use crate::domain::validation::Rejection;

pub const ACCEPTED: &str = "Accepted";
pub const READY: &str = "Ready";
pub const STALE: &str = "Stale";
pub const DUPLICATES_FOUND: &str = "DuplicatesFound";
pub const RECONCILING: &str = "Reconciling";
pub const STALLED: &str = "Stalled";
pub const SEARCH_BASE_OVERLAP: &str = "SearchBaseOverlap";

/// Every condition type the controller writes; others (written by someone else) are left alone.
pub const MANAGED: [&str; 7] = [ACCEPTED, READY, STALE, DUPLICATES_FOUND, RECONCILING, STALLED, SEARCH_BASE_OVERLAP];

/// The reason of a search base already owned by an older connection.
pub const SEARCH_BASE_CONFLICT: &str = "SearchBaseConflict";

/// What the controller decided about the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acceptance {
    Accepted { kerberos_principal: Option<String>, overlaps: Vec<String> },
    Rejected(Rejection),
}

/// Everything the status is computed from.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub generation: i64,
    pub acceptance: &'a Acceptance,
    pub rows: &'a [NodeStatus],
    /// Gateway pods that exist now: the pods expected to sync.
    pub live_pods: &'a BTreeSet<String>,
}

/// The status fields the controller owns.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredStatus {
    pub observed_generation: i64,
    pub conditions: Vec<Condition>,
    pub summary: StatusSummary,
    pub kerberos_principal: Option<String>,
}

struct Cond {
    type_: &'static str,
    status: bool,
    reason: String,
    message: String,
}

fn cond(type_: &'static str, status: bool, reason: impl Into<String>, message: impl Into<String>) -> Cond {
    Cond { type_, status, reason: reason.into(), message: message.into() }
}

/// Conditions are capped well below the API's 32 KiB message limit.
const MAX_MESSAGE: usize = 1024;

fn truncate(mut message: String) -> String {
    if message.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push('…');
    }
    message
}

fn list(pods: &[&NodeStatus]) -> String {
    pods.iter().map(|r| r.pod.as_str()).collect::<Vec<_>>().join(", ")
}

/// Computes the controller's part of the status. `previous` keeps transition times of conditions
/// whose status did not change, so an unchanged connection yields an identical status.
pub fn desired_status(facts: Facts<'_>, previous: &[Condition], now: &Time) -> DesiredStatus {
    let g = facts.generation;
    let live: Vec<&NodeStatus> = facts.rows.iter().filter(|r| facts.live_pods.contains(&r.pod)).collect();
    let mut conds = Vec::new();
    let mut kerberos = None;
    match facts.acceptance {
        Acceptance::Rejected(r) => {
            let message = r.to_string();
            conds.push(cond(ACCEPTED, false, r.reason, message.clone()));
            conds.push(cond(READY, false, r.reason, format!("not accepted: {message}")));
            conds.push(cond(STALLED, true, r.reason, message));
        }
        Acceptance::Accepted { kerberos_principal, overlaps } => {
            kerberos = kerberos_principal.clone();
            conds.push(cond(ACCEPTED, true, "Accepted", "the spec is valid and its search base is unique"));
            if !overlaps.is_empty() {
                conds.push(cond(
                    SEARCH_BASE_OVERLAP,
                    true,
                    "NestedSearchBase",
                    format!(
                        "the search base contains, or lies inside, the search base of {}: their objects are cached twice",
                        overlaps.join(", ")
                    ),
                ));
            }
            rows_conditions(g, facts.live_pods, &live, &mut conds);
        }
    }
    let summary = summary(g, facts.live_pods, &live);
    let conditions = conds
        .into_iter()
        .map(|c| {
            let status = if c.status { "True" } else { "False" };
            let since = previous
                .iter()
                .find(|p| p.type_ == c.type_ && p.status == status)
                .map_or_else(|| now.clone(), |p| p.last_transition_time.clone());
            Condition {
                type_: c.type_.to_owned(),
                status: status.to_owned(),
                reason: c.reason,
                message: truncate(c.message),
                observed_generation: Some(g),
                last_transition_time: since,
            }
        })
        .collect();
    DesiredStatus { observed_generation: g, conditions, summary, kerberos_principal: kerberos }
}

fn rows_conditions(g: i64, live_pods: &BTreeSet<String>, live: &[&NodeStatus], conds: &mut Vec<Cond>) {
    let of =
        |phase: NodePhase| -> Vec<&NodeStatus> { live.iter().copied().filter(|r| r.phase == Some(phase)).collect() };
    let synced: Vec<&NodeStatus> = live
        .iter()
        .copied()
        .filter(|r| r.phase == Some(NodePhase::Synced) && r.observed_generation == Some(g))
        .collect();
    let (held, failed, stale) = (of(NodePhase::Held), of(NodePhase::Failed), of(NodePhase::Stale));
    let expected = live_pods.len();
    let waiting: Vec<&str> =
        live_pods.iter().map(String::as_str).filter(|p| !synced.iter().any(|r| r.pod == *p)).collect();
    if expected == 0 {
        conds.push(cond(
            READY,
            false,
            "NoGatewayPods",
            "no gateway pod matches the gateway selector in this namespace",
        ));
    } else if let Some(first) = held.first() {
        let detail = first.held.as_ref().map_or_else(String::new, |h| {
            format!(
                ": it would delete {} of {} objects; set the annotation ldapsync.io/approve-deletions={} to let it through",
                h.deleted_objects, h.previous_objects, h.snapshot_hash
            )
        });
        let message = format!("the deletion-safety guard held the sync on {}{detail}", list(&held));
        conds.push(cond(READY, false, "DeletionHeld", message.clone()));
        conds.push(cond(STALLED, true, "DeletionHeld", message));
    } else if synced.len() == expected {
        conds.push(cond(READY, true, "Synced", format!("{expected}/{expected} gateway pods synced generation {g}")));
    } else {
        let (reason, message) = if let Some(first) = failed.first() {
            let why = first.reason.clone().unwrap_or_else(|| "SyncFailed".into());
            (
                why,
                format!(
                    "{} failed with no cache to serve: {}",
                    list(&failed),
                    first.message.clone().unwrap_or_default()
                ),
            )
        } else if let Some(first) = stale.first() {
            let why = first.reason.clone().unwrap_or_else(|| "Stale".into());
            (why, format!("{} serve their last cache: {}", list(&stale), first.message.clone().unwrap_or_default()))
        } else {
            (
                "Progressing".to_owned(),
                format!(
                    "{}/{expected} gateway pods synced generation {g}; waiting for {}",
                    synced.len(),
                    waiting.join(", ")
                ),
            )
        };
        conds.push(cond(READY, false, reason.clone(), message.clone()));
        conds.push(cond(RECONCILING, true, reason, message));
    }
    match stale.first() {
        Some(first) => conds.push(cond(
            STALE,
            true,
            first.reason.clone().unwrap_or_else(|| "Stale".into()),
            format!("{} serve their last cache: {}", list(&stale), first.message.clone().unwrap_or_default()),
        )),
        None => conds.push(cond(STALE, false, "Fresh", "no gateway pod serves a stale cache")),
    }
    match newest(live)
        .and_then(|r| r.duplicates.as_ref().map(|d| (r, d)))
        .filter(|(_, d)| d.user_names + d.addresses > 0)
    {
        Some((row, d)) => {
            let examples =
                if d.examples.is_empty() { String::new() } else { format!("; e.g. {}", d.examples.join("; ")) };
            conds.push(cond(
                DUPLICATES_FOUND,
                true,
                "DuplicatesFound",
                format!(
                    "{} and {} (seen by {}){examples}",
                    counted(d.user_names, "duplicate user name"),
                    counted(d.addresses, "duplicate address"),
                    row.pod
                ),
            ));
        }
        None => conds.push(cond(DUPLICATES_FOUND, false, "NoDuplicates", "no duplicate user names or addresses")),
    }
}

/// `1 duplicate address`, `2 duplicate addresses`.
fn counted(n: i64, noun: &str) -> String {
    match (n, noun.ends_with('s')) {
        (1, _) => format!("1 {noun}"),
        (_, true) => format!("{n} {noun}es"),
        (_, false) => format!("{n} {noun}s"),
    }
}

/// The row with the newest successful sync.
fn newest<'a>(rows: &[&'a NodeStatus]) -> Option<&'a NodeStatus> {
    rows.iter().copied().filter(|r| r.counts.is_some()).max_by(|a, b| {
        (a.last_success_time.as_ref().map(|t| t.0), &a.pod).cmp(&(b.last_success_time.as_ref().map(|t| t.0), &b.pod))
    })
}

fn summary(g: i64, live_pods: &BTreeSet<String>, live: &[&NodeStatus]) -> StatusSummary {
    let synced = live.iter().filter(|r| r.phase == Some(NodePhase::Synced) && r.observed_generation == Some(g)).count();
    let newest = newest(live);
    StatusSummary {
        nodes_synced: Some(format!("{synced}/{}", live_pods.len())),
        users: newest.and_then(|r| r.counts.as_ref()).map(|c| c.users),
        duplicates: newest.map(|r| r.duplicates.as_ref().map_or(0, |d| d.user_names + d.addresses)),
    }
}

/// Rows (index, pod) of pods that no longer exist.
pub fn rows_to_remove(rows: &[NodeStatus], live_pods: &BTreeSet<String>) -> Vec<(usize, String)> {
    rows.iter().enumerate().filter(|(_, r)| !live_pods.contains(&r.pod)).map(|(i, r)| (i, r.pod.clone())).collect()
}

/// True when writing `desired` would change the stored status.
pub fn status_differs(current: Option<&LdapConnectionStatus>, desired: &DesiredStatus) -> bool {
    let Some(current) = current else { return true };
    current.observed_generation != Some(desired.observed_generation)
        || !current.conditions.iter().filter(|c| MANAGED.contains(&c.type_.as_str())).eq(desired.conditions.iter())
        || current.summary.as_ref() != Some(&desired.summary)
        || current.kerberos_principal != desired.kerberos_principal
}

/// An Event worth recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub warning: bool,
    pub reason: String,
    pub note: String,
}

/// The Events for going from `previous` to `next` conditions: acceptance, conflicts and
/// rejections, ready, stale, duplicates, overlaps and holds.
pub fn transitions(previous: &[Condition], next: &[Condition]) -> Vec<Transition> {
    let find = |set: &[Condition], t: &str| set.iter().find(|c| c.type_ == t).cloned();
    let mut out = Vec::new();
    let became_true = |t: &str| {
        let now = find(next, t).filter(|c| c.status == "True");
        let before = find(previous, t).filter(|c| c.status == "True");
        now.filter(|_| before.is_none())
    };
    if let Some(now) = find(next, ACCEPTED) {
        let before = find(previous, ACCEPTED);
        let changed = before.as_ref().is_none_or(|b| b.status != now.status || b.reason != now.reason);
        if changed {
            out.push(Transition {
                warning: now.status != "True",
                reason: now.reason.clone(),
                note: now.message.clone(),
            });
        }
    }
    for (t, warning) in [(SEARCH_BASE_OVERLAP, true), (READY, false), (STALE, true), (DUPLICATES_FOUND, true)] {
        if let Some(c) = became_true(t) {
            let reason = if t == READY { READY.to_owned() } else { c.reason.clone() };
            out.push(Transition { warning, reason, note: c.message.clone() });
        }
    }
    if let Some(c) = became_true(STALLED).filter(|c| c.reason == "DeletionHeld") {
        out.push(Transition { warning: true, reason: c.reason.clone(), note: c.message.clone() });
    }
    out
}

#[cfg(test)]
mod tests {
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
            counts: Some(ObjectCounts { users: 40, contacts: 2, groups: 5, addresses: 60 }),
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
                    NodeStatus {
                        reason: Some("NoDomainControllerReachable".into()),
                        ..row("pod-b", NodePhase::Stale, 3)
                    },
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
                snapshot_hash: "abc123".into(),
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
            reason: "SecretNotFound",
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
            [Transition {
                warning: true,
                reason: SEARCH_BASE_CONFLICT.into(),
                note: "spec.searchBase: owned by a".into()
            }]
        );
    }

    #[test]
    fn rows_of_gone_pods_are_listed_for_removal() {
        let rows = [row("pod-a", NodePhase::Synced, 1), row("pod-x", NodePhase::Synced, 1)];
        assert_eq!(rows_to_remove(&rows, &pods(&["pod-a"])), [(1, "pod-x".to_owned())]);
    }
}
