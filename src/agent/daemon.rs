//! `ldapsync agent`: the sidecar of one gateway pod. Serves lookups from its cache at once (warm
//! start), watches the connections and schedules of its namespace, and runs one worker per
//! connection.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::sync::watch;

use super::context::AgentContext;
use super::lookup_api::{LookupState, probe_router, router};
use super::socketmap::{self, SocketmapConfig};
use super::worker::{purge, run_worker};
use crate::api::{LdapConnection, LdapSyncSchedule};
use crate::store::local::{LocalStore, StoreError};

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub namespace: String,
    pub pod: String,
    /// Folder of the sidecar store (a pod volume).
    pub store: PathBuf,
    /// Address of the lookup API; keep it on localhost.
    pub listen: SocketAddr,
    /// Address of the probes and metrics alone (the pod's address, for the kubelet), if any.
    pub probe_listen: Option<SocketAddr>,
    /// Address of the socketmap server for Postfix (keep it on localhost), if any.
    pub socketmap_listen: Option<SocketAddr>,
    pub socketmap: SocketmapConfig,
    /// Syncs running at once across connections.
    pub max_concurrent_syncs: usize,
    /// DNS server for SRV lookups instead of the system resolver.
    pub dns_server: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
}

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, AgentError> {
    tokio::net::TcpListener::bind(addr).await.map_err(|source| AgentError::Listen { addr, source })
}

type Workers = HashMap<String, watch::Sender<Option<Arc<LdapConnection>>>>;

/// The worker map. Each change is one insert, remove or send: a poisoned map is still whole.
fn lock(workers: &std::sync::Mutex<Workers>) -> std::sync::MutexGuard<'_, Workers> {
    workers.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Runs until `shutdown` resolves.
pub async fn run(
    client: Client,
    config: AgentConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AgentError> {
    let lookup = Arc::new(LookupState::new(crate::system::unix_now));
    let (schedules, schedule_writer) = reflector::store();
    let ctx = warm_start(&client, &config, lookup.clone(), schedules).await?;
    let shutdown = futures::FutureExt::shared(Box::pin(shutdown));
    let http = serve(&config, lookup, shutdown.clone()).await?;
    let workers: Arc<std::sync::Mutex<Workers>> = Arc::default();
    let schedule_api: Api<LdapSyncSchedule> = Api::namespaced(client.clone(), &config.namespace);
    let schedule_task = tokio::spawn(watch_schedules(schedule_api, schedule_writer, workers.clone()));
    watch_connections(&ctx, Api::namespaced(client, &config.namespace), &workers, shutdown).await;
    schedule_task.abort();
    // Dropping the senders ends the workers without purging anything.
    lock(&workers).clear();
    if let Err(e) = http.await {
        tracing::error!(error = %e, "the lookup API task failed");
    }
    Ok(())
}

/// Loads the stored snapshots and serves them at once. Ready (`/readyz`) only with a cache to
/// answer from: an empty index would call every address foreign. Without a stored snapshot the
/// first sync (or an empty namespace) makes it ready.
async fn warm_start(
    client: &Client,
    config: &AgentConfig,
    lookup: Arc<LookupState>,
    schedules: reflector::Store<LdapSyncSchedule>,
) -> Result<Arc<AgentContext>, AgentError> {
    let started = std::time::Instant::now();
    let store = LocalStore::open(&config.store)?;
    let stored = store.load_all()?;
    let snapshots = stored.into_iter().map(|s| s.snapshot).collect();
    let ctx = Arc::new(AgentContext::new(client.clone(), config, store, lookup.clone(), snapshots, schedules));
    let warm = ctx.cached_uids().len();
    if warm > 0 {
        ctx.publish().await;
    }
    lookup.register_metrics(|registry| ctx.metrics.register(registry));
    tracing::info!(
        snapshots = warm,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "warm start: serving the cached snapshots"
    );
    Ok(ctx)
}

/// Starts the probe port, the socketmap server and the lookup API; returns the lookup API's task.
async fn serve(
    config: &AgentConfig,
    lookup: Arc<LookupState>,
    shutdown: impl Future<Output = ()> + Clone + Send + 'static,
) -> Result<tokio::task::JoinHandle<()>, AgentError> {
    if let Some(addr) = config.probe_listen {
        let probes = bind(addr).await?;
        let (probe_shutdown, probe_state) = (shutdown.clone(), lookup.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(probes, probe_router(probe_state)).with_graceful_shutdown(probe_shutdown).await
            {
                tracing::error!(error = %e, "the probe server stopped");
            }
        });
    }
    if let Some(addr) = config.socketmap_listen {
        let listener = bind(addr).await?;
        tokio::spawn(socketmap::serve(listener, lookup.clone(), config.socketmap.clone(), shutdown.clone()));
    }
    let listener = bind(config.listen).await?;
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(lookup)).with_graceful_shutdown(shutdown).await {
            tracing::error!(error = %e, "the lookup API stopped");
        }
    }))
}

