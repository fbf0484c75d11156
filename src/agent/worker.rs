//! One connection in one gateway pod: decide when to sync (schedule, request, new generation,
//! retry), sync through the engine, keep the cache (file or ConfigMaps), swap the index, and write
//! this pod's row of the connection's status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{ConfigMap, Secret as KubeSecret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tokio::sync::{Semaphore, watch};

use super::lookup_api::LookupState;
use crate::api::{
    APPROVE_DELETIONS_ANNOTATION, CacheStore, DuplicateSummary, HeldSync, LdapConnection, LdapConnectionSpec,
    LdapSyncSchedule, NodePhase, NodeStatus, ObjectCounts, SYNC_REQUESTED_AT_ANNOTATION, SecretKeyRef,
};
use crate::cli::{random_pick, unix_now};
use crate::directory::dns::DnsResolver;
use crate::directory::sync::{ConnectionSecrets, PreparedConnection, SyncError};
use crate::domain::codec;
use crate::domain::conditions::ACCEPTED;
use crate::domain::deletion::{DeletionHeld, DeletionLimits, ObjectIds, check_deletions};
use crate::domain::duplicates::find_duplicates;
use crate::domain::index::Index;
use crate::domain::schedule::{Schedule, default_schedule, jitter_for, parse_schedule};
use crate::domain::snapshot::{ConnectionRef, Snapshot};
use crate::domain::sync_plan::{Due, PlanInput, Reason, next_sync};
use crate::secret::Secret;
use crate::store::configmap::ConfigMapStore;
use crate::store::local::LocalStore;

/// Sync outcomes, as bounded metric labels.
const RESULTS: [&str; 3] = ["synced", "failed", "held"];

/// The agent's own metrics, appended to the lookup API's `/metrics`.
#[derive(Default)]
pub struct AgentMetrics {
    syncs: [AtomicU64; 3],
    running: AtomicU64,
    row_writes: AtomicU64,
    duration_micros: AtomicU64,
    /// Objects read by the running (or last) sync, per connection `namespace/name`.
    progress: std::sync::Mutex<BTreeMap<String, Arc<AtomicU64>>>,
    /// When each connection syncs next by its schedule (Unix seconds; absent when never).
    next_sync: std::sync::Mutex<BTreeMap<String, i64>>,
}

impl AgentMetrics {
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out = String::new();
        out.push_str("# HELP ldapsync_agent_syncs_total Finished syncs by result.\n");
        out.push_str("# TYPE ldapsync_agent_syncs_total counter\n");
        for (i, result) in RESULTS.iter().enumerate() {
            let _ = writeln!(out, "ldapsync_agent_syncs_total{{result=\"{result}\"}} {}", load(&self.syncs[i]));
        }
        out.push_str("# HELP ldapsync_agent_sync_seconds_total Time spent in syncs.\n");
        out.push_str("# TYPE ldapsync_agent_sync_seconds_total counter\n");
        let _ = writeln!(out, "ldapsync_agent_sync_seconds_total {}", load(&self.duration_micros) as f64 / 1e6);
        out.push_str("# HELP ldapsync_agent_syncs_running Syncs running now.\n");
        out.push_str("# TYPE ldapsync_agent_syncs_running gauge\n");
        let _ = writeln!(out, "ldapsync_agent_syncs_running {}", load(&self.running));
        out.push_str("# HELP ldapsync_agent_row_writes_total Writes of this pod's status rows.\n");
        out.push_str("# TYPE ldapsync_agent_row_writes_total counter\n");
        let _ = writeln!(out, "ldapsync_agent_row_writes_total {}", load(&self.row_writes));
        out.push_str("# HELP ldapsync_agent_next_sync_timestamp_seconds When each connection syncs next.\n");
        out.push_str("# TYPE ldapsync_agent_next_sync_timestamp_seconds gauge\n");
        if let Ok(next) = self.next_sync.lock() {
            for (connection, at) in next.iter() {
                let _ = writeln!(out, "ldapsync_agent_next_sync_timestamp_seconds{{connection=\"{connection}\"}} {at}");
            }
        }
        out.push_str("# HELP ldapsync_agent_sync_objects_read Objects read by the running or last sync.\n");
        out.push_str("# TYPE ldapsync_agent_sync_objects_read gauge\n");
        if let Ok(progress) = self.progress.lock() {
            for (connection, n) in progress.iter() {
                let _ = writeln!(out, "ldapsync_agent_sync_objects_read{{connection=\"{connection}\"}} {}", load(n));
            }
        }
        out
    }

    fn track(&self, connection: &str, counter: Arc<AtomicU64>) {
        if let Ok(mut p) = self.progress.lock() {
            p.insert(connection.to_owned(), counter);
        }
    }

    fn forget(&self, connection: &str) {
        if let Ok(mut p) = self.progress.lock() {
            p.remove(connection);
        }
        self.plan(connection, None);
    }

    fn plan(&self, connection: &str, at: Option<Timestamp>) {
        if let Ok(mut next) = self.next_sync.lock() {
            match at {
                Some(at) => next.insert(connection.to_owned(), at.as_second()),
                None => next.remove(connection),
            };
        }
    }
}

