//! The lookup API's metrics, and the registry the agent adds its own to. Every label is bounded:
//! endpoints, outcomes, socketmap maps and replies are fixed lists; connections are this pod's.

use std::sync::{Arc, RwLock};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::{ENDPOINTS, OUTCOMES, Served};
use crate::domain::socketmap::{MAP_LABELS, REPLY_LABELS};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: &'static str,
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SocketmapLabels {
    map: &'static str,
    outcome: &'static str,
}

/// The age of each served snapshot, computed when scraped.
#[derive(Debug)]
struct SnapshotAge(Arc<Served>);

impl Collector for SnapshotAge {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let index = self.0.index();
        let now = (self.0.now)();
        let mut family = encoder.encode_descriptor(
            "ldapsync_snapshot_age_seconds",
            "Age of the snapshot served per connection.",
            None,
            MetricType::Gauge,
        )?;
        for s in index.snapshots() {
            let connection = format!("{}/{}", s.connection.namespace, s.connection.name);
            ConstGauge::new((now - s.taken_at).max(0)).encode(family.encode_family(&[("connection", connection)])?)?;
        }
        Ok(())
    }
}

/// Counters are taken out of their families once, so that counting a request is one atomic add.
pub(super) struct LookupMetrics {
    registry: RwLock<Registry>,
    requests: [[Counter; OUTCOMES.len()]; ENDPOINTS.len()],
    socketmap: [[Counter; REPLY_LABELS.len()]; MAP_LABELS.len()],
}

impl LookupMetrics {
    pub(super) fn new(served: Arc<Served>) -> Self {
        let requests_family = Family::<RequestLabels, Counter>::default();
        let requests = std::array::from_fn(|e| {
            std::array::from_fn(|o| {
                requests_family.get_or_create_owned(&RequestLabels { endpoint: ENDPOINTS[e].0, outcome: OUTCOMES[o] })
            })
        });
        let socketmap_family = Family::<SocketmapLabels, Counter>::default();
        let socketmap = std::array::from_fn(|m| {
            std::array::from_fn(|r| {
                socketmap_family.get_or_create_owned(&SocketmapLabels { map: MAP_LABELS[m], outcome: REPLY_LABELS[r] })
            })
        });
        let mut registry = Registry::default();
        registry.register("ldapsync_lookup_requests", "Lookup API requests by endpoint and outcome.", requests_family);
        registry.register(
            "ldapsync_socketmap_requests",
            "Socketmap (Postfix) requests by map and reply.",
            socketmap_family,
        );
        registry.register_collector(Box::new(SnapshotAge(served)));
        Self { registry: RwLock::new(registry), requests, socketmap }
    }

    /// Lets another part of the process (the agent's syncs) add its metrics.
    pub(super) fn register(&self, add: impl FnOnce(&mut Registry)) {
        add(&mut self.registry.write().unwrap_or_else(std::sync::PoisonError::into_inner));
    }

    pub(super) fn count_request(&self, endpoint: usize, outcome: usize) {
        if let Some(counter) = self.requests.get(endpoint).and_then(|r| r.get(outcome)) {
            counter.inc();
        }
    }

    pub(super) fn count_socketmap(&self, map: usize, reply: usize) {
        if let Some(counter) = self.socketmap.get(map).and_then(|r| r.get(reply)) {
            counter.inc();
        }
    }

    /// The OpenMetrics text of every registered metric.
    pub(super) fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        let registry = self.registry.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        prometheus_client::encoding::text::encode(&mut out, &registry)?;
        Ok(out)
    }
}
