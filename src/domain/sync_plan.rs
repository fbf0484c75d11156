//! When a gateway pod syncs a connection next: a new manual request or a new generation at once,
//! a failed sync again after a growing pause, otherwise on the schedule plus the pod's jitter.

use std::time::Duration;

use jiff::Timestamp;

use crate::domain::schedule::Schedule;

/// Why a sync runs now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// `ldapsync.io/sync-requested-at` has a value this pod has not handled.
    Requested,
    /// No cache yet, or the spec changed since the last sync.
    NewGeneration,
    /// The previous sync failed.
    Retry,
    /// `ldapsync.io/approve-deletions` now names the held snapshot.
    Approved,
    /// `ldapsync.io/approve-deletions` names content this pod does not hold: say so in the row.
    ApprovalRefused,
    Scheduled,
    /// The directory refused the credentials: look whether the Secret changed (no bind unless it did).
    CredentialsCheck,
    /// The directory reported a change (push): read it now.
    Pushed,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::NewGeneration => "new_generation",
            Self::Retry => "retry",
            Self::Approved => "approved",
            Self::ApprovalRefused => "approval_refused",
            Self::Scheduled => "scheduled",
            Self::CredentialsCheck => "credentials_check",
            Self::Pushed => "pushed",
        }
    }
}

/// The next sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    Now(Trigger),
    At(Timestamp, Trigger),
    Never,
}

/// What the pod knows about one connection.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    pub schedule: &'a Schedule,
    pub now: Timestamp,
    pub suspended: bool,
    pub generation: i64,
    /// The generation of the last sync that finished (synced or held).
    pub handled_generation: Option<i64>,
    pub request: Option<&'a str>,
    pub handled_request: Option<&'a str>,
    /// The approval annotation names the snapshot the last sync held.
    pub approval_pending: bool,
    /// The approval annotation changed and names other content than the held snapshot.
    pub approval_refused: bool,
    /// When the last sync that counts for the schedule finished (success or held).
    pub last_sync: Option<Timestamp>,
    /// Failed attempts in a row, and when the last one started.
    pub failures: u32,
    pub last_attempt: Option<Timestamp>,
    /// The credentials were refused at this generation: when the Secret was last looked at.
    pub credentials_refused: Option<Timestamp>,
    /// This pod's fixed delay for scheduled syncs.
    pub jitter: Duration,
}

/// How often a pod whose credentials were refused looks whether its Secret changed (an API read,
/// never a bind).
pub const CREDENTIALS_RECHECK: Duration = Duration::from_secs(30);

/// First retry after 10 s, doubling up to 5 minutes.
pub fn retry_delay(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(5);
    Duration::from_secs(10 << exponent).min(Duration::from_secs(300))
}

