//! The agent's sync metrics, registered beside the lookup API's. Labels are bounded: a result,
//! a [`Reason`], or a connection of this namespace.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;

use crate::domain::incremental::{ReadSummary, SyncMode};
use crate::domain::reason::Reason;

/// How a sync ended.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub(crate) enum SyncResult {
    Synced,
    Failed,
    Held,
}

impl EncodeLabelValue for SyncResult {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        let label = match self {
            Self::Synced => "synced",
            Self::Failed => "failed",
            Self::Held => "held",
        };
        std::fmt::Write::write_str(encoder, label)
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: SyncResult,
}

impl EncodeLabelValue for Reason {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: Reason,
}

impl EncodeLabelValue for SyncMode {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.as_str())
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModeLabel {
    mode: SyncMode,
}

/// Per-connection values read at scrape time.
#[derive(Debug, Default)]
struct PerConnection {
    /// Objects read by the running (or last) sync.
    progress: BTreeMap<String, Arc<AtomicU64>>,
    /// When each connection syncs next by its schedule (Unix seconds).
    next_sync: BTreeMap<String, i64>,
}

#[derive(Debug, Default, Clone)]
struct ConnectionGauges(Arc<Mutex<PerConnection>>);

impl ConnectionGauges {
    fn with<T>(&self, f: impl FnOnce(&mut PerConnection) -> T) -> T {
        // Each change is one insert or remove: a poisoned map is still whole.
        f(&mut self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

/// One gauge family labelled by connection.
fn encode_by_connection(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: Vec<(String, i64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (connection, value) in values {
        ConstGauge::new(value).encode(family.encode_family(&[("connection", connection)])?)?;
    }
    Ok(())
}

impl Collector for ConnectionGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // Copied out first: the lock is not held while writing.
        let next = self.with(|p| p.next_sync.iter().map(|(c, at)| (c.clone(), *at)).collect());
        let progress =
            self.with(|p| p.progress.iter().map(|(c, n)| (c.clone(), n.load(Ordering::Relaxed) as i64)).collect());
        encode_by_connection(
            &mut encoder,
            "ldapsync_agent_next_sync_timestamp_seconds",
            "When each connection syncs next.",
            next,
        )?;
        encode_by_connection(
            &mut encoder,
            "ldapsync_agent_sync_objects_read",
            "Objects read by the running or last sync.",
            progress,
        )
    }
}

#[derive(Debug, Default)]
pub(crate) struct AgentMetrics {
    syncs: Family<ResultLabel, Counter>,
    failures: Family<ReasonLabel, Counter>,
    seconds: Counter<f64, AtomicU64>,
    running: Gauge,
    row_writes: Counter,
    by_mode: Family<ModeLabel, Counter>,
    entries_read: Family<ModeLabel, Counter>,
    changes_applied: Counter,
    pushed: Counter,
    watches: Gauge,
    connections: ConnectionGauges,
}

impl AgentMetrics {
    pub(crate) fn register(&self, registry: &mut Registry) {
        // Every result shows from the start, at zero.
        for result in [SyncResult::Synced, SyncResult::Failed, SyncResult::Held] {
            self.syncs.get_or_create(&ResultLabel { result }).get();
        }
        registry.register("ldapsync_agent_syncs", "Finished syncs by result.", self.syncs.clone());
        registry.register("ldapsync_agent_sync_failures", "Failed syncs by reason.", self.failures.clone());
        registry.register("ldapsync_agent_sync_seconds", "Time spent in syncs.", self.seconds.clone());
        registry.register("ldapsync_agent_syncs_running", "Syncs running now.", self.running.clone());
        registry.register("ldapsync_agent_row_writes", "Writes of this pod's status rows.", self.row_writes.clone());
        for mode in [SyncMode::Full, SyncMode::Incremental] {
            self.by_mode.get_or_create(&ModeLabel { mode }).get();
            self.entries_read.get_or_create(&ModeLabel { mode }).get();
        }
        registry.register(
            "ldapsync_agent_reads",
            "Successful syncs by how they read the directory.",
            self.by_mode.clone(),
        );
        registry.register(
            "ldapsync_agent_entries_read",
            "Entries directory servers sent to successful syncs, by mode.",
            self.entries_read.clone(),
        );
        registry.register(
            "ldapsync_agent_push_notifications",
            "Changes directory servers pushed to this pod's open watches.",
            self.pushed.clone(),
        );
        registry.register(
            "ldapsync_agent_push_watches",
            "Searches open on directory servers for pushed changes.",
            self.watches.clone(),
        );
        registry.register(
            "ldapsync_agent_changes_applied",
            "Objects incremental syncs changed, added or removed.",
            self.changes_applied.clone(),
        );
        registry.register_collector(Box::new(self.connections.clone()));
    }

    pub(crate) fn started(&self) {
        self.running.inc();
    }

    pub(crate) fn finished(&self, result: SyncResult, failure: Option<Reason>, took: std::time::Duration) {
        self.running.dec();
        self.seconds.inc_by(took.as_secs_f64());
        self.syncs.get_or_create(&ResultLabel { result }).inc();
        if let Some(reason) = failure {
            self.failures.get_or_create(&ReasonLabel { reason }).inc();
        }
    }

    /// How a successful sync read the directory.
    pub(crate) fn read(&self, read: &ReadSummary) {
        let mode = ModeLabel { mode: read.mode };
        self.by_mode.get_or_create(&mode).inc();
        self.entries_read.get_or_create(&mode).inc_by(read.entries_read);
        self.changes_applied.inc_by(read.changes);
    }

    pub(crate) fn watching(&self, by: i64) {
        self.watches.inc_by(by);
    }

    pub(crate) fn pushed(&self) {
        self.pushed.inc();
    }

    pub(crate) fn row_written(&self) {
        self.row_writes.inc();
    }

    pub(crate) fn track(&self, connection: &str, counter: Arc<AtomicU64>) {
        self.connections.with(|p| p.progress.insert(connection.to_owned(), counter));
    }

    pub(crate) fn plan(&self, connection: &str, at: Option<Timestamp>) {
        self.connections.with(|p| match at {
            Some(at) => p.next_sync.insert(connection.to_owned(), at.as_second()),
            None => p.next_sync.remove(connection),
        });
    }

    pub(crate) fn forget(&self, connection: &str) {
        self.connections.with(|p| {
            p.progress.remove(connection);
            p.next_sync.remove(connection);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_bounded_labels() {
        let metrics = AgentMetrics::default();
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        metrics.started();
        metrics.finished(SyncResult::Failed, Some(Reason::AuthenticationFailed), std::time::Duration::from_millis(250));
        metrics.track("ns/corp", Arc::new(AtomicU64::new(42)));
        metrics.plan("ns/corp", Timestamp::from_second(1_800_000_000).ok());
        let delta = ReadSummary { mode: SyncMode::Incremental, entries_read: 7, changes: 3, ..ReadSummary::default() };
        metrics.read(&delta);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        for line in [
            "ldapsync_agent_syncs_total{result=\"failed\"} 1",
            "ldapsync_agent_sync_failures_total{reason=\"AuthenticationFailed\"} 1",
            "ldapsync_agent_sync_seconds_total 0.25",
            "ldapsync_agent_syncs_running 0",
            "ldapsync_agent_sync_objects_read{connection=\"ns/corp\"} 42",
            "ldapsync_agent_next_sync_timestamp_seconds{connection=\"ns/corp\"} 1800000000",
            "ldapsync_agent_reads_total{mode=\"Incremental\"} 1",
            "ldapsync_agent_reads_total{mode=\"Full\"} 0",
            "ldapsync_agent_entries_read_total{mode=\"Incremental\"} 7",
            "ldapsync_agent_changes_applied_total 3",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
        }
        metrics.forget("ns/corp");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(!text.contains("ns/corp"), "{text}");
    }
}
