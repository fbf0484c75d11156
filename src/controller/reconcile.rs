//! Reconciling one LdapConnection: validate → judge its search base → status from the rows →
//! apply (finalizer, stale rows, status by server-side apply, Events). Deletion runs the cache
//! cleanup behind the `ldapsync.io/cache-cleanup` finalizer.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, ListParams, PartialObjectMeta, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use super::metrics::{ConditionCounts, Metrics, Write};
use super::{ControllerConfig, ErrorCategory, FIELD_MANAGER, schedules};
use crate::api::{CACHE_CLEANUP_FINALIZER, LdapConnection, LdapConnectionStatus, LdapSyncSchedule, NodePhase};
use crate::domain::conditions::{
    self, Acceptance, DesiredStatus, Facts, SEARCH_BASE_CONFLICT, desired_status, rows_to_remove, status_differs,
    transitions,
};
use crate::domain::dn::Dn;
use crate::domain::search_base::{Claim, judge};
use crate::domain::validation::{ReferencedObjects, Rejection, normalize_domain, validate, validate_spec};
use crate::store::configmap::LABEL_CONNECTION_UID;

/// A failed reconcile step.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("LdapConnection has no namespace")]
    NoNamespace,
    #[error("cannot read {kind} {name:?}: {source}")]
    ReadReference { kind: &'static str, name: String, source: kube::Error },
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

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409 || s.code == 422 && s.message.contains("test"))
}

impl ReconcileError {
    pub fn category(&self) -> ErrorCategory {
        match self {
            Self::NoNamespace => ErrorCategory::InvalidObject,
            Self::ReadReference { .. } => ErrorCategory::ApiRead,
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

struct Context {
    client: Client,
    config: ControllerConfig,
    connections: Store<LdapConnection>,
    schedules: Store<LdapSyncSchedule>,
    pods: Store<PartialObjectMeta<Pod>>,
    recorder: Recorder,
    metrics: Arc<Metrics>,
    failures: Mutex<HashMap<ObjectRef<LdapConnection>, u32>>,
}

fn scoped<K>(client: Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client, ns),
        None => Api::all(client),
    }
}

/// Forwards every object a watch stream reports (applied or deleted) to a channel the controller
/// maps to connections, so that the stream (and the store behind it) runs on its own task.
fn forward<K: Send + 'static>(
    stream: impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    what: &'static str,
    on_object: impl Fn(&K) + Send + 'static,
) -> futures::channel::mpsc::UnboundedReceiver<Result<K, watcher::Error>> {
    // Unbounded: the controller starts consuming only after the pod and schedule stores are
    // complete, and a bounded channel would stop those watches before they get there.
    let (tx, rx) = futures::channel::mpsc::unbounded();
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            let objects = match event {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o) | watcher::Event::Delete(o)) => vec![o],
                Ok(watcher::Event::Init | watcher::Event::InitDone) => continue,
                Err(e) => {
                    tracing::warn!(watch = what, error = %e, "watch failed; retrying with backoff");
                    continue;
                }
            };
            for o in objects {
                on_object(&o);
                if tx.unbounded_send(Ok(o)).is_err() {
                    return;
                }
            }
        }
    });
    rx
}

/// Connections of `namespace` that reference `name` through `refers`.
fn referencing(
    store: &Store<LdapConnection>,
    namespace: Option<String>,
    refers: impl Fn(&LdapConnection) -> bool,
) -> Vec<ObjectRef<LdapConnection>> {
    store
        .state()
        .into_iter()
        .filter(|c| c.metadata.namespace == namespace && refers(c))
        .map(|c| ObjectRef::from_obj(&*c))
        .collect()
}

fn references_secret(c: &LdapConnection, name: &str) -> bool {
    let s = &c.spec;
    s.auth.simple.as_ref().is_some_and(|a| a.password_secret_ref.name == name)
        || s.auth.kerberos.as_ref().is_some_and(|k| k.keytab_secret_ref.name == name)
        || s.tls.ca.as_ref().and_then(|ca| ca.secret_ref.as_ref()).is_some_and(|r| r.name == name)
}