/// Keeps the schedule cache; any schedule change may move a connection's next sync, so every
/// worker recomputes.
async fn watch_schedules(
    api: Api<LdapSyncSchedule>,
    writer: reflector::store::Writer<LdapSyncSchedule>,
    workers: Arc<std::sync::Mutex<Workers>>,
) {
    reflector::reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .for_each(move |event| {
            match event {
                Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone) => {
                    for tx in lock(&workers).values() {
                        tx.send_modify(|_| {});
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "schedule watch failed; retrying"),
            }
            futures::future::ready(())
        })
        .await;
}

/// One worker per connection, fed every version of its object, until `shutdown`.
async fn watch_connections(
    ctx: &Arc<AgentContext>,
    api: Api<LdapConnection>,
    workers: &std::sync::Mutex<Workers>,
    shutdown: impl Future<Output = ()> + Clone,
) {
    let connections = watcher(api, watcher::Config::default()).default_backoff();
    futures::pin_mut!(connections);
    let mut listing: Option<BTreeSet<String>> = None;
    loop {
        let event = tokio::select! {
            () = shutdown.clone() => break,
            event = connections.next() => match event {
                Some(e) => e,
                None => break,
            },
        };
        match event {
            Ok(watcher::Event::Apply(conn)) => dispatch(ctx, workers, conn),
            Ok(watcher::Event::InitApply(conn)) => {
                if let (Some(seen), Some(uid)) = (listing.as_mut(), conn.uid()) {
                    seen.insert(uid);
                }
                dispatch(ctx, workers, conn);
            }
            Ok(watcher::Event::Delete(conn)) => {
                if let Some(tx) = conn.uid().and_then(|uid| lock(workers).remove(&uid)) {
                    tx.send_replace(None);
                }
            }
            Ok(watcher::Event::Init) => listing = Some(BTreeSet::new()),
            Ok(watcher::Event::InitDone) => {
                if let Some(seen) = listing.take() {
                    forget_missing(ctx, workers, &seen).await;
                    if seen.is_empty() {
                        ctx.publish().await;
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "connection watch failed; retrying with backoff"),
        }
    }
}

fn dispatch(ctx: &Arc<AgentContext>, workers: &std::sync::Mutex<Workers>, conn: LdapConnection) {
    let Some(uid) = conn.uid() else { return };
    let mut w = lock(workers);
    let conn = Some(Arc::new(conn));
    match w.get(&uid) {
        Some(tx) => {
            tx.send_replace(conn);
        }
        None => {
            let (tx, rx) = watch::channel(conn);
            tokio::spawn(run_worker(ctx.clone(), uid.clone(), rx));
            w.insert(uid, tx);
        }
    }
}

/// After a (re)list: connections deleted while the agent was not watching lose their workers and
/// their caches.
async fn forget_missing(ctx: &AgentContext, workers: &std::sync::Mutex<Workers>, seen: &BTreeSet<String>) {
    {
        lock(workers).retain(|uid, tx| {
            let keep = seen.contains(uid);
            if !keep {
                tx.send_replace(None);
            }
            keep
        });
    }
    let cached = ctx.cached_uids();
    for uid in cached.into_iter().filter(|uid| !seen.contains(uid)) {
        purge(ctx, &uid, None).await;
    }
}
