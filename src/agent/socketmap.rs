//! The socketmap server: the gateway's Postfix asks the cache in its own protocol
//! (socketmap_table(5)), e.g. `relay_recipient_maps = socketmap:inet:127.0.0.1:8391:recipient`.
//! Answers come from the same index as the lookup API and never touch LDAP.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use super::lookup_api::LookupState;
use crate::domain::socketmap::{self, FramingError, KeyRules, Map, Reply};

/// How the server reads its clients.
#[derive(Debug, Clone)]
pub struct SocketmapConfig {
    pub rules: KeyRules,
    /// A connection with no request for this long is closed (Postfix reconnects when it needs to).
    pub idle_timeout: Duration,
    /// A request begun but not finished within this long closes the connection.
    pub request_timeout: Duration,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
}

impl Default for SocketmapConfig {
    fn default() -> Self {
        Self {
            rules: KeyRules::default(),
            idle_timeout: Duration::from_secs(300),
            request_timeout: Duration::from_secs(10),
            max_connections: 512,
        }
    }
}

/// Serves socketmap clients on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    state: Arc<LookupState>,
    config: SocketmapConfig,
    shutdown: impl Future<Output = ()>,
) {
    let config = Arc::new(config);
    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "socketmap listening");
    }
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            () = &mut shutdown => return,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => return,
            },
        };
        let accepted = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let (state, config) = (state.clone(), config.clone());
                tokio::spawn(async move {
                    if let Err(e) = handle(stream, &state, &config).await {
                        tracing::warn!(%peer, error = %e, "socketmap connection closed");
                    }
                    drop(slot);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "socketmap accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Why a client's connection was closed by the server.
#[derive(Debug, thiserror::Error)]
enum ConnectionError {
    #[error("malformed request: {0}")]
    Framing(#[from] FramingError),
    #[error("the client sent half a request and went quiet for {0:?}")]
    Stalled(Duration),
    #[error("the client went away in the middle of a request")]
    Truncated,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

async fn handle(mut stream: TcpStream, state: &LookupState, config: &SocketmapConfig) -> Result<(), ConnectionError> {
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut out: Vec<u8> = Vec::with_capacity(1024);
    loop {
        // Answer every complete request received so far (clients may pipeline).
        let mut used = 0;
        let framing = loop {
            match socketmap::take_netstring(&buf[used..]) {
                Ok(Some((payload, n))) => {
                    respond(state, payload, &config.rules, &mut out);
                    used += n;
                }
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        buf.drain(..used);
        if let Some(e) = framing {
            // The stream cannot be resynchronised: say why, then close.
            Reply::Perm(e.to_string().into()).encode_into(&mut out);
            stream.write_all(&out).await?;
            return Err(e.into());
        }
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
        let wait = if buf.is_empty() { config.idle_timeout } else { config.request_timeout };
        match tokio::time::timeout(wait, stream.read_buf(&mut buf)).await {
            Err(_) if buf.is_empty() => return Ok(()),
            Err(_) => return Err(ConnectionError::Stalled(wait)),
            Ok(Ok(0)) if buf.is_empty() => return Ok(()),
            Ok(Ok(0)) => return Err(ConnectionError::Truncated),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.into()),
        }
    }
}

/// Answers one request payload into `out`; counted by map and outcome.
fn respond(state: &LookupState, payload: &[u8], rules: &KeyRules, out: &mut Vec<u8>) {
    let index = state.index();
    let parsed = socketmap::parse_request(payload).and_then(|r| Ok((Map::parse(r.map)?, r.key)));
    let (map_index, reply) = match parsed {
        Ok((map, key)) => {
            let loaded = state.is_loaded() && !index.snapshots().is_empty();
            (map.metric_index(), socketmap::answer(loaded.then_some(&*index), map, key, rules))
        }
        Err(e) => {
            tracing::debug!(error = %e, "socketmap request refused");
            (socketmap::INVALID_REQUEST, Reply::Perm(e.to_string().into()))
        }
    };
    state.count_socketmap(map_index, reply.metric_index());
    reply.encode_into(out);
}