fn references_config_map(c: &LdapConnection, name: &str) -> bool {
    c.spec.tls.ca.as_ref().and_then(|ca| ca.config_map_ref.as_ref()).is_some_and(|r| r.name == name)
}

/// True when the controller refused `c` because another connection owns its search base.
fn lost_a_conflict(c: &LdapConnection) -> bool {
    c.status.as_ref().is_some_and(|s| {
        s.conditions.iter().any(|c| c.type_ == conditions::ACCEPTED && c.reason == SEARCH_BASE_CONFLICT)
    })
}

/// Runs the connection controller until `shutdown` resolves.
pub async fn run(
    client: Client,
    config: ControllerConfig,
    metrics: Arc<Metrics>,
    counts: Arc<Mutex<ConditionCounts>>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let ns = config.namespace.as_deref();
    let connections: Api<LdapConnection> = scoped(client.clone(), ns);
    let watch = watcher::Config::default();

    let (schedules, schedule_writer) = reflector::store();
    let schedule_api: Api<LdapSyncSchedule> = scoped(client.clone(), ns);
    let schedule_status = schedules::StatusWriter::new(client.clone(), metrics.clone());
    let schedule_events = forward(
        reflector::reflector(schedule_writer, watcher(schedule_api, watch.clone())).default_backoff(),
        "ldapsyncschedules",
        move |s: &LdapSyncSchedule| schedule_status.observe(s),
    );
    let (pods, pod_writer) = reflector::store();
    let pod_api: Api<PartialObjectMeta<Pod>> = scoped(client.clone(), ns);
    let pod_events = forward(
        reflector::reflector(pod_writer, watcher(pod_api, watch.clone().labels(&config.gateway_selector)))
            .default_backoff(),
        "pods",
        |_| {},
    );
    let secret_events = forward(
        watcher(scoped::<PartialObjectMeta<Secret>>(client.clone(), ns), watch.clone()).default_backoff(),
        "secrets",
        |_| {},
    );
    let config_map_events = forward(
        watcher(scoped::<PartialObjectMeta<ConfigMap>>(client.clone(), ns), watch.clone()).default_backoff(),
        "configmaps",
        |_| {},
    );
    let peer_events = forward(watcher(connections.clone(), watch.clone()).default_backoff(), "ldapconnections", |_| {});

    // Rows are only judged against a complete list of pods.
    let _ = pods.wait_until_ready().await;
    let _ = schedules.wait_until_ready().await;

    let controller = Controller::new(connections, watch);
    let store = controller.store();
    let recorder = Recorder::new(
        client.clone(),
        Reporter { controller: FIELD_MANAGER.into(), instance: Some(config.identity.clone()) },
    );
    let ctx = Arc::new(Context {
        client,
        config,
        connections: store.clone(),
        schedules,
        pods,
        recorder,
        metrics,
        failures: Mutex::default(),
    });
    tokio::spawn(count_conditions(store.clone(), counts));

    let (s1, s2, s3, s4, s5) = (store.clone(), store.clone(), store.clone(), store.clone(), store.clone());
    controller
        .watches_stream(schedule_events, move |s: LdapSyncSchedule| {
            let name = s.name_any();
            referencing(&s1, s.metadata.namespace.clone(), |c| {
                c.spec.schedule_ref.as_ref().is_some_and(|r| r.name == name)
            })
        })
        .watches_stream(pod_events, move |p: PartialObjectMeta<Pod>| {
            referencing(&s2, p.metadata.namespace.clone(), |_| true)
        })
        .watches_stream(secret_events, move |s: PartialObjectMeta<Secret>| {
            let name = s.name_any();
            referencing(&s3, s.metadata.namespace.clone(), |c| references_secret(c, &name))
        })
        .watches_stream(config_map_events, move |m: PartialObjectMeta<ConfigMap>| {
            let name = m.name_any();
            let mut refs = referencing(&s4, m.metadata.namespace.clone(), |c| references_config_map(c, &name));
            for owner in m.owner_references() {
                if owner.kind == "LdapConnection" {
                    let mut r = ObjectRef::new(&owner.name);
                    if let Some(ns) = &m.metadata.namespace {
                        r = r.within(ns);
                    }
                    refs.push(r);
                }
            }
            refs
        })
        .watches_stream(peer_events, move |changed: LdapConnection| {
            // Same-domain peers may win or lose the contest; a loser may win now that this one moved.
            let name = changed.name_any();
            let domain = normalize_domain(&changed.spec.domain).ok();
            referencing(&s5, changed.metadata.namespace.clone(), |c| {
                c.name_any() != name && (normalize_domain(&c.spec.domain).ok() == domain || lost_a_conflict(c))
            })
        })
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}