/// What every worker of one agent shares.
pub struct AgentContext {
    pub client: Client,
    pub namespace: String,
    pub pod: String,
    pub store: LocalStore,
    pub lookup: Arc<LookupState>,
    /// The snapshot served per connection UID.
    pub snapshots: std::sync::Mutex<BTreeMap<String, Arc<Snapshot>>>,
    pub limit: Semaphore,
    pub dns_server: Option<String>,
    pub metrics: AgentMetrics,
    pub schedules: Store<LdapSyncSchedule>,
}

impl AgentContext {
    fn field_manager(&self) -> String {
        format!("ldapsync-agent/{}", self.pod)
    }

    fn cached(&self, uid: &str) -> Option<Arc<Snapshot>> {
        self.snapshots.lock().ok().and_then(|s| s.get(uid).cloned())
    }

    fn all_snapshots(&self) -> Vec<Arc<Snapshot>> {
        self.snapshots.lock().map(|s| s.values().cloned().collect()).unwrap_or_default()
    }

    /// Rebuilds the index from the current snapshots, off the async threads.
    pub async fn publish(&self) {
        let snapshots = self.all_snapshots();
        match tokio::task::spawn_blocking(move || Index::build(snapshots)).await {
            Ok(index) => self.lookup.swap(index),
            Err(e) => tracing::error!(error = %e, "index build failed; still serving the previous index"),
        }
    }

    /// Replaces (or with `None` removes) a connection's snapshot and swaps the index.
    pub async fn set_snapshot(&self, uid: &str, snapshot: Option<Arc<Snapshot>>) {
        if let Ok(mut s) = self.snapshots.lock() {
            match snapshot {
                Some(snap) => {
                    s.insert(uid.to_owned(), snap);
                }
                None => {
                    s.remove(uid);
                }
            }
        }
        self.publish().await;
    }
}

fn connection_ref(conn: &LdapConnection) -> ConnectionRef {
    ConnectionRef {
        namespace: conn.namespace().unwrap_or_default(),
        name: conn.name_any(),
        uid: conn.uid().unwrap_or_default(),
    }
}

fn conn_name(conn: &LdapConnection) -> String {
    format!("{}/{}", conn.namespace().unwrap_or_default(), conn.name_any())
}

/// The controller accepted exactly this generation.
fn accepted(conn: &LdapConnection) -> bool {
    conn.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == ACCEPTED && c.status == "True" && c.observed_generation == conn.metadata.generation)
    })
}

fn annotation<'a>(conn: &'a LdapConnection, key: &str) -> Option<&'a str> {
    conn.metadata.annotations.as_ref().and_then(|a| a.get(key)).map(String::as_str)
}

/// What this worker remembers between syncs.
#[derive(Default)]
struct WorkerState {
    initialised: bool,
    handled_generation: Option<i64>,
    handled_request: Option<String>,
    last_sync: Option<Timestamp>,
    failures: u32,
    last_attempt: Option<Timestamp>,
    /// The last row written (or found at start): success details carry over to failure rows.
    row: Option<NodeStatus>,
}

impl WorkerState {
    /// The hash of the snapshot the deletion-safety guard holds, if the last sync was held.
    fn held_hash(&self) -> Option<&str> {
        self.row.as_ref().filter(|r| r.phase == Some(NodePhase::Held))?.held.as_ref().map(|h| h.snapshot_hash.as_str())
    }
}

fn ts(t: Timestamp) -> Time {
    Time(t)
}

