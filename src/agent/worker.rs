//! One connection in one gateway pod: decide when to sync (schedule, request, new generation,
//! retry, approval), run the sync, and purge the cache when the connection goes.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::watch;

use super::context::{AgentContext, accepted, annotation, conn_name, connection_ref};
use super::push::Push;
use super::sync::{sync, write_row};
use crate::api::{
    APPROVE_DELETIONS_ANNOTATION, CacheStore, LdapConnection, NodePhase, NodeStatus, SYNC_REQUESTED_AT_ANNOTATION,
};
use crate::domain::row::{ConnectionFacts, WorkerMemory};
use crate::domain::schedule::{Schedule, default_schedule, jitter_for, parse_schedule};
use crate::domain::sync_plan::{Due, Trigger, next_sync};

/// Runs until the connection is deleted (then purges) or the sender goes away (agent stopping).
pub(crate) async fn run_worker(
    ctx: Arc<AgentContext>,
    uid: String,
    mut rx: watch::Receiver<Option<Arc<LdapConnection>>>,
) {
    let mut memory: Option<WorkerMemory> = None;
    // What the directory refused, kept beside the memory: it never leaves this process.
    let mut refused = None;
    let mut push: Option<Push> = None;
    loop {
        let current = rx.borrow_and_update().clone();
        let Some(conn) = current else {
            purge(&ctx, &uid, None).await;
            return;
        };
        if conn.metadata.deletion_timestamp.is_some() {
            drop(push.take());
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
        let state = match &mut memory {
            Some(m) => m,
            None => memory.insert(resume(&ctx, &conn, &uid).await),
        };
        let tracked = state.sync_state.clone().or_else(|| ctx.cached(&uid).and_then(|s| s.sync_state.clone()));
        Push::reconcile(&mut push, &ctx, &conn, tracked.as_ref(), state.credentials_refused.is_some());
        let due = plan(&ctx, &conn, &uid, state);
        let reason = match wait_until_due(due, &mut rx, &mut push).await {
            Wait::Due(reason) => reason,
            Wait::Again => continue,
            Wait::Stop => return,
        };
        // Sync the newest version of the object.
        let latest = rx.borrow_and_update().clone();
        match latest {
            Some(conn) if conn.metadata.deletion_timestamp.is_none() && accepted(&conn) => {
                sync(&ctx, &conn, &uid, state, &mut refused, reason).await;
            }
            _ => continue,
        }
    }
}

/// When this pod syncs the connection next (also shown as a metric).
fn plan(ctx: &AgentContext, conn: &LdapConnection, uid: &str, memory: &WorkerMemory) -> Due {
    let schedule = schedule_of(ctx, conn);
    let facts = ConnectionFacts {
        suspended: conn.spec.suspend,
        generation: conn.metadata.generation.unwrap_or(0),
        request: annotation(conn, SYNC_REQUESTED_AT_ANNOTATION),
        approval: annotation(conn, APPROVE_DELETIONS_ANNOTATION),
    };
    let jitter = jitter_for(&ctx.pod, uid, schedule.jitter);
    let due = next_sync(memory.plan(&schedule, facts, Timestamp::now(), jitter));
    let at = match due {
        Due::Now(_) => Some(Timestamp::now()),
        Due::At(at, _) => Some(at),
        Due::Never => None,
    };
    ctx.metrics.plan(&conn_name(conn), at);
    due
}

/// What waiting for a planned sync came to.
enum Wait {
    Due(Trigger),
    /// The object changed (or an hour passed): plan again.
    Again,
    /// The agent is stopping.
    Stop,
}

async fn wait_until_due(
    due: Due,
    rx: &mut watch::Receiver<Option<Arc<LdapConnection>>>,
    push: &mut Option<Push>,
) -> Wait {
    let changed = |result: Result<(), watch::error::RecvError>| if result.is_err() { Wait::Stop } else { Wait::Again };
    match due {
        Due::Now(trigger) => Wait::Due(trigger),
        Due::At(at, trigger) => {
            // Wall-clock target, re-checked at least hourly (clock steps, long sleeps).
            let wait = Duration::try_from(at.duration_since(Timestamp::now())).unwrap_or(Duration::ZERO);
            let hour = Duration::from_secs(3600);
            tokio::select! {
                () = tokio::time::sleep(wait.min(hour)) => if wait > hour { Wait::Again } else { Wait::Due(trigger) },
                result = rx.changed() => changed(result),
                () = Push::changed(push), if trigger != Trigger::CredentialsCheck => Wait::Due(Trigger::Pushed),
            }
        }
        // Suspended or manual-only: a push does not sync either.
        Due::Never => changed(rx.changed().await),
    }
}

/// Picks up where this pod left off: its row (handled request, generation) and its cache, loaded
/// from the connection's store when the warm start did not find it (ConfigMaps).
async fn resume(ctx: &AgentContext, conn: &LdapConnection, uid: &str) -> WorkerMemory {
    let row = conn.status.as_ref().and_then(|s| s.nodes.iter().find(|r| r.pod == ctx.pod)).cloned();
    if ctx.cached(uid).is_none() {
        match ctx.store_of(conn.spec.cache.store).load(&connection_ref(conn)).await {
            Ok(Some(snapshot)) => ctx.set_snapshot(uid, Some(Arc::new(snapshot))).await,
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(connection = %conn_name(conn), error = %e, "cannot load the cached snapshot; a full sync follows")
            }
        }
    }
    let cached_at = ctx.cached(uid).and_then(|s| Timestamp::from_second(s.taken_at).ok());
    WorkerMemory::resume(row, cached_at)
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

/// Deletes this pod's cache of a connection (file and ConfigMaps) and reports it.
pub(crate) async fn purge(ctx: &AgentContext, uid: &str, conn: Option<&LdapConnection>) {
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
    if let Err(e) = ctx.store_of(CacheStore::ConfigMap).purge(&connection_ref(conn)).await {
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