async fn count_conditions(store: Store<LdapConnection>, counts: Arc<Mutex<ConditionCounts>>) {
    loop {
        let mut c = ConditionCounts::default();
        for conn in store.state() {
            let conds = conn.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default();
            let is = |t: &str, s: &str| conds.iter().any(|c| c.type_ == t && c.status == s);
            c.accepted += u64::from(is(conditions::ACCEPTED, "True"));
            c.rejected += u64::from(is(conditions::ACCEPTED, "False"));
            c.ready += u64::from(is(conditions::READY, "True"));
            c.not_ready += u64::from(is(conditions::READY, "False"));
            c.stale += u64::from(is(conditions::STALE, "True"));
            c.duplicates += u64::from(is(conditions::DUPLICATES_FOUND, "True"));
        }
        if let Ok(mut guard) = counts.lock() {
            *guard = c;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

async fn reconcile(conn: Arc<LdapConnection>, ctx: Arc<Context>) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    let result = reconcile_connection(&conn, &ctx).await;
    ctx.metrics.reconciled(started.elapsed(), result.as_ref().map(|_| ()).map_err(ReconcileError::category));
    if result.is_ok()
        && let Ok(mut failures) = ctx.failures.lock()
    {
        failures.remove(&ObjectRef::from_obj(&*conn));
    }
    result
}

/// Transient errors retry with a per-object exponential backoff (1 s doubling to 5 min).
fn error_policy(conn: Arc<LdapConnection>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    let attempts = ctx.failures.lock().map_or(1, |mut f| {
        let n = f.entry(ObjectRef::from_obj(&*conn)).or_insert(0);
        *n = n.saturating_add(1);
        *n
    });
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
    let name = conn.name_any();
    let api: Api<LdapConnection> = Api::namespaced(ctx.client.clone(), &ns);
    if conn.metadata.deletion_timestamp.is_some() {
        return cleanup(conn, ctx, &api, &ns).await;
    }
    if !conn.finalizers().iter().any(|f| f == CACHE_CLEANUP_FINALIZER) && add_finalizer(&api, conn).await? {
        ctx.metrics.wrote(Write::Finalizer);
    }
    let acceptance = accept(conn, ctx, &ns).await?;
    let live = live_pods(ctx, &ns);
    let status = conn.status.clone().unwrap_or_default();
    let gone = rows_to_remove(&status.nodes, &live);
    if !gone.is_empty() {
        remove_rows(&api, &name, &gone).await?;
        ctx.metrics.wrote(Write::StaleRows);
    }
    let generation = conn.metadata.generation.unwrap_or(0);
    let compute = |status: &LdapConnectionStatus| {
        let facts = Facts { generation, acceptance: &acceptance, rows: &status.nodes, live_pods: &live };
        desired_status(facts, &status.conditions, &Time(jiff::Timestamp::now()))
    };
    if status_differs(conn.status.as_ref(), &compute(&status)) {
        // The cached object may predate our own last write (a peer's event can arrive first):
        // decide on the object as it is now, so that nothing is written or announced twice.
        let fresh = api.get_status(&name).await.map_err(|source| ReconcileError::ReadReference {
            kind: "LdapConnection",
            name: name.clone(),
            source,
        })?;
        if fresh.metadata.generation != conn.metadata.generation {
            return Ok(Action::requeue(Duration::from_millis(100)));
        }
        let fresh_status = fresh.status.unwrap_or_default();
        let desired = compute(&fresh_status);
        if status_differs(Some(&fresh_status), &desired) {
            apply_status(&api, &name, &desired).await?;
            ctx.metrics.wrote(Write::Status);
            for t in transitions(&fresh_status.conditions, &desired.conditions) {
                publish(ctx, conn, t.warning, &t.reason, t.note).await;
            }
        }
    }
    Ok(match acceptance {
        // Invalid specs wait for a change of the object or of what it references (all watched).
        Acceptance::Rejected(_) => Action::await_change(),
        Acceptance::Accepted { .. } => Action::requeue(Duration::from_secs(3600)),
    })
}

async fn publish(ctx: &Context, conn: &LdapConnection, warning: bool, reason: &str, note: String) {
    let event = KubeEvent {
        type_: if warning { EventType::Warning } else { EventType::Normal },
        reason: reason.to_owned(),
        note: Some(note),
        action: "Reconcile".into(),
        secondary: None,
    };
    match ctx.recorder.publish(&event, &conn.object_ref(&())).await {
        Ok(()) => ctx.metrics.wrote(Write::Event),
        Err(e) => tracing::warn!(connection = %conn.name_any(), reason, error = %e, "cannot record an Event"),
    }
}

fn live_pods(ctx: &Context, ns: &str) -> BTreeSet<String> {
    ctx.pods
        .state()
        .iter()
        .filter(|p| p.metadata.namespace.as_deref() == Some(ns) && p.metadata.deletion_timestamp.is_none())
        .map(|p| p.name_any())
        .collect()
}

/// Validation, then the search-base contest, then what the spec references.
async fn accept(conn: &LdapConnection, ctx: &Context, ns: &str) -> Result<Acceptance, ReconcileError> {
    let (domain, base) = match validate_spec(&conn.spec) {
        Ok(v) => v,
        Err(r) => return Ok(Acceptance::Rejected(r)),
    };
    let me = Claim { name: conn.name_any(), domain, base, created: created(conn) };
    let claims: Vec<Claim> = ctx
        .connections
        .state()
        .iter()
        .filter(|c| c.metadata.namespace.as_deref() == Some(ns) && c.metadata.deletion_timestamp.is_none())
        .filter_map(|c| {
            let domain = normalize_domain(&c.spec.domain).ok()?;
            let base = Dn::parse(&c.spec.search_base).ok()?;
            Some(Claim { name: c.name_any(), domain, base, created: created(c) })
        })
        .collect();
    let verdict = judge(&me, &claims);
    if let Some(winner) = verdict.conflict_with {
        return Ok(Acceptance::Rejected(Rejection {
            reason: SEARCH_BASE_CONFLICT,
            field: "spec.searchBase".into(),
            message: format!(
                "domain {} and search base {:?} are already synced by LdapConnection {winner} (the oldest connection keeps them)",
                me.domain, conn.spec.search_base
            ),
        }));
    }
    let refs = load_references(conn, ctx, ns).await?;
    Ok(match validate(&conn.spec, &refs) {
        Ok(accepted) => {
            Acceptance::Accepted { kerberos_principal: accepted.kerberos_principal, overlaps: verdict.overlaps }
        }
        Err(r) => Acceptance::Rejected(r),
    })
}

fn created(c: &LdapConnection) -> i64 {
    c.metadata.creation_timestamp.as_ref().map_or(i64::MAX, |t| t.0.as_second())
}

/// The Secrets and ConfigMaps a connection references, read fresh from the API, and its schedule.
/// Reads what `conn` references, fresh from the API (Secrets, the CA ConfigMap) and from the
/// schedule cache; an object that does not exist is left out.
async fn load_references(conn: &LdapConnection, ctx: &Context, ns: &str) -> Result<ReferencedObjects, ReconcileError> {
    let spec = &conn.spec;
    let mut secret_names = BTreeSet::new();
    if let Some(s) = &spec.auth.simple {
        secret_names.insert(s.password_secret_ref.name.clone());
    }
    if let Some(k) = &spec.auth.kerberos {
        secret_names.insert(k.keytab_secret_ref.name.clone());
    }
    let ca = spec.tls.ca.as_ref();
    if let Some(r) = ca.and_then(|c| c.secret_ref.as_ref()) {
        secret_names.insert(r.name.clone());
    }
    let secret_api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let mut secrets = BTreeMap::new();
    for name in secret_names {
        let found = secret_api.get_opt(&name).await.map_err(|source| ReconcileError::ReadReference {
            kind: "Secret",
            name: name.clone(),
            source,
        })?;
        if let Some(found) = found {
            secrets.insert(name, found.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect());
        }
    }
    let mut config_maps = BTreeMap::new();
    if let Some(r) = ca.and_then(|c| c.config_map_ref.as_ref()) {
        let cm_api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
        let found = cm_api.get_opt(&r.name).await.map_err(|source| ReconcileError::ReadReference {
            kind: "ConfigMap",
            name: r.name.clone(),
            source,
        })?;
        if let Some(m) = found {
            let mut keys: BTreeMap<String, Vec<u8>> =
                m.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
            keys.extend(m.binary_data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)));
            config_maps.insert(r.name.clone(), keys);
        }
    }
    let mut schedules = BTreeMap::new();
    if let Some(r) = &spec.schedule_ref
        && let Some(s) = ctx.schedules.get(&ObjectRef::new(&r.name).within(ns))
    {
        schedules.insert(r.name.clone(), s.spec.clone());
    }
    Ok(ReferencedObjects { secrets, config_maps, schedules })
}