/// Runs until the connection is deleted (then purges) or the sender goes away (agent stopping).
pub async fn run_worker(ctx: Arc<AgentContext>, uid: String, mut rx: watch::Receiver<Option<Arc<LdapConnection>>>) {
    let mut state = WorkerState::default();
    loop {
        let current = rx.borrow_and_update().clone();
        let Some(conn) = current else {
            purge(&ctx, &uid, None).await;
            return;
        };
        if conn.metadata.deletion_timestamp.is_some() {
            purge(&ctx, &uid, Some(&conn)).await;
            // The object stays until the controller removes its finalizer; nothing more to do.
            loop {
                if rx.changed().await.is_err() || rx.borrow_and_update().is_none() {
                    return;
                }
            }
        }
        if !accepted(&conn) {
            if rx.changed().await.is_err() {
                return;
            }
            continue;
        }
        if !state.initialised {
            initialise(&ctx, &conn, &uid, &mut state).await;
        }
        let schedule = schedule_of(&ctx, &conn);
        let due = next_sync(PlanInput {
            schedule: &schedule,
            now: Timestamp::now(),
            suspended: conn.spec.suspend,
            generation: conn.metadata.generation.unwrap_or(0),
            handled_generation: state.handled_generation,
            request: annotation(&conn, SYNC_REQUESTED_AT_ANNOTATION),
            handled_request: state.handled_request.as_deref(),
            approval_pending: state.held_hash().is_some()
                && annotation(&conn, APPROVE_DELETIONS_ANNOTATION) == state.held_hash(),
            last_sync: state.last_sync,
            failures: state.failures,
            last_attempt: state.last_attempt,
            jitter: jitter_for(&ctx.pod, &uid, schedule.jitter),
        });
        ctx.metrics.plan(
            &conn_name(&conn),
            match due {
                Due::Now(_) => Some(Timestamp::now()),
                Due::At(at, _) => Some(at),
                Due::Never => None,
            },
        );
        let reason = match due {
            Due::Now(r) => r,
            Due::At(at, r) => {
                // Wall-clock target, re-checked at least hourly (clock steps, long sleeps).
                let wait = Duration::try_from(at.duration_since(Timestamp::now())).unwrap_or(Duration::ZERO);
                tokio::select! {
                    () = tokio::time::sleep(wait.min(Duration::from_secs(3600))) => {
                        if wait > Duration::from_secs(3600) { continue }
                        r
                    }
                    changed = rx.changed() => {
                        if changed.is_err() { return }
                        continue;
                    }
                }
            }
            Due::Never => {
                if rx.changed().await.is_err() {
                    return;
                }
                continue;
            }
        };
        // Sync the newest version of the object.
        let latest = rx.borrow_and_update().clone();
        match latest {
            Some(conn) if conn.metadata.deletion_timestamp.is_none() && accepted(&conn) => {
                sync(&ctx, &conn, &uid, &mut state, reason).await;
            }
            _ => continue,
        }
    }
}

/// Picks up where this pod left off: its row (handled request, generation) and its cache.
async fn initialise(ctx: &AgentContext, conn: &LdapConnection, uid: &str, state: &mut WorkerState) {
    state.initialised = true;
    let row = conn.status.as_ref().and_then(|s| s.nodes.iter().find(|r| r.pod == ctx.pod)).cloned();
    if conn.spec.cache.store == CacheStore::ConfigMap && ctx.cached(uid).is_none() {
        let store = ConfigMapStore::new(ctx.client.clone(), &ctx.namespace, &ctx.pod);
        match store.load(&connection_ref(conn)).await {
            Ok(Some((snapshot, _))) => ctx.set_snapshot(uid, Some(Arc::new(snapshot))).await,
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(connection = %conn_name(conn), error = %e, "cannot load the cached snapshot from ConfigMaps; a full sync follows")
            }
        }
    }
    let cached = ctx.cached(uid);
    state.handled_request = row.as_ref().and_then(|r| r.last_handled_sync_request.clone());
    if let Some(snapshot) = &cached {
        state.last_sync = Timestamp::from_second(snapshot.taken_at).ok();
        // A cache from an earlier generation is synced again at once.
        state.handled_generation = row.as_ref().and_then(|r| r.observed_generation);
    }
    state.row = row.filter(|r| r.phase != Some(NodePhase::Purged));
}

fn schedule_of(ctx: &AgentContext, conn: &LdapConnection) -> Schedule {
    let Some(r) = &conn.spec.schedule_ref else { return default_schedule() };
    let found = ctx.schedules.get(&ObjectRef::new(&r.name).within(&ctx.namespace));
    match found.map(|s| parse_schedule(&s.spec)) {
        Some(Ok(schedule)) => schedule,
        Some(Err(e)) => {
            tracing::warn!(connection = %conn_name(conn), schedule = %r.name, error = %e, "invalid schedule; using every 30 minutes");
            default_schedule()
        }
        None => {
            tracing::warn!(connection = %conn_name(conn), schedule = %r.name, "schedule not found; using every 30 minutes");
            default_schedule()
        }
    }
}

