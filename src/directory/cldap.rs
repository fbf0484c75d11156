//! The CLDAP netlogon ping over UDP (MS-ADTS 6.3.3): which AD site a DC places this client in.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;

use super::ldap::wire;
use crate::domain::netlogon::{NetlogonResponse, parse_response, ping_request};

/// Why a DC gave no site.
#[derive(Debug, thiserror::Error)]
pub enum CldapError {
    #[error("netlogon ping to {dc}: {source}")]
    Io { dc: SocketAddr, source: std::io::Error },
    #[error("netlogon ping to {dc}: no answer within {after:?}")]
    Timeout { dc: SocketAddr, after: Duration },
    #[error("netlogon ping to {dc}: the answer is not a netlogon response")]
    Malformed { dc: SocketAddr },
}

/// Largest answer read: a netlogon response is a few hundred bytes.
const MAX_DATAGRAM: usize = 4096;

/// Sends one netlogon ping for `domain` to `dc` (UDP 389) and parses the answer.
pub async fn ping(dc: SocketAddr, domain: &str, timeout: Duration) -> Result<NetlogonResponse, CldapError> {
    let io = |source| CldapError::Io { dc, source };
    let local: SocketAddr = if dc.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let socket = UdpSocket::bind(local).await.map_err(io)?;
    socket.connect(dc).await.map_err(io)?;
    socket.send(&ping_request(1, domain)).await.map_err(io)?;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let n = tokio::time::timeout(timeout, socket.recv(&mut buf))
        .await
        .map_err(|_| CldapError::Timeout { dc, after: timeout })?
        .map_err(io)?;
    let entry = wire::decode_message_entry(&buf[..n]).ok_or(CldapError::Malformed { dc })?;
    let netlogon = entry
        .attributes
        .iter()
        .find(|a| a.name.eq_ignore_ascii_case("Netlogon"))
        // Binary as a rule; bytes that happen to be UTF-8 arrive as text.
        .and_then(|a| a.binary.first().cloned().or_else(|| a.values.first().map(|v| v.clone().into_bytes())))
        .ok_or(CldapError::Malformed { dc })?;
    parse_response(&netlogon).ok_or(CldapError::Malformed { dc })
}
