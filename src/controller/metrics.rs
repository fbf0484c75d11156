//! The controller's Prometheus metrics. Every label has a fixed, small set of values.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::ErrorCategory;

/// API writes by what they change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Write {
    Status,
    Finalizer,
    StaleRows,
    Event,
    ConfigMaps,
    ScheduleStatus,
}

impl Write {
    const ALL: [Write; 6] =
        [Self::Status, Self::Finalizer, Self::StaleRows, Self::Event, Self::ConfigMaps, Self::ScheduleStatus];

    fn label(self) -> &'static str {
        match self {
            Self::Status => "status",
            Self::Finalizer => "finalizer",
            Self::StaleRows => "stale_rows",
            Self::Event => "event",
            Self::ConfigMaps => "configmaps",
            Self::ScheduleStatus => "schedule_status",
        }
    }
}

impl EncodeLabelValue for Write {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        std::fmt::Write::write_str(encoder, self.label())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct WriteLabel {
    kind: Write,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CategoryLabel {
    category: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ConditionLabels {
    condition: &'static str,
    status: &'static str,
}

/// Upper bounds (seconds) of the reconcile duration histogram.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Connections by condition, counted from the cache every few seconds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ConditionCounts {
    pub accepted: u64,
    pub rejected: u64,
    pub ready: u64,
    pub not_ready: u64,
    pub stale: u64,
    pub duplicates: u64,
}

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ResultLabel, Counter>,
    errors: Family<CategoryLabel, Counter>,
    duration: Histogram,
    writes: Family<WriteLabel, Counter>,
    connections: Family<ConditionLabels, Gauge>,
    leader: Gauge,
    is_leader: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        let reconciles = Family::<ResultLabel, Counter>::default();
        let errors = Family::<CategoryLabel, Counter>::default();
        let writes = Family::<WriteLabel, Counter>::default();
        // Every label value shows from the start, at zero.
        for result in ["ok", "error"] {
            reconciles.get_or_create(&ResultLabel { result }).get();
        }
        for category in ErrorCategory::ALL {
            errors.get_or_create(&CategoryLabel { category: category.as_str() }).get();
        }
        for kind in Write::ALL {
            writes.get_or_create(&WriteLabel { kind }).get();
        }
        let duration = Histogram::new(BUCKETS);
        let connections = Family::<ConditionLabels, Gauge>::default();
        let leader = Gauge::default();
        let mut registry = Registry::default();
        registry.register(
            "ldapsync_controller_reconciles",
            "Reconciles of LdapConnections by result.",
            reconciles.clone(),
        );
        registry.register(
            "ldapsync_controller_reconcile_errors",
            "Failed reconciles by error category.",
            errors.clone(),
        );
        registry.register("ldapsync_controller_reconcile_duration_seconds", "Time per reconcile.", duration.clone());
        registry.register("ldapsync_controller_api_writes", "Writes to the Kubernetes API by kind.", writes.clone());
        registry.register("ldapsync_controller_connections", "LdapConnections by condition.", connections.clone());
        registry.register("ldapsync_controller_leader", "1 when this replica holds the leader lease.", leader.clone());
        let metrics = Self {
            registry,
            reconciles,
            errors,
            duration,
            writes,
            connections,
            leader,
            is_leader: AtomicBool::new(false),
        };
        metrics.set_connections(ConditionCounts::default());
        metrics
    }
}

impl Metrics {
    pub fn reconciled(&self, took: Duration, result: Result<(), ErrorCategory>) {
        let outcome = match result {
            Ok(()) => "ok",
            Err(category) => {
                self.errors.get_or_create(&CategoryLabel { category: category.as_str() }).inc();
                "error"
            }
        };
        self.reconciles.get_or_create(&ResultLabel { result: outcome }).inc();
        self.duration.observe(took.as_secs_f64());
    }

    pub fn wrote(&self, kind: Write) {
        self.writes.get_or_create(&WriteLabel { kind }).inc();
    }

    pub fn set_leader(&self, leader: bool) {
        self.is_leader.store(leader, Ordering::Relaxed);
        self.leader.set(i64::from(leader));
    }

    pub fn is_leader(&self) -> bool {
        self.is_leader.load(Ordering::Relaxed)
    }

    pub fn set_connections(&self, counts: ConditionCounts) {
        let rows = [
            ("Accepted", "True", counts.accepted),
            ("Accepted", "False", counts.rejected),
            ("Ready", "True", counts.ready),
            ("Ready", "False", counts.not_ready),
            ("Stale", "True", counts.stale),
            ("DuplicatesFound", "True", counts.duplicates),
        ];
        for (condition, status, n) in rows {
            self.connections.get_or_create(&ConditionLabels { condition, status }).set(n as i64);
        }
    }

    /// The OpenMetrics text of every metric.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_names_and_labels_dashboards_use() {
        let m = Metrics::default();
        m.reconciled(Duration::from_millis(30), Ok(()));
        m.reconciled(Duration::from_millis(3), Err(ErrorCategory::Conflict));
        m.wrote(Write::StaleRows);
        m.set_leader(true);
        m.set_connections(ConditionCounts { accepted: 2, ..ConditionCounts::default() });
        let text = m.render().expect("render");
        for line in [
            "ldapsync_controller_reconciles_total{result=\"ok\"} 1",
            "ldapsync_controller_reconciles_total{result=\"error\"} 1",
            "ldapsync_controller_reconcile_errors_total{category=\"conflict\"} 1",
            "ldapsync_controller_reconcile_errors_total{category=\"api_read\"} 0",
            "ldapsync_controller_reconcile_duration_seconds_bucket{le=\"0.005\"} 1",
            "ldapsync_controller_reconcile_duration_seconds_count 2",
            "ldapsync_controller_api_writes_total{kind=\"stale_rows\"} 1",
            "ldapsync_controller_api_writes_total{kind=\"status\"} 0",
            "ldapsync_controller_connections{condition=\"Accepted\",status=\"True\"} 2",
            "ldapsync_controller_leader 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing from\n{text}");
        }
    }
}