fn json_patch(ops: serde_json::Value) -> Patch<()> {
    // The operations are built here from fixed shapes; they always deserialize.
    Patch::Json(serde_json::from_value(ops).unwrap_or(json_patch::Patch(Vec::new())))
}

/// Adds the cleanup finalizer; false when it turned out to be there already.
async fn add_finalizer(api: &Api<LdapConnection>, conn: &LdapConnection) -> Result<bool, ReconcileError> {
    let ops = if conn.metadata.finalizers.as_ref().is_none_or(Vec::is_empty) {
        json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": conn.resource_version()},
            {"op": "add", "path": "/metadata/finalizers", "value": [CACHE_CLEANUP_FINALIZER]}
        ])
    } else {
        json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": conn.resource_version()},
            {"op": "add", "path": "/metadata/finalizers/-", "value": CACHE_CLEANUP_FINALIZER}
        ])
    };
    match api.patch(&conn.name_any(), &PatchParams::default(), &json_patch(ops)).await {
        Ok(_) => Ok(true),
        // The cached object was stale: it may carry the finalizer already.
        Err(e) if is_conflict(&e) => {
            let fresh = api.get(&conn.name_any()).await.map_err(ReconcileError::AddFinalizer)?;
            if fresh.finalizers().iter().any(|f| f == CACHE_CLEANUP_FINALIZER) {
                Ok(false)
            } else {
                Err(ReconcileError::AddFinalizer(e))
            }
        }
        Err(e) => Err(ReconcileError::AddFinalizer(e)),
    }
}