/// A sync that produced no new cache, with its stable reason.
struct Failure {
    reason: &'static str,
    message: String,
}

impl From<SyncError> for Failure {
    fn from(e: SyncError) -> Self {
        Self { reason: e.reason(), message: e.to_string() }
    }
}

enum Outcome {
    Synced { snapshot: Arc<Snapshot>, hash: String, content: String, size: u64, duplicates: DuplicateSummary },
    Held(DeletionHeld),
}

async fn sync(ctx: &AgentContext, conn: &LdapConnection, uid: &str, state: &mut WorkerState, why: Reason) {
    let Ok(_permit) = ctx.limit.acquire().await else { return };
    let started = Timestamp::now();
    let clock = std::time::Instant::now();
    let generation = conn.metadata.generation;
    let request = annotation(conn, SYNC_REQUESTED_AT_ANNOTATION).map(str::to_owned);
    tracing::info!(connection = %conn_name(conn), reason = why.as_str(), "sync starting");
    if state.row.is_none() {
        // The very first sync of this pod shows up at once; later syncs write once, at the end.
        let row = NodeStatus {
            pod: ctx.pod.clone(),
            phase: Some(NodePhase::Syncing),
            observed_generation: generation,
            last_attempt_time: Some(ts(started)),
            last_handled_sync_request: state.handled_request.clone(),
            ..Default::default()
        };
        write_row(ctx, conn, &row).await;
        state.row = Some(row);
    }
    ctx.metrics.running.fetch_add(1, Ordering::Relaxed);
    let result = sync_once(ctx, conn, uid).await;
    ctx.metrics.running.fetch_sub(1, Ordering::Relaxed);
    ctx.metrics.duration_micros.fetch_add(clock.elapsed().as_micros() as u64, Ordering::Relaxed);
    let previous = state.row.clone().unwrap_or_default();
    let mut row = NodeStatus {
        pod: ctx.pod.clone(),
        observed_generation: generation,
        last_attempt_time: Some(ts(started)),
        last_handled_sync_request: request.clone().or_else(|| state.handled_request.clone()),
        ..previous.clone()
    };
    row.held = None;
    row.reason = None;
    row.message = None;
    state.handled_request = row.last_handled_sync_request.clone();
    match result {
        Ok(Outcome::Synced { snapshot, hash, content, size, duplicates }) => {
            ctx.metrics.syncs[0].fetch_add(1, Ordering::Relaxed);
            let counts = snapshot.counts();
            row.phase = Some(NodePhase::Synced);
            row.last_success_time = Some(ts(Timestamp::now()));
            row.server = Some(snapshot.server.clone());
            row.counts = Some(ObjectCounts {
                users: counts.users as i64,
                contacts: counts.contacts as i64,
                groups: counts.groups as i64,
                addresses: counts.addresses as i64,
            });
            row.duplicates = Some(duplicates);
            row.snapshot_hash = Some(hash);
            row.content_hash = Some(content);
            row.snapshot_size = Some(size as i64);
            row.message =
                Some(format!("synced {} objects in {:.1} s", snapshot.objects.len(), clock.elapsed().as_secs_f64()));
            state.failures = 0;
            state.last_sync = Some(Timestamp::now());
            state.handled_generation = generation;
            ctx.lookup.set_stale(&conn_name(conn), false);
            tracing::info!(connection = %conn_name(conn), objects = snapshot.objects.len(), server = %snapshot.server, "sync finished");
        }
        Ok(Outcome::Held(held)) => {
            ctx.metrics.syncs[2].fetch_add(1, Ordering::Relaxed);
            row.phase = Some(NodePhase::Held);
            row.reason = Some("DeletionThresholdExceeded".into());
            row.message = Some(held.to_string());
            row.held = Some(HeldSync {
                previous_objects: held.previous as i64,
                new_objects: held.next as i64,
                deleted_objects: held.deleted as i64,
                snapshot_hash: held.snapshot_hash.clone(),
            });
            state.failures = 0;
            state.last_sync = Some(Timestamp::now());
            state.handled_generation = generation;
            tracing::warn!(connection = %conn_name(conn), error = %held, "sync held by the deletion-safety guard; the previous cache keeps serving");
        }
        Err(failure) => {
            ctx.metrics.syncs[1].fetch_add(1, Ordering::Relaxed);
            let cached = ctx.cached(uid).is_some();
            row.phase = Some(if cached { NodePhase::Stale } else { NodePhase::Failed });
            row.reason = Some(failure.reason.to_owned());
            row.message = Some(failure.message.clone());
            state.failures = state.failures.saturating_add(1);
            state.last_attempt = Some(started);
            if cached {
                ctx.lookup.set_stale(&conn_name(conn), true);
            }
            tracing::warn!(connection = %conn_name(conn), reason = failure.reason, error = %failure.message, stale = cached, "sync failed");
        }
    }
    write_row(ctx, conn, &row).await;
    state.row = Some(row);
}

