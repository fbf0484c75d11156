//! A deleted connection: its snapshot ConfigMaps go, every live agent gets a bounded wait to
//! report its cache purged, then the finalizer lets the object go.

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, ListParams};
use kube::runtime::controller::Action;
use kube::{Api, ResourceExt};

use super::apply::{publish, remove_finalizer};
use super::metrics::Write;
use super::reconcile::{Context, ReconcileError};
use crate::api::{CACHE_CLEANUP_FINALIZER, LdapConnection, NodePhase};
use crate::domain::reason::Reason;
use crate::store::configmap::LABEL_CONNECTION_UID;

pub(super) async fn cleanup(
    conn: &LdapConnection,
    ctx: &Context,
    api: &Api<LdapConnection>,
    ns: &str,
) -> Result<Action, ReconcileError> {
    if !conn.finalizers().iter().any(|f| f == CACHE_CLEANUP_FINALIZER) {
        return Ok(Action::await_change());
    }
    delete_config_maps(conn, ctx, ns).await?;
    let live = ctx.live_pods(ns);
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
        let timeout = ctx.config.cleanup_timeout;
        if waited < timeout {
            return Ok(Action::requeue((timeout - waited).min(Duration::from_secs(2))));
        }
        let note = format!(
            "gave up after {}s waiting for {} to report their caches purged; they drop them when they next start",
            timeout.as_secs(),
            pending.join(", ")
        );
        publish(ctx, conn, true, Reason::CleanupTimedOut.as_str(), note).await;
    }
    remove_finalizer(api, conn).await?;
    ctx.metrics.wrote(Write::Finalizer);
    tracing::info!(connection = %conn.name_any(), "caches cleaned up; finalizer removed");
    Ok(Action::await_change())
}

async fn delete_config_maps(conn: &LdapConnection, ctx: &Context, ns: &str) -> Result<(), ReconcileError> {
    let uid = conn.uid().unwrap_or_default();
    let maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    let selector = ListParams::default().labels(&format!("{LABEL_CONNECTION_UID}={uid}"));
    let existing = maps.list_metadata(&selector).await.map_err(ReconcileError::DeleteConfigMaps)?;
    if !existing.items.is_empty() {
        maps.delete_collection(&DeleteParams::background(), &selector)
            .await
            .map_err(ReconcileError::DeleteConfigMaps)?;
        ctx.metrics.wrote(Write::ConfigMaps);
        tracing::info!(connection = %conn.name_any(), configmaps = existing.items.len(), "deleted the snapshot ConfigMaps");
    }
    Ok(())
}
