//! What every worker of one agent shares: the API client, the pod's identity, the snapshots it
//! serves and the index built from them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};
use tokio::sync::Semaphore;

use super::daemon::AgentConfig;
use super::lookup_api::LookupState;
use super::metrics::AgentMetrics;
use crate::api::{CacheStore, LdapConnection, LdapSyncSchedule};
use crate::domain::conditions::ACCEPTED;
use crate::domain::index::Index;
use crate::domain::snapshot::{ConnectionRef, Snapshot};
use crate::store::SnapshotStore;
use crate::store::configmap::ConfigMapStore;
use crate::store::local::LocalStore;

pub(crate) struct AgentContext {
    pub(crate) client: Client,
    pub(crate) namespace: String,
    pub(crate) pod: String,
    pub(crate) store: LocalStore,
    pub(crate) lookup: Arc<LookupState>,
    /// The snapshot served per connection UID.
    snapshots: Mutex<BTreeMap<String, Arc<Snapshot>>>,
    pub(crate) limit: Semaphore,
    pub(crate) dns_server: Option<String>,
    pub(crate) metrics: AgentMetrics,
    pub(crate) schedules: Store<LdapSyncSchedule>,
}

impl AgentContext {
    /// Serves `snapshots` (the warm start) for the pod `config` names.
    pub(crate) fn new(
        client: Client,
        config: &AgentConfig,
        store: LocalStore,
        lookup: Arc<LookupState>,
        snapshots: Vec<Snapshot>,
        schedules: Store<LdapSyncSchedule>,
    ) -> Self {
        Self {
            client,
            namespace: config.namespace.clone(),
            pod: config.pod.clone(),
            store,
            lookup,
            snapshots: Mutex::new(snapshots.into_iter().map(|s| (s.connection.uid.clone(), Arc::new(s))).collect()),
            limit: Semaphore::new(config.max_concurrent_syncs.max(1)),
            dns_server: config.dns_server.clone(),
            metrics: AgentMetrics::default(),
            schedules,
        }
    }

    pub(crate) fn field_manager(&self) -> String {
        format!("ldapsync-agent/{}", self.pod)
    }

    /// The served snapshots. A worker that panicked while holding the lock left them whole (each
    /// change is one insert or remove), so a poisoned lock is used as it is.
    fn served(&self) -> MutexGuard<'_, BTreeMap<String, Arc<Snapshot>>> {
        self.snapshots.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn cached(&self, uid: &str) -> Option<Arc<Snapshot>> {
        self.served().get(uid).cloned()
    }

    pub(crate) fn cached_uids(&self) -> Vec<String> {
        self.served().keys().cloned().collect()
    }

    /// Every served snapshot but `uid`'s: what a new snapshot of `uid` is served beside.
    pub(crate) fn siblings(&self, uid: &str) -> Vec<Arc<Snapshot>> {
        self.served().iter().filter(|(k, _)| *k != uid).map(|(_, s)| s.clone()).collect()
    }

    /// Rebuilds the index from the current snapshots, off the async threads.
    pub(crate) async fn publish(&self) {
        let snapshots: Vec<Arc<Snapshot>> = self.served().values().cloned().collect();
        match tokio::task::spawn_blocking(move || Index::build(snapshots)).await {
            Ok(index) => self.lookup.swap(index),
            Err(e) => tracing::error!(error = %e, "index build failed; still serving the previous index"),
        }
    }

    /// Replaces (or with `None` removes) a connection's snapshot and swaps the index.
    pub(crate) async fn set_snapshot(&self, uid: &str, snapshot: Option<Arc<Snapshot>>) {
        {
            let mut served = self.served();
            match snapshot {
                Some(snap) => served.insert(uid.to_owned(), snap),
                None => served.remove(uid),
            };
        }
        self.publish().await;
    }

    /// Where `kind` keeps this pod's snapshots.
    pub(crate) fn store_of(&self, kind: CacheStore) -> Box<dyn SnapshotStore> {
        match kind {
            CacheStore::Sidecar => Box::new(self.store.clone()),
            CacheStore::ConfigMap => Box::new(ConfigMapStore::new(self.client.clone(), &self.namespace, &self.pod)),
        }
    }
}

pub(crate) fn connection_ref(conn: &LdapConnection) -> ConnectionRef {
    ConnectionRef {
        namespace: conn.namespace().unwrap_or_default(),
        name: conn.name_any(),
        uid: conn.uid().unwrap_or_default(),
    }
}

/// `namespace/name`, as logs and metric labels name a connection.
pub(crate) fn conn_name(conn: &LdapConnection) -> String {
    format!("{}/{}", conn.namespace().unwrap_or_default(), conn.name_any())
}

/// The controller accepted exactly this generation.
pub(crate) fn accepted(conn: &LdapConnection) -> bool {
    conn.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == ACCEPTED && c.status == "True" && c.observed_generation == conn.metadata.generation)
    })
}

pub(crate) fn annotation<'a>(conn: &'a LdapConnection, key: &str) -> Option<&'a str> {
    conn.metadata.annotations.as_ref().and_then(|a| a.get(key)).map(String::as_str)
}
