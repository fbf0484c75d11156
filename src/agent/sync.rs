//! One sync of one connection in this pod: the row that shows it started, the pipeline, the
//! snapshot swapped into the index, and the row that says how it ended.

use std::sync::Arc;

use jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::context::{AgentContext, annotation, conn_name, connection_ref};
use super::metrics::SyncResult;
use crate::api::{APPROVE_DELETIONS_ANNOTATION, CacheStore, LdapConnection, NodeStatus, SYNC_REQUESTED_AT_ANNOTATION};
use crate::domain::codec::Encoded;
use crate::domain::incremental::SyncState;
use crate::domain::lazy::Lazy;
use crate::domain::reason::with_sources;
use crate::domain::row::{Attempt, Outcome, WorkerMemory};
use crate::domain::sync_plan::Trigger;
use crate::sync::secrets::KubeSource;
use crate::sync::{CredentialsFingerprint, PipelineError, Served, SyncOutcome, SyncRequest, Synced};

pub(crate) async fn sync(
    ctx: &AgentContext,
    conn: &LdapConnection,
    uid: &str,
    memory: &mut WorkerMemory,
    refused: &mut Option<CredentialsFingerprint>,
    why: Trigger,
) {
    if why == Trigger::CredentialsCheck && credentials_unchanged(ctx, conn, refused.as_ref()).await {
        memory.credentials_unchanged(Timestamp::now());
        return;
    }
    let Ok(_permit) = ctx.limit.acquire().await else { return };
    let attempt = Attempt {
        pod: &ctx.pod,
        generation: conn.metadata.generation,
        started: Timestamp::now(),
        request: annotation(conn, SYNC_REQUESTED_AT_ANNOTATION),
    };
    let approval = annotation(conn, APPROVE_DELETIONS_ANNOTATION);
    if why == Trigger::ApprovalRefused {
        let approval = approval.unwrap_or_default();
        tracing::warn!(connection = %conn_name(conn), approval, held = memory.held_hash().unwrap_or("none"), "the approval names content this pod does not hold");
        let row = memory.record(&attempt, &Outcome::ApprovalRefused { approval }, Timestamp::now());
        write_row(ctx, conn, &row).await;
        return;
    }
    let clock = std::time::Instant::now();
    tracing::info!(connection = %conn_name(conn), reason = why.as_str(), "sync starting");
    if let Some(row) = memory.first_row(&attempt) {
        write_row(ctx, conn, &row).await;
        memory.row = Some(row);
    }
    ctx.metrics.started();
    let applied = match (why, approval) {
        (Trigger::Approved, Some(approval)) => apply_held(ctx, conn, uid, memory, approval).await,
        _ => Ok(None),
    };
    let result = match applied {
        Ok(Some(synced)) => Ok(SyncOutcome::Synced(synced)),
        Ok(None) => run_pipeline(ctx, conn, uid, memory.sync_state.clone()).await,
        Err(e) => Err(e),
    };
    let took = clock.elapsed();
    let row = match result {
        Ok(SyncOutcome::Synced(synced)) => {
            ctx.set_snapshot(uid, Some(synced.snapshot.clone())).await;
            ctx.lookup.set_stale(&conn_name(conn), false);
            ctx.metrics.finished(SyncResult::Synced, None, took);
            forget_held(ctx, uid);
            if conn.spec.cache.store == CacheStore::ConfigMap {
                // A file from when the connection used the sidecar store must not outlive the switch.
                if let Err(e) = ctx.store.purge(uid) {
                    tracing::warn!(connection = %conn_name(conn), error = %e, "cannot delete the sidecar file of a connection now cached in ConfigMaps");
                }
            }
            let snapshot = &synced.snapshot;
            tracing::info!(connection = %conn_name(conn), objects = snapshot.objects.len(), server = %snapshot.server, "sync finished");
            let outcome = Outcome::Synced {
                server: &snapshot.server,
                site: synced.site.as_deref(),
                objects: snapshot.objects.len(),
                counts: snapshot.counts(),
                duplicates: &synced.duplicates,
                snapshot_hash: &synced.snapshot_hash,
                content_hash: &synced.content_hash,
                size: synced.size,
                took,
                read: &synced.read,
            };
            ctx.metrics.read(&synced.read);
            memory.record(&attempt, &outcome, Timestamp::now())
        }
        Ok(SyncOutcome::Unchanged { site, read }) => {
            ctx.lookup.set_stale(&conn_name(conn), false);
            ctx.metrics.finished(SyncResult::Synced, None, took);
            ctx.metrics.read(&read);
            tracing::info!(connection = %conn_name(conn), entries_read = read.entries_read, "sync finished: nothing changed");
            let served = ctx.cached(uid);
            let server = served.as_deref().map_or("", |s| s.server.as_str());
            let outcome = Outcome::Unchanged { server, site: site.as_deref(), took, read: &read };
            memory.record(&attempt, &outcome, Timestamp::now())
        }
        Ok(SyncOutcome::Held { held, encoded }) => {
            ctx.metrics.finished(SyncResult::Held, None, took);
            tracing::warn!(connection = %conn_name(conn), error = %held, "sync held by the deletion-safety guard; the previous cache keeps serving");
            keep_held(ctx, conn, uid, encoded).await;
            let examples = removed_examples(ctx, uid, &held.removed_sample);
            memory.record(&attempt, &Outcome::Held { held: &held, examples }, Timestamp::now())
        }
        Err(e) => {
            if let PipelineError::CredentialsRefused { credentials, .. } = &e {
                *refused = Some(credentials.clone());
            }
            let cached = ctx.cached(uid).is_some();
            if cached {
                ctx.lookup.set_stale(&conn_name(conn), true);
            }
            ctx.metrics.finished(SyncResult::Failed, Some(e.reason()), took);
            tracing::warn!(connection = %conn_name(conn), reason = %e.reason(), error = %with_sources(&e), stale = cached, "sync failed");
            let failed = Outcome::Failed { reason: e.reason(), message: e.to_string(), cached };
            memory.record(&attempt, &failed, Timestamp::now())
        }
    };
    write_row(ctx, conn, &row).await;
}

