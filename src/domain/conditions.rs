//! The controller's view of a connection: conditions and summary computed from its acceptance and
//! the gateway pods' rows, plus the Events its transitions deserve. Pure: the time comes in.

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::{LdapConnectionStatus, NodePhase, NodeStatus, StatusSummary};
use crate::domain::reason::Reason;
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
pub const SEARCH_BASE_CONFLICT: Reason = Reason::SearchBaseConflict;

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
            conds.push(cond(ACCEPTED, true, Reason::Accepted, "the spec is valid and its search base is unique"));
            if !overlaps.is_empty() {
                conds.push(cond(
                    SEARCH_BASE_OVERLAP,
                    true,
                    Reason::NestedSearchBase,
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
    let rows = Rows {
        synced: live
            .iter()
            .copied()
            .filter(|r| r.phase == Some(NodePhase::Synced) && r.observed_generation == Some(g))
            .collect(),
        held: of(NodePhase::Held),
        failed: of(NodePhase::Failed),
        stale: of(NodePhase::Stale),
    };
    ready_conditions(g, live_pods, &rows, conds);
    conds.push(stale_condition(&rows.stale));
    conds.push(duplicates_condition(live));
}

/// The live rows by what they say.
struct Rows<'a> {
    /// Synced at the current generation.
    synced: Vec<&'a NodeStatus>,
    held: Vec<&'a NodeStatus>,
    failed: Vec<&'a NodeStatus>,
    stale: Vec<&'a NodeStatus>,
}

/// `Ready`, and `Stalled` or `Reconciling` beside it when it is not.
fn ready_conditions(g: i64, live_pods: &BTreeSet<String>, rows: &Rows<'_>, conds: &mut Vec<Cond>) {
    let expected = live_pods.len();
    if expected == 0 {
        conds.push(cond(
            READY,
            false,
            Reason::NoGatewayPods,
            "no gateway pod matches the gateway selector in this namespace",
        ));
        return;
    }
    if let Some(first) = rows.held.first() {
        let detail = first.held.as_ref().map_or_else(String::new, |h| {
            format!(
                ": it would delete {} of {} objects; set the annotation ldapsync.io/approve-deletions={} to let it through",
                h.deleted_objects,
                h.previous_objects,
                h.content_hash.as_deref().unwrap_or(&h.snapshot_hash)
            )
        });
        let message = format!("the deletion-safety guard held the sync on {}{detail}", list(&rows.held));
        conds.push(cond(READY, false, Reason::DeletionHeld, message.clone()));
        conds.push(cond(STALLED, true, Reason::DeletionHeld, message));
        return;
    }
    if rows.synced.len() == expected {
        conds.push(cond(
            READY,
            true,
            Reason::Synced,
            format!("{expected}/{expected} gateway pods synced generation {g}"),
        ));
        return;
    }
    let (reason, message) = if let Some(first) = rows.failed.first() {
        let why = first.reason.clone().unwrap_or_else(|| Reason::SyncFailed.into());
        let detail = first.message.clone().unwrap_or_default();
        (why, format!("{} failed with no cache to serve: {detail}", list(&rows.failed)))
    } else if let Some(first) = rows.stale.first() {
        let why = first.reason.clone().unwrap_or_else(|| Reason::Stale.into());
        (why, format!("{} serve their last cache: {}", list(&rows.stale), first.message.clone().unwrap_or_default()))
    } else {
        let waiting: Vec<&str> =
            live_pods.iter().map(String::as_str).filter(|p| !rows.synced.iter().any(|r| r.pod == *p)).collect();
        (
            Reason::Progressing.into(),
            format!(
                "{}/{expected} gateway pods synced generation {g}; waiting for {}",
                rows.synced.len(),
                waiting.join(", ")
            ),
        )
    };
    conds.push(cond(READY, false, reason.clone(), message.clone()));
    conds.push(cond(RECONCILING, true, reason, message));
}

fn stale_condition(stale: &[&NodeStatus]) -> Cond {
    match stale.first() {
        Some(first) => cond(
            STALE,
            true,
            first.reason.clone().unwrap_or_else(|| Reason::Stale.into()),
            format!("{} serve their last cache: {}", list(stale), first.message.clone().unwrap_or_default()),
        ),
        None => cond(STALE, false, Reason::Fresh, "no gateway pod serves a stale cache"),
    }
}

/// Duplicates as the newest successful sync counted them.
fn duplicates_condition(live: &[&NodeStatus]) -> Cond {
    let found = newest(live)
        .and_then(|r| r.duplicates.as_ref().map(|d| (r, d)))
        .filter(|(_, d)| d.user_names + d.addresses > 0);
    let Some((row, d)) = found else {
        return cond(DUPLICATES_FOUND, false, Reason::NoDuplicates, "no duplicate user names or addresses");
    };
    let examples = if d.examples.is_empty() { String::new() } else { format!("; e.g. {}", d.examples.join("; ")) };
    cond(
        DUPLICATES_FOUND,
        true,
        Reason::DuplicatesFound,
        format!(
            "{} and {} (seen by {}){examples}",
            counted(d.user_names, "duplicate user name"),
            counted(d.addresses, "duplicate address"),
            row.pod
        ),
    )
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
    if let Some(c) = became_true(STALLED).filter(|c| c.reason == Reason::DeletionHeld.as_str()) {
        out.push(Transition { warning: true, reason: c.reason.clone(), note: c.message.clone() });
    }
    out
}

#[cfg(test)]
mod tests;