async fn sync_once(ctx: &AgentContext, conn: &LdapConnection, uid: &str) -> Result<Outcome, Failure> {
    let spec = &conn.spec;
    let secrets = fetch_secrets(ctx, spec).await?;
    let prepared = PreparedConnection::prepare(connection_ref(conn), spec.clone(), secrets).await?;
    ctx.metrics.track(&conn_name(conn), prepared.progress.clone());
    let dns = DnsResolver::new(ctx.dns_server.as_deref(), prepared.transport.operation_timeout)
        .map_err(|e| Failure::from(SyncError::Discover(e)))?;
    let snapshot = prepared.read_snapshot(&dns, random_pick, unix_now).await?;
    let (snapshot, (encoded, content)) =
        tokio::task::spawn_blocking(move || codec::encode_and_hash(&snapshot).map(|coded| (snapshot, coded)))
            .await
            .map_err(|e| Failure { reason: "StoreFailed", message: format!("encoding task failed: {e}") })?
            .map_err(|e| Failure { reason: "StoreFailed", message: format!("cannot encode the snapshot: {e}") })?;
    let limits = DeletionLimits {
        max_objects: u64::from(spec.deletion_safety.max_deleted_objects),
        max_percent: u64::from(spec.deletion_safety.max_deleted_percent),
    };
    let previous = ctx.cached(uid).map(|s| ObjectIds::of(&s));
    let approval = annotation(conn, APPROVE_DELETIONS_ANNOTATION);
    if let Err(held) = check_deletions(previous.as_ref(), &snapshot, &content, limits, approval) {
        return Ok(Outcome::Held(held));
    }
    match spec.cache.store {
        CacheStore::Sidecar => {
            let store = ctx.store.clone();
            let key = uid.to_owned();
            let bytes = encoded.clone();
            tokio::task::spawn_blocking(move || store.write(&key, &bytes))
                .await
                .map_err(|e| Failure { reason: "StoreFailed", message: format!("store task failed: {e}") })?
                .map_err(|e| Failure { reason: "StoreFailed", message: e.to_string() })?;
        }
        CacheStore::ConfigMap => {
            ConfigMapStore::new(ctx.client.clone(), &ctx.namespace, &ctx.pod)
                .write(&connection_ref(conn), &encoded)
                .await
                .map_err(|e| Failure { reason: "StoreFailed", message: e.to_string() })?;
            // A file from when the connection used the sidecar store must not outlive the switch.
            let _ = ctx.store.purge(uid);
        }
    }
    let snapshot = Arc::new(snapshot);
    ctx.set_snapshot(uid, Some(snapshot.clone())).await;
    let all = ctx.all_snapshots();
    let report = find_duplicates(all.iter().map(|s| s.as_ref()));
    let duplicates = DuplicateSummary {
        user_names: report.user_names as i64,
        addresses: report.addresses as i64,
        examples: report.examples,
    };
    Ok(Outcome::Synced { snapshot, hash: encoded.hash, content, size: encoded.bytes.len() as u64, duplicates })
}

