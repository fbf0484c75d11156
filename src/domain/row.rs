//! One pod's row of a connection's status, and what its worker remembers between syncs: how a
//! sync's outcome turns into the next row and the next plan. Pure: times come in.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{DuplicateSummary, HeldSync, NodePhase, NodeStatus, ObjectCounts, SyncSummary};
use crate::domain::credentials;
use crate::domain::deletion::{DeletionHeld, approval_names};
use crate::domain::duplicates::DuplicateReport;
use crate::domain::incremental::{ReadSummary, SyncMode, SyncState};
use crate::domain::reason::Reason;
use crate::domain::schedule::Schedule;
use crate::domain::snapshot::Counts;
use crate::domain::sync_plan::PlanInput;

/// One sync as it starts.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub pod: &'a str,
    pub generation: Option<i64>,
    pub started: Timestamp,
    /// The `ldapsync.io/sync-requested-at` value seen when it started.
    pub request: Option<&'a str>,
}

/// What a sync came to, as the row shows it.
#[derive(Debug, Clone)]
pub enum Outcome<'a> {
    Synced {
        server: &'a str,
        site: Option<&'a str>,
        objects: usize,
        counts: Counts,
        duplicates: &'a DuplicateReport,
        snapshot_hash: &'a str,
        content_hash: &'a str,
        size: u64,
        took: Duration,
        read: &'a ReadSummary,
    },
    /// A delta found nothing changed: the row keeps what it shows of the content.
    Unchanged { server: &'a str, site: Option<&'a str>, took: Duration, read: &'a ReadSummary },
    /// The guard held the new snapshot; `examples` name a few objects it would remove.
    Held { held: &'a DeletionHeld, examples: Vec<String> },
    /// An approval named content this pod does not hold (`held`, if any): nothing was applied.
    ApprovalRefused { approval: &'a str },
    Failed {
        reason: Reason,
        message: String,
        /// A previous snapshot keeps serving.
        cached: bool,
    },
}

/// What a worker remembers of its connection between syncs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkerMemory {
    /// The generation of the last sync that finished (synced or held).
    pub handled_generation: Option<i64>,
    pub handled_request: Option<String>,
    /// When the last sync that counts for the schedule finished.
    pub last_sync: Option<Timestamp>,
    /// Failed attempts in a row, and when the last one started.
    pub failures: u32,
    pub last_attempt: Option<Timestamp>,
    /// The last row written (or found at start): success details carry over to failure rows.
    pub row: Option<NodeStatus>,
    /// The last approval value this pod refused (it says so once, not at every wake-up).
    pub refused_approval: Option<String>,
    /// The directory refused the credentials; no bind until they, the spec or a request change.
    pub credentials_refused: Option<CredentialsRefusal>,
    /// Where change tracking stands for the served snapshot (ahead of the state stored with it
    /// after deltas that changed nothing).
    pub sync_state: Option<SyncState>,
}

/// A refusal of the credentials, and when the Secret was last looked at since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CredentialsRefusal {
    /// The generation the refused sync read; a new spec is tried.
    pub generation: Option<i64>,
    pub checked: Timestamp,
}

/// What the connection object says that the plan needs.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionFacts<'a> {
    pub suspended: bool,
    pub generation: i64,
    pub request: Option<&'a str>,
    pub approval: Option<&'a str>,
}

impl WorkerMemory {
    /// Picks up where this pod left off: its row as found in the status, and whether a cache
    /// (taken at `cached_at`) is loaded. A cache from an earlier generation is synced again at once.
    pub fn resume(row: Option<NodeStatus>, cached_at: Option<Timestamp>) -> Self {
        let mut memory =
            Self { handled_request: row.as_ref().and_then(|r| r.last_handled_sync_request.clone()), ..Self::default() };
        if cached_at.is_some() {
            memory.last_sync = cached_at;
            memory.handled_generation = row.as_ref().and_then(|r| r.observed_generation);
        }
        memory.row = row.filter(|r| r.phase != Some(NodePhase::Purged));
        memory
    }

