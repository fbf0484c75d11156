//! `ldapsync serve`: the lookup API over a local store, warm-started from the store and reloaded
//! when a sync replaces a snapshot.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::lookup_api::{LookupState, router};
use super::socketmap::{self, SocketmapConfig};
use crate::domain::index::Index;
use crate::store::local::{LocalStore, StoreError};

/// How often the store folder is checked for replaced snapshots.
const POLL: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("the HTTP server failed: {0}")]
    Http(std::io::Error),
}

/// Binds the lookup API's address.
pub async fn bind(listen: SocketAddr) -> Result<tokio::net::TcpListener, ServeError> {
    tokio::net::TcpListener::bind(listen).await.map_err(|source| ServeError::Listen { addr: listen, source })
}

/// Loads the store, serves lookups on `listener` until `shutdown` completes.
pub async fn serve_store(
    store_dir: PathBuf,
    listener: tokio::net::TcpListener,
    now: fn() -> i64,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_store_and_socketmap(store_dir, listener, None, now, shutdown).await
}

/// [`serve_store`], and the socketmap protocol on a second listener when one is given.
pub async fn serve_store_and_socketmap(
    store_dir: PathBuf,
    listener: tokio::net::TcpListener,
    socketmap: Option<(tokio::net::TcpListener, SocketmapConfig)>,
    now: fn() -> i64,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let shutdown = futures::FutureExt::shared(Box::pin(shutdown));
    let store = LocalStore::open(&store_dir)?;
    let state = Arc::new(LookupState::new(now));
    let started = std::time::Instant::now();
    let mut seen = fingerprint(&store);
    let snapshots = store.load_all()?;
    let count = snapshots.len();
    state.swap(Index::build(snapshots.into_iter().map(|s| Arc::new(s.snapshot)).collect()));
    tracing::info!(
        snapshots = count,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "warm start: serving the stored snapshots"
    );

    let reload_state = state.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(POLL).await;
            let now_seen = fingerprint(&store);
            if now_seen == seen {
                continue;
            }
            seen = now_seen;
            let store = store.clone();
            // Decoding and indexing are CPU work: keep them off the threads answering lookups.
            match tokio::task::spawn_blocking(move || store.load_all()).await {
                Ok(Ok(snapshots)) => {
                    let n = snapshots.len();
                    reload_state.swap(Index::build(snapshots.into_iter().map(|s| Arc::new(s.snapshot)).collect()));
                    tracing::info!(snapshots = n, "store changed: new index swapped in");
                }
                Ok(Err(e)) => tracing::error!(error = %e, "store reload failed; still serving the previous index"),
                Err(e) => tracing::error!(error = %e, "store reload task failed"),
            }
        }
    });

    if let Some((socketmap_listener, config)) = socketmap {
        tokio::spawn(socketmap::serve(socketmap_listener, state.clone(), config, shutdown.clone()));
    }
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "lookup API listening");
    }
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await.map_err(ServeError::Http)
}

/// Names, sizes and modification times of the snapshot files: changes when a sync writes.
fn fingerprint(store: &LocalStore) -> Vec<(String, u64, Option<SystemTime>)> {
    let mut out: Vec<_> = std::fs::read_dir(store.dir())
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".snap"))
                .map(|e| {
                    let meta = e.metadata().ok();
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        meta.as_ref().map_or(0, |m| m.len()),
                        meta.and_then(|m| m.modified().ok()),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}
