//! Reconciling one LdapConnection: dereference (every read) → decide (pure, in `domain`) → apply
//! (finalizer, stale rows, status, Events). Deletion runs the cache cleanup behind the
//! `ldapsync.io/cache-cleanup` finalizer.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};

use super::apply::{add_finalizer, apply_status, publish, remove_rows};
use super::cleanup::cleanup;
use super::dereference::{created, dereference};
use super::metrics::{Metrics, Write};
use super::{ControllerConfig, ErrorCategory};
use crate::api::{CACHE_CLEANUP_FINALIZER, LdapConnection, LdapConnectionStatus, LdapSyncSchedule};
use crate::domain::acceptance::decide;
use crate::domain::conditions::{Acceptance, Facts, desired_status, rows_to_remove, status_differs, transitions};
use crate::sync::secrets::ReferenceError;

/// A failed reconcile step.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("LdapConnection has no namespace")]
    NoNamespace,
    #[error(transparent)]
    ReadReference(ReferenceError),
    #[error("cannot read LdapConnection {name:?}: {source}")]
    ReadConnection { name: String, source: kube::Error },
    #[error("cannot add the finalizer: {0}")]
    AddFinalizer(kube::Error),
    #[error("cannot remove the finalizer: {0}")]
    RemoveFinalizer(kube::Error),
    #[error("cannot remove the rows of deleted pods: {0}")]
    RemoveRows(kube::Error),
    #[error("cannot apply the status: {0}")]
    PatchStatus(kube::Error),
    #[error("cannot list or delete the snapshot ConfigMaps: {0}")]
    DeleteConfigMaps(kube::Error),
}

pub(super) fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409 || s.code == 422 && s.message.contains("test"))
}

impl ReconcileError {
    pub fn category(&self) -> ErrorCategory {
        match self {
            Self::NoNamespace => ErrorCategory::InvalidObject,
            Self::ReadReference(_) | Self::ReadConnection { .. } => ErrorCategory::ApiRead,
            Self::AddFinalizer(e)
            | Self::RemoveFinalizer(e)
            | Self::RemoveRows(e)
            | Self::PatchStatus(e)
            | Self::DeleteConfigMaps(e) => {
                if is_conflict(e) {
                    ErrorCategory::Conflict
                } else {
                    ErrorCategory::ApiWrite
                }
            }
        }
    }
}

pub(super) struct Context {
    pub(super) client: Client,
    pub(super) config: ControllerConfig,
    pub(super) connections: Store<LdapConnection>,
    pub(super) schedules: Store<LdapSyncSchedule>,
    pods: Store<PartialObjectMeta<Pod>>,
    pub(super) recorder: Recorder,
    pub(super) metrics: Arc<Metrics>,
    failures: Mutex<HashMap<ObjectRef<LdapConnection>, u32>>,
}

impl Context {
    pub(super) fn new(
        client: Client,
        config: ControllerConfig,
        connections: Store<LdapConnection>,
        schedules: Store<LdapSyncSchedule>,
        pods: Store<PartialObjectMeta<Pod>>,
        recorder: Recorder,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self { client, config, connections, schedules, pods, recorder, metrics, failures: Mutex::default() }
    }