/// Whether the Secret still holds the credentials the directory refused. While it cannot be read
/// (API down, Secret deleted) the pod keeps waiting: a retry after that would bind with the
/// refused credentials once more.
async fn credentials_unchanged(
    ctx: &AgentContext,
    conn: &LdapConnection,
    refused: Option<&CredentialsFingerprint>,
) -> bool {
    let Some(refused) = refused else { return false };
    let source = KubeSource::new(ctx.client.clone(), &ctx.namespace);
    match crate::sync::credentials_of(&conn.spec, &source).await {
        Ok(now) if now == *refused => true,
        Ok(_) => {
            tracing::info!(connection = %conn_name(conn), "the credentials changed since the directory refused them: syncing");
            false
        }
        Err(e) => {
            tracing::debug!(connection = %conn_name(conn), error = %e, "cannot read the credentials yet; still waiting for other ones");
            true
        }
    }
}

/// Keeps what the guard held, so that an approval applies exactly it. Without it an approval
/// reads the directory again, and applies the read only when its content is the approved one.
async fn keep_held(ctx: &AgentContext, conn: &LdapConnection, uid: &str, encoded: Encoded) {
    let (store, key) = (ctx.store.clone(), uid.to_owned());
    match tokio::task::spawn_blocking(move || store.write_held(&key, &encoded)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::warn!(connection = %conn_name(conn), error = %e, "cannot keep the held snapshot; an approval reads the directory again")
        }
        Err(e) => {
            tracing::warn!(connection = %conn_name(conn), error = %e, "the task keeping the held snapshot failed")
        }
    }
}