/// Reads the Secrets and ConfigMaps the spec references, fresh for each sync.
async fn fetch_secrets(ctx: &AgentContext, spec: &LdapConnectionSpec) -> Result<ConnectionSecrets, Failure> {
    let secrets: Api<KubeSecret> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let read_secret = |field: &'static str, r: SecretKeyRef, default_key: &'static str| {
        let secrets = secrets.clone();
        async move {
            let key = r.key.clone().unwrap_or_else(|| default_key.to_owned());
            let found = secrets.get_opt(&r.name).await.map_err(|e| read_failure(field, "Secret", &r.name, &e))?;
            let data = found.and_then(|s| s.data).and_then(|mut d| d.remove(&key)).ok_or_else(|| Failure {
                reason: "SecretNotFound",
                message: format!("{field}: Secret {:?} has no key {key:?}", r.name),
            })?;
            Ok::<Vec<u8>, Failure>(data.0)
        }
    };
    let mut out = ConnectionSecrets::default();
    if let Some(simple) = &spec.auth.simple {
        let mut pw =
            read_secret("spec.auth.simple.passwordSecretRef", simple.password_secret_ref.clone(), "password").await?;
        while pw.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            pw.pop();
        }
        out.password = Some(Secret::new(pw));
    }
    if let Some(kerberos) = &spec.auth.kerberos {
        out.keytab = Some(Secret::new(
            read_secret("spec.auth.kerberos.keytabSecretRef", kerberos.keytab_secret_ref.clone(), "keytab").await?,
        ));
    }
    if let Some(ca) = &spec.tls.ca {
        if let Some(r) = &ca.secret_ref {
            out.ca_pem = Some(read_secret("spec.tls.ca.secretRef", r.clone(), "ca.crt").await?);
        } else if let Some(r) = &ca.config_map_ref {
            let maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
            let key = r.key.clone().unwrap_or_else(|| "ca.crt".to_owned());
            let found = maps
                .get_opt(&r.name)
                .await
                .map_err(|e| read_failure("spec.tls.ca.configMapRef", "ConfigMap", &r.name, &e))?;
            let pem = found
                .and_then(|m| {
                    m.data
                        .and_then(|mut d| d.remove(&key))
                        .map(String::into_bytes)
                        .or_else(|| m.binary_data?.remove(&key).map(|b| b.0))
                })
                .ok_or_else(|| Failure {
                    reason: "ConfigMapNotFound",
                    message: format!("spec.tls.ca.configMapRef: ConfigMap {:?} has no key {key:?}", r.name),
                })?;
            out.ca_pem = Some(pem);
        }
    }
    Ok(out)
}

/// A referenced object that could not be read: refused by RBAC, or the API is not answering.
fn read_failure(field: &str, kind: &str, name: &str, e: &kube::Error) -> Failure {
    match e {
        kube::Error::Api(s) if s.code == 403 => Failure {
            reason: "ForbiddenByRbac",
            message: format!(
                "{field}: the agent may not read {kind} {name:?}; add it to the chart's agent.secretNames"
            ),
        },
        _ => Failure {
            reason: "KubernetesApiUnavailable",
            message: format!("{field}: cannot read {kind} {name:?}: {e}"),
        },
    }
}

/// Writes this pod's row by server-side apply with the pod's own field manager.
async fn write_row(ctx: &AgentContext, conn: &LdapConnection, row: &NodeStatus) {
    let api: Api<LdapConnection> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let patch = json!({"apiVersion": "ldapsync.io/v1alpha1", "kind": "LdapConnection", "status": {"nodes": [row]}});
    match api
        .patch_status(&conn.name_any(), &PatchParams::apply(&ctx.field_manager()).force(), &Patch::Apply(patch))
        .await
    {
        Ok(_) => {
            ctx.metrics.row_writes.fetch_add(1, Ordering::Relaxed);
        }
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => tracing::warn!(connection = %conn_name(conn), error = %e, "cannot write this pod's status row"),
    }
}

/// Deletes this pod's cache of a connection (file and ConfigMaps) and reports it.
pub async fn purge(ctx: &AgentContext, uid: &str, conn: Option<&LdapConnection>) {
    if let Err(e) = ctx.store.purge(uid) {
        tracing::warn!(uid, error = %e, "cannot delete the cached snapshot file");
    }
    ctx.set_snapshot(uid, None).await;
    let Some(conn) = conn else {
        tracing::info!(uid, "connection gone: cache deleted");
        return;
    };
    ctx.lookup.set_stale(&conn_name(conn), false);
    ctx.metrics.forget(&conn_name(conn));
    let mut message = "the cache of this connection was deleted".to_owned();
    if let Err(e) = ConfigMapStore::new(ctx.client.clone(), &ctx.namespace, &ctx.pod).purge(&connection_ref(conn)).await
    {
        tracing::warn!(connection = %conn_name(conn), error = %e, "cannot delete this pod's snapshot ConfigMaps");
        message = format!("the cache file was deleted; its ConfigMaps could not be: {e}");
    }
    let row = NodeStatus {
        pod: ctx.pod.clone(),
        phase: Some(NodePhase::Purged),
        observed_generation: conn.metadata.generation,
        message: Some(message),
        ..Default::default()
    };
    write_row(ctx, conn, &row).await;
    tracing::info!(connection = %conn_name(conn), "connection deleted: cache purged");
}