async fn remove_finalizer(api: &Api<LdapConnection>, conn: &LdapConnection) -> Result<(), ReconcileError> {
    let Some(index) = conn.finalizers().iter().position(|f| f == CACHE_CLEANUP_FINALIZER) else { return Ok(()) };
    let ops = json!([
        {"op": "test", "path": format!("/metadata/finalizers/{index}"), "value": CACHE_CLEANUP_FINALIZER},
        {"op": "remove", "path": format!("/metadata/finalizers/{index}")}
    ]);
    match api.patch(&conn.name_any(), &PatchParams::default(), &json_patch(ops)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(ReconcileError::RemoveFinalizer(e)),
    }
}

/// Removes rows of pods that are gone; each removal is guarded by a test of the row's pod, so a
/// row an agent just added at that index is never removed by mistake.
async fn remove_rows(api: &Api<LdapConnection>, name: &str, gone: &[(usize, String)]) -> Result<(), ReconcileError> {
    let mut ops = Vec::new();
    for (index, pod) in gone.iter().rev() {
        ops.push(json!({"op": "test", "path": format!("/status/nodes/{index}/pod"), "value": pod}));
        ops.push(json!({"op": "remove", "path": format!("/status/nodes/{index}")}));
    }
    api.patch_status(name, &PatchParams::default(), &json_patch(serde_json::Value::Array(ops)))
        .await
        .map_err(ReconcileError::RemoveRows)?;
    Ok(())
}

