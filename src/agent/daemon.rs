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
use tokio::sync::{Semaphore, watch};

use super::lookup_api::{LookupState, probe_router, router};
use super::socketmap::{self, SocketmapConfig};
use super::worker::{AgentContext, AgentMetrics, purge, run_worker};
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

/// Runs until `shutdown` resolves.
pub async fn run(
    client: Client,
    config: AgentConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), AgentError> {
    let store = LocalStore::open(&config.store)?;
    let lookup = Arc::new(LookupState::new(crate::cli::unix_now));
    let started = std::time::Instant::now();
    let stored = store.load_all()?;
    let (schedules, schedule_writer) = reflector::store();
    let ctx = Arc::new(AgentContext {
        client: client.clone(),
        namespace: config.namespace.clone(),
        pod: config.pod.clone(),
        store,
        lookup: lookup.clone(),
        snapshots: std::sync::Mutex::new(
            stored.into_iter().map(|s| (s.snapshot.connection.uid.clone(), Arc::new(s.snapshot))).collect(),
        ),
        limit: Semaphore::new(config.max_concurrent_syncs.max(1)),
        dns_server: config.dns_server.clone(),
        metrics: AgentMetrics::default(),
        schedules,
    });
    // Ready (`/readyz`) only with a cache to answer from: an empty index would call every address
    // foreign. Without a stored snapshot the first sync (or an empty namespace) makes it ready.
    if ctx.snapshots.lock().is_ok_and(|s| !s.is_empty()) {
        ctx.publish().await;
    }
    let metrics_ctx = ctx.clone();
    lookup.set_extra_metrics(Arc::new(move || metrics_ctx.metrics.render()));
    tracing::info!(
        snapshots = ctx.snapshots.lock().map(|s| s.len()).unwrap_or(0),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "warm start: serving the cached snapshots"
    );

    let shutdown = futures::FutureExt::shared(Box::pin(shutdown));
    if let Some(addr) = config.probe_listen {
        let probes = bind(addr).await?;
        let probe_shutdown = shutdown.clone();
        let probe_state = lookup.clone();
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
    let http_shutdown = shutdown.clone();
    let http = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(lookup)).with_graceful_shutdown(http_shutdown).await {
            tracing::error!(error = %e, "the lookup API stopped");
        }
    });

    let workers: Arc<std::sync::Mutex<Workers>> = Arc::default();
    let schedule_api: Api<LdapSyncSchedule> = Api::namespaced(client.clone(), &config.namespace);
    let schedule_workers = workers.clone();
    let schedule_watch = reflector::reflector(schedule_writer, watcher(schedule_api, watcher::Config::default()))
        .default_backoff()
        .for_each(move |event| {
            match event {
                // Any schedule change may move a connection's next sync: let every worker recompute.
                Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone) => {
                    if let Ok(w) = schedule_workers.lock() {
                        for tx in w.values() {
                            tx.send_modify(|_| {});
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "schedule watch failed; retrying"),
            }
            futures::future::ready(())
        });
    let schedule_task = tokio::spawn(schedule_watch);

    let api: Api<LdapConnection> = Api::namespaced(client, &config.namespace);
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
            Ok(watcher::Event::Apply(conn)) => dispatch(&ctx, &workers, conn),
            Ok(watcher::Event::InitApply(conn)) => {
                if let (Some(seen), Some(uid)) = (listing.as_mut(), conn.uid()) {
                    seen.insert(uid);
                }
                dispatch(&ctx, &workers, conn);
            }
            Ok(watcher::Event::Delete(conn)) => {
                if let Some(uid) = conn.uid()
                    && let Ok(mut w) = workers.lock()
                    && let Some(tx) = w.remove(&uid)
                {
                    tx.send_replace(None);
                }
            }
            Ok(watcher::Event::Init) => listing = Some(BTreeSet::new()),
            Ok(watcher::Event::InitDone) => {
                if let Some(seen) = listing.take() {
                    forget_missing(&ctx, &workers, &seen).await;
                    if seen.is_empty() {
                        ctx.publish().await;
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "connection watch failed; retrying with backoff"),
        }
    }
    schedule_task.abort();
    // Dropping the senders ends the workers without purging anything.
    if let Ok(mut w) = workers.lock() {
        w.clear();
    }
    let _ = http.await;
    Ok(())
}

fn dispatch(ctx: &Arc<AgentContext>, workers: &std::sync::Mutex<Workers>, conn: LdapConnection) {
    let Some(uid) = conn.uid() else { return };
    let Ok(mut w) = workers.lock() else { return };
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
    if let Ok(mut w) = workers.lock() {
        w.retain(|uid, tx| {
            let keep = seen.contains(uid);
            if !keep {
                tx.send_replace(None);
            }
            keep
        });
    }
    let cached: Vec<String> = ctx.snapshots.lock().map(|s| s.keys().cloned().collect()).unwrap_or_default();
    for uid in cached.into_iter().filter(|uid| !seen.contains(uid)) {
        purge(ctx, &uid, None).await;
    }
}
