//! Push: a search kept open on the server that tracked a connection's changes (AD change
//! notification, syncrepl refreshAndPersist), turned into prompt incremental syncs. The watch
//! only says "something changed"; the sync reads what, through the one pipeline.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::context::{AgentContext, conn_name, connection_ref};
use crate::api::{IncrementalMode, LdapConnection};
use crate::domain::incremental::SyncState;
use crate::sync::PipelineError;
use crate::sync::secrets::KubeSource;

/// Notifications arriving this close together are one sync (Samba reports one new user as
/// several modifications).
const SETTLE: Duration = Duration::from_millis(100);
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LAST_RETRY: Duration = Duration::from_secs(60);

/// What a watch is for: another spec, server or cookie history means another watch.
#[derive(Debug, Clone, PartialEq, Eq)]
struct WatchKey {
    generation: Option<i64>,
    server: String,
    server_identity: String,
}

/// A running watch of one connection.
pub(crate) struct Push {
    key: WatchKey,
    task: JoinHandle<()>,
    changes: mpsc::Receiver<()>,
}

impl Drop for Push {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Push {
    /// The watch `conn` should have now, given where change tracking stands: started, kept,
    /// replaced or stopped. None without `spec.incremental.push`, without tracking state, or
    /// while the directory refuses the credentials.
    pub(crate) fn reconcile(
        current: &mut Option<Push>,
        ctx: &Arc<AgentContext>,
        conn: &Arc<LdapConnection>,
        state: Option<&SyncState>,
        credentials_refused: bool,
    ) {
        let incremental = &conn.spec.incremental;
        let wanted = (incremental.push
            && incremental.mode == IncrementalMode::Auto
            && !conn.spec.suspend
            && !credentials_refused)
            .then_some(state)
            .flatten();
        let Some(state) = wanted else {
            *current = None;
            return;
        };
        let key = WatchKey {
            generation: conn.metadata.generation,
            server: state.server.clone(),
            server_identity: state.server_identity.clone(),
        };
        if current.as_ref().is_some_and(|p| p.key == key && !p.task.is_finished()) {
            return;
        }
        let (tx, changes) = mpsc::channel(1);
        let task = tokio::spawn(watch(Arc::clone(ctx), Arc::clone(conn), state.clone(), tx));
        *current = Some(Push { key, task, changes });
    }

    /// Waits for the next reported change (settled); pending forever without a watch.
    pub(crate) async fn changed(current: &mut Option<Push>) {
        match current {
            Some(push) => {
                if push.changes.recv().await.is_none() {
                    // The watch ended for good (refused credentials): no more pushes.
                    std::future::pending::<()>().await;
                }
                tokio::time::sleep(SETTLE).await;
                while push.changes.try_recv().is_ok() {}
            }
            None => std::future::pending().await,
        }
    }
}

/// Keeps the watch open, reconnecting with backoff; ends only on refused credentials (another
/// bind would count against the account) or when aborted.
async fn watch(ctx: Arc<AgentContext>, conn: Arc<LdapConnection>, state: SyncState, tx: mpsc::Sender<()>) {
    let mut retry = FIRST_RETRY;
    loop {
        let source = KubeSource::new(ctx.client.clone(), &ctx.namespace);
        let mut open = false;
        let opened = || {
            open = true;
            ctx.metrics.watching(1);
        };
        let changed = || {
            ctx.metrics.pushed();
            // A full channel already holds a wake-up: this change is read with it.
            let _ = tx.try_send(());
        };
        let dns = ctx.dns_server.as_deref();
        let watched =
            crate::sync::watch(connection_ref(&conn), &conn.spec, &source, dns, &state, opened, changed).await;
        if open {
            ctx.metrics.watching(-1);
        }
        match watched {
            Ok(()) => {
                tracing::info!(connection = %conn_name(&conn), "the server ended the change watch; watching again");
                retry = FIRST_RETRY;
            }
            Err(e @ PipelineError::CredentialsRefused { .. }) => {
                tracing::warn!(connection = %conn_name(&conn), reason = %e.reason(), error = %e, "the directory refused the credentials: no more push until they change");
                return;
            }
            Err(e) => {
                tracing::warn!(connection = %conn_name(&conn), reason = %e.reason(), error = %e, retry_in = ?retry, "cannot watch the directory for changes; syncs follow the schedule meanwhile");
            }
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(LAST_RETRY);
    }
}
