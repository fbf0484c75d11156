//! `ldapsync controller`: validates connections and schedules, enforces one search base per
//! domain, turns the gateway pods' rows into conditions, and cleans caches up on delete.
//!
//! Only the replica holding the Lease reconciles; the others wait and serve their probes.

mod apply;
mod cleanup;
mod dereference;
mod metrics;
mod reconcile;
mod schedules;
mod watches;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;

pub use metrics::{ConditionCounts, Metrics, Write};
pub use reconcile::ReconcileError;

/// Field manager of everything the controller writes with server-side apply.
pub const FIELD_MANAGER: &str = "ldapsync-controller";

/// Bounded error categories for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCategory {
    /// Reading from the API failed (network, apiserver down, RBAC).
    ApiRead = 0,
    /// A write was refused or failed.
    ApiWrite = 1,
    /// A write lost a race (409); the next reconcile sees the new object.
    Conflict = 2,
    /// The object itself is unusable (no namespace, no name).
    InvalidObject = 3,
}

impl ErrorCategory {
    pub const ALL: [ErrorCategory; 4] = [Self::ApiRead, Self::ApiWrite, Self::Conflict, Self::InvalidObject];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ApiRead => "api_read",
            Self::ApiWrite => "api_write",
            Self::Conflict => "conflict",
            Self::InvalidObject => "invalid_object",
        }
    }
}

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// Watch one namespace only; all namespaces when `None`.
    pub namespace: Option<String>,
    /// Label selector of the gateway pods whose agents must sync every connection.
    pub gateway_selector: String,
    /// This replica's name in the Lease (the pod name).
    pub identity: String,
    pub lease_name: String,
    pub lease_namespace: String,
    /// Seconds a Lease stays valid without renewal.
    pub lease_duration: u64,
    /// How long a deleted connection waits for the agents to report their caches purged.
    pub cleanup_timeout: Duration,
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub listen: SocketAddr,
}

/// Why the controller stopped.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("leader election failed: {0}")]
    LeaderElection(#[from] kube_lease_manager::LeaseManagerError),
    #[error("lost the leader lease {0}; stopping so that only one replica writes")]
    LostLease(String),
}

#[derive(Clone)]
struct Probe {
    metrics: Arc<Metrics>,
    ready: Arc<std::sync::atomic::AtomicBool>,
}

async fn metrics_handler(State(probe): State<Probe>) -> axum::response::Response {
    match probe.metrics.render() {
        Ok(text) => ([("content-type", crate::agent::lookup_api::OPENMETRICS)], text).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot render the metrics");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot render the metrics").into_response()
        }
    }
}

async fn readyz(State(probe): State<Probe>) -> impl IntoResponse {
    if probe.ready.load(std::sync::atomic::Ordering::Relaxed) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "waiting for the API server")
    }
}

/// `/metrics`, `/healthz` and `/readyz`, on their own task.
async fn serve_probes(listen: SocketAddr, probe: Probe) -> Result<(), ControllerError> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| ControllerError::Listen { addr: listen, source })?;
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(probe);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the metrics server stopped");
        }
    });
    Ok(())
}

/// Runs until `shutdown` resolves (then releases the Lease) or the Lease is lost (an error, so
/// that the process restarts as a follower).
pub async fn run(
    client: Client,
    config: ControllerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ControllerError> {
    let metrics = Arc::new(Metrics::default());
    let probe = Probe { metrics: metrics.clone(), ready: Arc::default() };
    serve_probes(config.listen, probe.clone()).await?;

    let lease = LeaseManagerBuilder::new(client.clone(), &config.lease_name)
        .with_namespace(&config.lease_namespace)
        .with_identity(&config.identity)
        .with_duration(config.lease_duration)
        .with_grace(2)
        // One field manager per replica: the Lease is taken by a server-side apply that must
        // conflict with another replica's claim. A shared manager never conflicts, and two replicas
        // starting together would both believe they lead.
        .with_field_manager(format!("{FIELD_MANAGER}-lease/{}", config.identity))
        .build()
        .await?;
    let (mut leader, lease_task) = lease.watch().await;
    probe.ready.store(true, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(identity = %config.identity, lease = %config.lease_name, "waiting for the leader lease");

    let shutdown = futures::FutureExt::shared(Box::pin(shutdown));
    let outcome = loop {
        if *leader.borrow_and_update() {
            break Some(());
        }
        tokio::select! {
            changed = leader.changed() => if changed.is_err() { break None },
            () = shutdown.clone() => break None,
        }
    };
    let result = match outcome {
        None => Ok(()),
        Some(()) => {
            metrics.set_leader(true);
            tracing::info!(identity = %config.identity, "acquired the leader lease; reconciling");
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let work = watches::run(client.clone(), config.clone(), metrics.clone(), async {
                let _ = stop_rx.await;
            });
            let lost = async {
                loop {
                    if leader.changed().await.is_err() || !*leader.borrow_and_update() {
                        return;
                    }
                }
            };
            tokio::pin!(work);
            let result = tokio::select! {
                () = &mut work => Ok(()),
                () = lost => Err(ControllerError::LostLease(config.lease_name.clone())),
                () = shutdown.clone() => {
                    // Let running reconciles finish before the Lease is released.
                    let _ = stop_tx.send(());
                    work.await;
                    Ok(())
                }
            };
            metrics.set_leader(false);
            result
        }
    };
    drop(leader);
    match lease_task.await {
        Ok(Ok(_)) => tracing::info!("released the leader lease"),
        Ok(Err(e)) => tracing::warn!(error = %e, "could not release the leader lease"),
        Err(e) => tracing::warn!(error = %e, "the lease task failed"),
    }
    result
}
