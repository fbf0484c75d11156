//! The controller's Prometheus metrics. Every label has a fixed, small set of values.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::ErrorCategory;

/// API writes by what they change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    Status,
    Finalizer,
    StaleRows,
    Event,
    ConfigMaps,
    ScheduleStatus,
}

const WRITES: [(Write, &str); 6] = [
    (Write::Status, "status"),
    (Write::Finalizer, "finalizer"),
    (Write::StaleRows, "stale_rows"),
    (Write::Event, "event"),
    (Write::ConfigMaps, "configmaps"),
    (Write::ScheduleStatus, "schedule_status"),
];

/// Upper bounds (seconds) of the reconcile duration histogram.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Debug, Default)]
pub struct Metrics {
    reconciles_ok: AtomicU64,
    reconciles_failed: AtomicU64,
    errors: [AtomicU64; ErrorCategory::ALL.len()],
    writes: [AtomicU64; WRITES.len()],
    duration_buckets: [AtomicU64; BUCKETS.len()],
    duration_count: AtomicU64,
    duration_micros: AtomicU64,
    leader: AtomicBool,
}

/// Connections by condition, counted when scraped.
#[derive(Debug, Default, Clone, Copy)]
pub struct ConditionCounts {
    pub accepted: u64,
    pub rejected: u64,
    pub ready: u64,
    pub not_ready: u64,
    pub stale: u64,
    pub duplicates: u64,
}

impl Metrics {
    pub fn reconciled(&self, took: Duration, result: Result<(), ErrorCategory>) {
        match result {
            Ok(()) => self.reconciles_ok.fetch_add(1, Ordering::Relaxed),
            Err(category) => {
                self.errors[category as usize].fetch_add(1, Ordering::Relaxed);
                self.reconciles_failed.fetch_add(1, Ordering::Relaxed)
            }
        };
        let secs = took.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.duration_buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.duration_count.fetch_add(1, Ordering::Relaxed);
        self.duration_micros.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn wrote(&self, what: Write) {
        if let Some(i) = WRITES.iter().position(|(w, _)| *w == what) {
            self.writes[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::Relaxed);
    }

    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Relaxed)
    }

    /// Total API writes so far (all kinds).
    pub fn writes_total(&self) -> u64 {
        self.writes.iter().map(|w| w.load(Ordering::Relaxed)).sum()
    }

    /// Prometheus text format.
    pub fn render(&self, counts: ConditionCounts) -> String {
        let mut out = String::new();
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        out.push_str("# HELP ldapsync_controller_reconciles_total Reconciles of LdapConnections by result.\n");
        out.push_str("# TYPE ldapsync_controller_reconciles_total counter\n");
        let _ = writeln!(out, "ldapsync_controller_reconciles_total{{result=\"ok\"}} {}", load(&self.reconciles_ok));
        let _ =
            writeln!(out, "ldapsync_controller_reconciles_total{{result=\"error\"}} {}", load(&self.reconciles_failed));
        out.push_str("# HELP ldapsync_controller_reconcile_errors_total Failed reconciles by error category.\n");
        out.push_str("# TYPE ldapsync_controller_reconcile_errors_total counter\n");
        for category in ErrorCategory::ALL {
            let _ = writeln!(
                out,
                "ldapsync_controller_reconcile_errors_total{{category=\"{}\"}} {}",
                category.as_str(),
                load(&self.errors[category as usize])
            );
        }
        out.push_str("# HELP ldapsync_controller_reconcile_duration_seconds Time per reconcile.\n");
        out.push_str("# TYPE ldapsync_controller_reconcile_duration_seconds histogram\n");
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "ldapsync_controller_reconcile_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                load(&self.duration_buckets[i])
            );
        }
        let count = load(&self.duration_count);
        let _ = writeln!(out, "ldapsync_controller_reconcile_duration_seconds_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "ldapsync_controller_reconcile_duration_seconds_sum {}",
            load(&self.duration_micros) as f64 / 1e6
        );
        let _ = writeln!(out, "ldapsync_controller_reconcile_duration_seconds_count {count}");
        out.push_str("# HELP ldapsync_controller_api_writes_total Writes to the Kubernetes API by kind.\n");
        out.push_str("# TYPE ldapsync_controller_api_writes_total counter\n");
        for (i, (_, name)) in WRITES.iter().enumerate() {
            let _ = writeln!(out, "ldapsync_controller_api_writes_total{{kind=\"{name}\"}} {}", load(&self.writes[i]));
        }
        out.push_str("# HELP ldapsync_controller_connections LdapConnections by condition.\n");
        out.push_str("# TYPE ldapsync_controller_connections gauge\n");
        let rows = [
            ("Accepted", "True", counts.accepted),
            ("Accepted", "False", counts.rejected),
            ("Ready", "True", counts.ready),
            ("Ready", "False", counts.not_ready),
            ("Stale", "True", counts.stale),
            ("DuplicatesFound", "True", counts.duplicates),
        ];
        for (condition, status, n) in rows {
            let _ =
                writeln!(out, "ldapsync_controller_connections{{condition=\"{condition}\",status=\"{status}\"}} {n}");
        }
        out.push_str("# HELP ldapsync_controller_leader 1 when this replica holds the leader lease.\n");
        out.push_str("# TYPE ldapsync_controller_leader gauge\n");
        let _ = writeln!(out, "ldapsync_controller_leader {}", u8::from(self.is_leader()));
        out
    }
}