async fn apply_status(api: &Api<LdapConnection>, name: &str, desired: &DesiredStatus) -> Result<(), ReconcileError> {
    let mut status = json!({
        "observedGeneration": desired.observed_generation,
        "conditions": desired.conditions,
        "summary": desired.summary,
    });
    if let Some(p) = &desired.kerberos_principal {
        status["kerberosPrincipal"] = json!(p);
    }
    let patch = json!({"apiVersion": "ldapsync.io/v1alpha1", "kind": "LdapConnection", "status": status});
    api.patch_status(name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(patch))
        .await
        .map_err(ReconcileError::PatchStatus)?;
    Ok(())
}

/// Deletes the snapshot ConfigMaps, waits (bounded) for every live agent to report its cache
/// purged, then lets the connection go.
async fn cleanup(
    conn: &LdapConnection,
    ctx: &Context,
    api: &Api<LdapConnection>,
    ns: &str,
) -> Result<Action, ReconcileError> {
    if !conn.finalizers().iter().any(|f| f == CACHE_CLEANUP_FINALIZER) {
        return Ok(Action::await_change());
    }
    let uid = conn.uid().unwrap_or_default();
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    let selector = ListParams::default().labels(&format!("{LABEL_CONNECTION_UID}={uid}"));
    let existing = cms.list_metadata(&selector).await.map_err(ReconcileError::DeleteConfigMaps)?;
    if !existing.items.is_empty() {
        cms.delete_collection(&DeleteParams::background(), &selector)
            .await
            .map_err(ReconcileError::DeleteConfigMaps)?;
        ctx.metrics.wrote(Write::ConfigMaps);
        tracing::info!(connection = %conn.name_any(), configmaps = existing.items.len(), "deleted the snapshot ConfigMaps");
    }
    let live = live_pods(ctx, ns);
    let pending: Vec<String> = conn
        .status
        .as_ref()
        .map(|s| s.nodes.as_slice())
        .unwrap_or_default()
        .iter()
        .filter(|r| live.contains(&r.pod) && r.phase != Some(NodePhase::Purged))
        .map(|r| r.pod.clone())
        .collect();
    if !pending.is_empty() {
        let deleted_at = conn.metadata.deletion_timestamp.as_ref().map_or_else(jiff::Timestamp::now, |t| t.0);
        let waited = jiff::Timestamp::now().duration_since(deleted_at).unsigned_abs();
        if waited < ctx.config.cleanup_timeout {
            let left = ctx.config.cleanup_timeout - waited;
            return Ok(Action::requeue(left.min(Duration::from_secs(2))));
        }
        let note = format!(
            "gave up after {}s waiting for {} to report their caches purged; they drop them when they next start",
            ctx.config.cleanup_timeout.as_secs(),
            pending.join(", ")
        );
        publish(ctx, conn, true, "CleanupTimedOut", note).await;
    }
    remove_finalizer(api, conn).await?;
    ctx.metrics.wrote(Write::Finalizer);
    tracing::info!(connection = %conn.name_any(), "caches cleaned up; finalizer removed");
    Ok(Action::await_change())
}