fn forget_held(ctx: &AgentContext, uid: &str) {
    if let Err(e) = ctx.store.drop_held(uid) {
        tracing::warn!(uid, error = %e, "cannot delete a held snapshot that is no longer held");
    }
}

/// The DNs of the sampled removed objects, as the served snapshot names them.
fn removed_examples(ctx: &AgentContext, uid: &str, ids: &[String]) -> Vec<String> {
    let Some(served) = ctx.cached(uid) else { return ids.to_vec() };
    ids.iter()
        .map(|id| served.objects.iter().find(|o| o.id == *id).map_or_else(|| id.clone(), |o| o.dn.clone()))
        .collect()
}

/// The held snapshot, applied when it is the approved content; `None` when there is none to
/// apply (kept by an earlier agent version, lost, or of other content).
async fn apply_held(
    ctx: &AgentContext,
    conn: &LdapConnection,
    uid: &str,
    memory: &WorkerMemory,
    approval: &str,
) -> Result<Option<Synced>, PipelineError> {
    let (store, key) = (ctx.store.clone(), uid.to_owned());
    let held = match tokio::task::spawn_blocking(move || store.load_held(&key)).await {
        Ok(Ok(Some(held))) => held,
        Ok(Ok(None)) => return Ok(None),
        Ok(Err(e)) => {
            tracing::warn!(connection = %conn_name(conn), error = %e, "cannot read the held snapshot; reading the directory again");
            return Ok(None);
        }
        Err(e) => return Err(PipelineError::Task(e)),
    };
    let deleted = memory.row.as_ref().and_then(|r| r.held.as_ref()).map_or(0, |h| h.deleted_objects.max(0) as u64);
    let store = ctx.store_of(conn.spec.cache.store);
    let applied = crate::sync::apply_approved(
        &connection_ref(conn),
        held.snapshot,
        approval,
        deleted,
        ctx.siblings(uid),
        store.as_ref(),
    )
    .await?;
    match &applied {
        Some(_) => {
            tracing::info!(connection = %conn_name(conn), "applied the approved held snapshot without reading the directory again")
        }
        None => {
            tracing::warn!(connection = %conn_name(conn), "the held snapshot is not the approved content; reading the directory again")
        }
    }
    Ok(applied)
}

async fn run_pipeline(
    ctx: &AgentContext,
    conn: &LdapConnection,
    uid: &str,
    state: Option<SyncState>,
) -> Result<SyncOutcome, PipelineError> {
    let progress = Arc::default();
    ctx.metrics.track(&conn_name(conn), Arc::clone(&progress));
    let siblings = Lazy::ready(ctx.siblings(uid));
    let served = ctx.cached(uid).map(|snapshot| Served::loaded(snapshot, state));
    let request = SyncRequest {
        connection: connection_ref(conn),
        spec: &conn.spec,
        dns_server: ctx.dns_server.as_deref(),
        approval: annotation(conn, APPROVE_DELETIONS_ANNOTATION),
        siblings: &siblings,
        progress,
        served: served.as_ref(),
    };
    let store = ctx.store_of(conn.spec.cache.store);
    crate::sync::run(request, &KubeSource::new(ctx.client.clone(), &ctx.namespace), store.as_ref()).await
}

/// Writes this pod's row by server-side apply with the pod's own field manager.
pub(crate) async fn write_row(ctx: &AgentContext, conn: &LdapConnection, row: &NodeStatus) {
    let api: Api<LdapConnection> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let patch = json!({"apiVersion": "ldapsync.io/v1alpha1", "kind": "LdapConnection", "status": {"nodes": [row]}});
    match api
        .patch_status(&conn.name_any(), &PatchParams::apply(&ctx.field_manager()).force(), &Patch::Apply(patch))
        .await
    {
        Ok(_) => ctx.metrics.row_written(),
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => tracing::warn!(connection = %conn_name(conn), error = %e, "cannot write this pod's status row"),
    }
}