    /// Gateway pods of `ns` that exist and are not going away: the pods expected to sync.
    pub(super) fn live_pods(&self, ns: &str) -> BTreeSet<String> {
        self.pods
            .state()
            .iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(ns) && p.metadata.deletion_timestamp.is_none())
            .map(|p| p.name_any())
            .collect()
    }

    /// Failed reconciles in a row of `conn` (a poisoned map only loses backoff state).
    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectRef<LdapConnection>, u32>> {
        self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

pub(super) async fn reconcile(conn: Arc<LdapConnection>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    let result = reconcile_connection(&conn, &ctx).await;
    ctx.metrics.reconciled(started.elapsed(), result.as_ref().map(|_| ()).map_err(ReconcileError::category));
    if result.is_ok() {
        ctx.failures().remove(&ObjectRef::from_obj(&*conn));
    }
    result
}

/// Transient errors retry with a per-object exponential backoff (1 s doubling to 5 min).
pub(super) fn error_policy(conn: Arc<LdapConnection>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    let attempts = {
        let mut failures = ctx.failures();
        let n = failures.entry(ObjectRef::from_obj(&*conn)).or_insert(0);
        *n = n.saturating_add(1);
        *n
    };
    let delay = Duration::from_secs(1u64 << attempts.min(9).saturating_sub(1)).min(Duration::from_secs(300));
    tracing::warn!(
        connection = %format!("{}/{}", conn.namespace().unwrap_or_default(), conn.name_any()),
        category = error.category().as_str(),
        error = %error,
        retry_in = ?delay,
        "reconcile failed"
    );
    Action::requeue(delay)
}

async fn reconcile_connection(conn: &LdapConnection, ctx: &Context) -> Result<Action, ReconcileError> {
    let ns = conn.namespace().ok_or(ReconcileError::NoNamespace)?;
    let api: Api<LdapConnection> = Api::namespaced(ctx.client.clone(), &ns);
    if conn.metadata.deletion_timestamp.is_some() {
        return cleanup(conn, ctx, &api, &ns).await;
    }
    if !conn.finalizers().iter().any(|f| f == CACHE_CLEANUP_FINALIZER) && add_finalizer(&api, conn).await? {
        ctx.metrics.wrote(Write::Finalizer);
    }
    let read = dereference(conn, ctx, &ns).await?;
    let acceptance = decide(&conn.name_any(), created(conn), &conn.spec, &read.claims, &read.references);
    let status = conn.status.clone().unwrap_or_default();
    let gone = rows_to_remove(&status.nodes, &read.live_pods);
    if !gone.is_empty() {
        remove_rows(&api, &conn.name_any(), &gone).await?;
        ctx.metrics.wrote(Write::StaleRows);
    }
    if !write_status(conn, ctx, &api, &acceptance, &read.live_pods).await? {
        // A newer generation is on its way to the cache: decide on that one shortly.
        return Ok(Action::requeue(Duration::from_millis(100)));
    }
    Ok(match acceptance {
        // Invalid specs wait for a change of the object or of what it references (all watched).
        Acceptance::Rejected(_) => Action::await_change(),
        Acceptance::Accepted { .. } => Action::requeue(Duration::from_secs(3600)),
    })
}

/// Applies the status when it differs, and records the Events of its transitions. False when the
/// object has a newer generation than the one decided on (nothing is written).
async fn write_status(
    conn: &LdapConnection,
    ctx: &Context,
    api: &Api<LdapConnection>,
    acceptance: &Acceptance,
    live: &BTreeSet<String>,
) -> Result<bool, ReconcileError> {
    let name = conn.name_any();
    let generation = conn.metadata.generation.unwrap_or(0);
    let compute = |status: &LdapConnectionStatus| {
        let facts = Facts { generation, acceptance, rows: &status.nodes, live_pods: live };
        desired_status(facts, &status.conditions, &Time(jiff::Timestamp::now()))
    };
    if !status_differs(conn.status.as_ref(), &compute(&conn.status.clone().unwrap_or_default())) {
        return Ok(true);
    }
    // The cached object may predate our own last write (a peer's event can arrive first):
    // decide on the object as it is now, so that nothing is written or announced twice.
    let fresh =
        api.get_status(&name).await.map_err(|source| ReconcileError::ReadConnection { name: name.clone(), source })?;
    if fresh.metadata.generation != conn.metadata.generation {
        return Ok(false);
    }
    let fresh_status = fresh.status.unwrap_or_default();
    let desired = compute(&fresh_status);
    if status_differs(Some(&fresh_status), &desired) {
        apply_status(api, &name, &desired).await?;
        ctx.metrics.wrote(Write::Status);
        for t in transitions(&fresh_status.conditions, &desired.conditions) {
            publish(ctx, conn, t.warning, &t.reason, t.note).await;
        }
    }
    Ok(true)
}