    /// The content hash the guard holds, if the last sync was held.
    pub fn held_hash(&self) -> Option<&str> {
        let held = self.row.as_ref().filter(|r| r.phase == Some(NodePhase::Held))?.held.as_ref()?;
        held.content_hash.as_deref().or(Some(held.snapshot_hash.as_str()))
    }

    /// The approval names the content this pod holds.
    pub fn approves(&self, approval: Option<&str>) -> bool {
        matches!((self.held_hash(), approval), (Some(held), Some(a)) if approval_names(a, held))
    }

    /// The input of [`crate::domain::sync_plan::next_sync`].
    pub fn plan<'a>(
        &'a self,
        schedule: &'a Schedule,
        facts: ConnectionFacts<'a>,
        now: Timestamp,
        jitter: Duration,
    ) -> PlanInput<'a> {
        PlanInput {
            schedule,
            now,
            suspended: facts.suspended,
            generation: facts.generation,
            handled_generation: self.handled_generation,
            request: facts.request,
            handled_request: self.handled_request.as_deref(),
            approval_pending: self.approves(facts.approval),
            approval_refused: self.held_hash().is_some()
                && facts.approval.is_some_and(|a| !a.is_empty())
                && !self.approves(facts.approval)
                && facts.approval != self.refused_approval.as_deref(),
            last_sync: self.last_sync,
            failures: self.failures,
            last_attempt: self.last_attempt,
            credentials_refused: self
                .credentials_refused
                .filter(|r| r.generation == Some(facts.generation))
                .map(|r| r.checked),
            jitter,
        }
    }

    /// The row that shows a pod's very first sync at once; `None` when the pod has a row (later
    /// syncs write once, at the end).
    pub fn first_row(&self, attempt: &Attempt<'_>) -> Option<NodeStatus> {
        self.row.is_none().then(|| NodeStatus {
            pod: attempt.pod.to_owned(),
            phase: Some(NodePhase::Syncing),
            observed_generation: attempt.generation,
            last_attempt_time: Some(Time(attempt.started)),
            last_handled_sync_request: self.handled_request.clone(),
            ..NodeStatus::default()
        })
    }

    /// Records a finished sync and returns the row to write. A failure keeps the last success's
    /// details (server, counts, hashes), so the row still says what is being served.
    pub fn record(&mut self, attempt: &Attempt<'_>, outcome: &Outcome<'_>, finished: Timestamp) -> NodeStatus {
        let previous = self.row.clone().unwrap_or_default();
        let (previous_phase, previous_held, previous_generation) =
            (previous.phase, previous.held.clone(), previous.observed_generation);
        let mut row = NodeStatus {
            pod: attempt.pod.to_owned(),
            observed_generation: attempt.generation,
            last_attempt_time: Some(Time(attempt.started)),
            last_handled_sync_request: attempt.request.map(str::to_owned).or_else(|| self.handled_request.clone()),
            held: None,
            reason: None,
            message: None,
            ..previous
        };
        self.handled_request = row.last_handled_sync_request.clone();
        match outcome {
            Outcome::Synced {
                server,
                site,
                objects,
                counts,
                duplicates,
                snapshot_hash,
                content_hash,
                size,
                took,
                read,
            } => {
                self.read(&mut row, read, finished);
                row.phase = Some(NodePhase::Synced);
                row.last_success_time = Some(Time(finished));
                row.server = Some((*server).to_owned());
                row.site = site.map(str::to_owned);
                row.counts = Some(ObjectCounts {
                    users: counts.users as i64,
                    contacts: counts.contacts as i64,
                    groups: counts.groups as i64,
                    recipients: counts.recipients as i64,
                    addresses: counts.addresses as i64,
                });
                row.duplicates = Some(DuplicateSummary {
                    user_names: duplicates.user_names as i64,
                    addresses: duplicates.addresses as i64,
                    examples: duplicates.examples.clone(),
                });
                row.snapshot_hash = Some((*snapshot_hash).to_owned());
                row.content_hash = Some((*content_hash).to_owned());
                row.snapshot_size = Some(*size as i64);
                row.message = Some(match read.mode {
                    SyncMode::Full => format!("synced {objects} objects in {:.1} s", took.as_secs_f64()),
                    SyncMode::Incremental => format!(
                        "applied {} changes ({} entries read); {objects} objects, in {:.1} s",
                        read.changes,
                        read.entries_read,
                        took.as_secs_f64()
                    ),
                });
                self.finished(attempt, finished);
            }
            Outcome::Unchanged { server, site, took, read } => {
                self.read(&mut row, read, finished);
                row.phase = Some(NodePhase::Synced);
                row.last_success_time = Some(Time(finished));
                row.server = Some((*server).to_owned());
                row.site = site.map(str::to_owned);
                row.message = Some(format!(
                    "no changes since the last sync ({} entries read) in {:.1} s",
                    read.entries_read,
                    took.as_secs_f64()
                ));
                self.finished(attempt, finished);
            }
            Outcome::Held { held, examples } => {
                row.phase = Some(NodePhase::Held);
                row.reason = Some(Reason::DeletionThresholdExceeded.into());
                row.message = Some(held.to_string());
                row.held = Some(HeldSync {
                    previous_objects: held.previous as i64,
                    new_objects: held.next as i64,
                    deleted_objects: held.deleted as i64,
                    content_hash: Some(held.content_hash.clone()),
                    snapshot_hash: held.content_hash.clone(),
                    removed_examples: examples.clone(),
                });
                self.refused_approval = None;
                self.finished(attempt, finished);
            }
            Outcome::ApprovalRefused { approval } => {
                // Still held: the row keeps what it shows (and the generation it was read at) and
                // says why nothing was applied.
                row.phase = previous_phase;
                row.held = previous_held;
                row.observed_generation = previous_generation;
                row.reason = Some(Reason::ApprovalNotHeld.into());
                row.message = Some(match self.held_hash() {
                    Some(held) => format!(
                        "ldapsync.io/approve-deletions names content {approval}, but this pod holds {held}: \
                         approve {held} to apply what the row shows"
                    ),
                    None => format!("ldapsync.io/approve-deletions names content {approval}, but this pod holds none"),
                });
                self.refused_approval = Some((*approval).to_owned());
            }
            Outcome::Failed { reason, message, cached } => {
                row.phase = Some(if *cached { NodePhase::Stale } else { NodePhase::Failed });
                row.reason = Some((*reason).into());
                self.failures = self.failures.saturating_add(1);
                self.last_attempt = Some(attempt.started);
                if credentials::is_refusal(*reason) {
                    row.message = Some(format!("{message}; {}", credentials::WAITING_FOR_CHANGE));
                    self.credentials_refused =
                        Some(CredentialsRefusal { generation: attempt.generation, checked: finished });
                } else {
                    row.message = Some(message.clone());
                    self.credentials_refused = None;
                }
            }
        }
        self.row = Some(row.clone());
        row
    }

    /// The Secret was looked at and still holds the refused credentials: nothing to try yet.
    pub fn credentials_unchanged(&mut self, at: Timestamp) {
        if let Some(refusal) = &mut self.credentials_refused {
            refusal.checked = at;
        }
    }

    /// How the sync read the directory, into the row and the change-tracking state.
    fn read(&mut self, row: &mut NodeStatus, read: &ReadSummary, finished: Timestamp) {
        row.last_sync = Some(SyncSummary {
            mode: read.mode.as_str().to_owned(),
            entries_read: read.entries_read as i64,
            changes_applied: read.changes as i64,
            full_reason: read.full_reason.map(|r| r.as_str().to_owned()),
            deletions: read.deletions.map(|d| d.as_str().to_owned()),
        });
        let full_at = read.state.as_ref().and_then(|s| Timestamp::from_second(s.full_at).ok());
        match (read.mode, full_at) {
            (_, Some(at)) => row.last_full_sync_time = Some(Time(at)),
            (SyncMode::Full, None) => row.last_full_sync_time = Some(Time(finished)),
            (SyncMode::Incremental, None) => {}
        }
        self.sync_state = read.state.clone();
    }

    fn finished(&mut self, attempt: &Attempt<'_>, at: Timestamp) {
        self.failures = 0;
        self.credentials_refused = None;
        self.last_sync = Some(at);
        self.handled_generation = attempt.generation;
    }
}

#[cfg(test)]
mod tests;