pub fn next_sync(p: PlanInput<'_>) -> Due {
    if p.suspended {
        return Due::Never;
    }
    if p.request.is_some_and(|r| !r.is_empty()) && p.request != p.handled_request {
        return Due::Now(Trigger::Requested);
    }
    if p.approval_pending {
        return Due::Now(Trigger::Approved);
    }
    if p.approval_refused {
        return Due::Now(Trigger::ApprovalRefused);
    }
    if let Some(checked) = p.credentials_refused {
        let at = checked.checked_add(CREDENTIALS_RECHECK).unwrap_or(p.now);
        return if at <= p.now { Due::Now(Trigger::CredentialsCheck) } else { Due::At(at, Trigger::CredentialsCheck) };
    }
    if p.failures > 0 {
        let at = p.last_attempt.unwrap_or(p.now).checked_add(retry_delay(p.failures)).unwrap_or(p.now);
        return if at <= p.now { Due::Now(Trigger::Retry) } else { Due::At(at, Trigger::Retry) };
    }
    if p.handled_generation != Some(p.generation) {
        return Due::Now(Trigger::NewGeneration);
    }
    let base = p.last_sync.unwrap_or(p.now);
    match p.schedule.next_after(base) {
        Some(at) => {
            let at = at.checked_add(p.jitter).unwrap_or(at);
            if at <= p.now { Due::Now(Trigger::Scheduled) } else { Due::At(at, Trigger::Scheduled) }
        }
        None => Due::Never,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::schedule::{Rule, default_schedule};

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn base(schedule: &Schedule) -> PlanInput<'_> {
        PlanInput {
            schedule,
            now: ts("2026-11-30T10:00:00Z"),
            suspended: false,
            generation: 2,
            handled_generation: Some(2),
            request: None,
            handled_request: None,
            approval_pending: false,
            approval_refused: false,
            last_sync: Some(ts("2026-11-30T09:45:00Z")),
            failures: 0,
            last_attempt: Some(ts("2026-11-30T09:44:00Z")),
            credentials_refused: None,
            jitter: Duration::from_secs(7),
        }
    }

    #[test]
    fn table() {
        let every30 = default_schedule();
        let manual = Schedule { rule: Rule::Manual, ..default_schedule() };
        let cases: Vec<(&str, PlanInput<'_>, Due)> = vec![
            ("on schedule, with jitter", base(&every30), Due::At(ts("2026-11-30T10:15:07Z"), Trigger::Scheduled)),
            (
                "overdue",
                PlanInput { last_sync: Some(ts("2026-11-30T09:00:00Z")), ..base(&every30) },
                Due::Now(Trigger::Scheduled),
            ),
            (
                "first sync",
                PlanInput { handled_generation: None, last_sync: None, ..base(&every30) },
                Due::Now(Trigger::NewGeneration),
            ),
            (
                "spec changed",
                PlanInput { handled_generation: Some(1), ..base(&every30) },
                Due::Now(Trigger::NewGeneration),
            ),
            (
                "new request",
                PlanInput { request: Some("2026-11-30T09:59:00Z"), ..base(&manual) },
                Due::Now(Trigger::Requested),
            ),
            (
                "handled request",
                PlanInput { request: Some("r1"), handled_request: Some("r1"), ..base(&manual) },
                Due::Never,
            ),
            ("manual never by itself", base(&manual), Due::Never),
            (
                "manual still syncs a new generation",
                PlanInput { handled_generation: Some(1), ..base(&manual) },
                Due::Now(Trigger::NewGeneration),
            ),
            (
                "approval of a held sync",
                PlanInput { approval_pending: true, ..base(&manual) },
                Due::Now(Trigger::Approved),
            ),
            ("suspended", PlanInput { suspended: true, request: Some("r2"), ..base(&every30) }, Due::Never),
            (
                "first retry after 10 s",
                PlanInput { failures: 1, last_attempt: Some(ts("2026-11-30T09:59:55Z")), ..base(&every30) },
                Due::At(ts("2026-11-30T10:00:05Z"), Trigger::Retry),
            ),
            (
                "retries back off to 5 minutes",
                PlanInput { failures: 9, last_attempt: Some(ts("2026-11-30T09:59:00Z")), ..base(&every30) },
                Due::At(ts("2026-11-30T10:04:00Z"), Trigger::Retry),
            ),
            (
                "a request beats the backoff",
                PlanInput { failures: 3, request: Some("r3"), ..base(&every30) },
                Due::Now(Trigger::Requested),
            ),
            (
                "refused credentials: no retry, the Secret looked at every 30 s",
                PlanInput {
                    failures: 9,
                    last_attempt: Some(ts("2026-11-30T09:00:00Z")),
                    credentials_refused: Some(ts("2026-11-30T09:59:50Z")),
                    ..base(&every30)
                },
                Due::At(ts("2026-11-30T10:00:20Z"), Trigger::CredentialsCheck),
            ),
            (
                "refused credentials and a request: the request is tried",
                PlanInput {
                    credentials_refused: Some(ts("2026-11-30T09:59:50Z")),
                    request: Some("r4"),
                    ..base(&every30)
                },
                Due::Now(Trigger::Requested),
            ),
            (
                "refused credentials, schedule overdue: still only the Secret is looked at",
                PlanInput {
                    last_sync: Some(ts("2026-11-30T08:00:00Z")),
                    credentials_refused: Some(ts("2026-11-30T09:00:00Z")),
                    ..base(&every30)
                },
                Due::Now(Trigger::CredentialsCheck),
            ),
        ];
        for (what, input, want) in cases {
            assert_eq!(next_sync(input), want, "{what}");
        }
    }

    #[test]
    fn retry_delays_grow_and_cap() {
        let delays: Vec<u64> = (1..=8).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 300, 300, 300]);
    }
}
