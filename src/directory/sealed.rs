//! SASL GSSAPI bind with the Kerberos confidentiality layer on plain LDAP (RFC 4752), done here
//! instead of in ldap3: ldap3 0.12.1's SASL decoder drops data when one LDAP message spans several
//! SASL buffers or one buffer carries several messages, so large searches over a sealed session
//! hang. Here the bind runs on the raw socket; then a relay task seals and unseals whole SASL
//! buffers between the network and a socket pair whose other end ldap3 reads as plain LDAP.

use std::sync::{Arc, Mutex};

use crate::domain::ber::tlv;
use cross_krb5::{ClientCtx, K5Ctx, Step};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

/// Largest SASL buffer accepted from the server (and announced to it).
const RECV_MAX: u32 = 0x00FF_FFFF;
/// Largest LDAP message accepted during the bind.
const MAX_BIND_MESSAGE: usize = 1 << 20;
const LAYER_CONFIDENTIALITY: u8 = 4;
/// Largest plain-text piece sealed into one SASL buffer.
const SEND_CAP: usize = 64 * 1024;
const RESULT_SASL_BIND_IN_PROGRESS: u32 = 14;

/// Why the sealed bind failed.
#[derive(Debug, thiserror::Error)]
pub enum SealedBindError {
    #[error("network error during the Kerberos bind: {0}")]
    Io(#[from] std::io::Error),
    #[error("GSSAPI: {0}")]
    Gssapi(String),
    #[error("the server refused the bind: LDAP result {code} {message}")]
    Refused { code: u32, message: String },
    #[error("malformed bind response: {0}")]
    Protocol(&'static str),
    #[error("the server offers no confidentiality layer (offered mask {0:#04x})")]
    NoConfidentiality(u8),
}

/// Binds with GSSAPI on `tcp`, negotiates confidentiality, and returns the plain-text end of a
/// socket pair for ldap3; the relay task ends when either side closes.
pub async fn bind_sealed(
    mut tcp: TcpStream,
    cred: cross_krb5::Cred,
    service_host: &str,
) -> Result<std::os::unix::net::UnixStream, SealedBindError> {
    let spn = format!("ldap/{service_host}");
    // GSSAPI may talk to the KDC and read files: keep it off the async threads.
    let (pending, token) =
        blocking(move || ClientCtx::new_with_cred(cred, &spn, None).map(|(p, t)| (p, t.to_vec()))).await?;
    let mut server_token = bind_step(&mut tcp, Some(&token))
        .await?
        .ok_or(SealedBindError::Protocol("bind finished without a security layer"))?;
    let mut pending = pending;
    let mut ctx = loop {
        let step = blocking(move || {
            pending.step(&server_token).map(|s| match s {
                Step::Finished((ctx, tok)) => Step::Finished((ctx, tok.map(|t| t.to_vec()))),
                Step::Continue((p, tok)) => Step::Continue((p, tok.to_vec())),
            })
        })
        .await?;
        match step {
            Step::Finished((ctx, last)) => {
                server_token = bind_step(&mut tcp, last.as_deref())
                    .await?
                    .ok_or(SealedBindError::Protocol("bind finished without a security layer"))?;
                break ctx;
            }
            Step::Continue((p, tok)) => {
                pending = p;
                server_token = bind_step(&mut tcp, Some(&tok))
                    .await?
                    .ok_or(SealedBindError::Protocol("bind finished without a security layer"))?;
            }
        }
    };
    let offer = ctx.unwrap(&server_token).map_err(gss)?;
    if offer.len() != 4 {
        return Err(SealedBindError::Protocol("security layer offer is not 4 bytes"));
    }
    if offer[0] & LAYER_CONFIDENTIALITY == 0 {
        return Err(SealedBindError::NoConfidentiality(offer[0]));
    }
    let server_max = u32::from_be_bytes([0, offer[1], offer[2], offer[3]]);
    let choice = (u32::from(LAYER_CONFIDENTIALITY) << 24 | RECV_MAX).to_be_bytes();
    let answer = ctx.wrap(false, &choice).map_err(gss)?;
    if bind_step(&mut tcp, Some(&answer)).await?.is_some() {
        return Err(SealedBindError::Protocol("the server wants more steps after the security layer"));
    }
    // Each sealed buffer must stay below the server's maximum (with room for the token overhead);
    // LDAP requests are small, so 64 KiB buffers are plenty.
    let send_max =
        if server_max == 0 { SEND_CAP } else { (server_max as usize).saturating_sub(1024).clamp(1024, SEND_CAP) };
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    ours.set_nonblocking(true)?;
    let ours = UnixStream::from_std(ours)?;
    tokio::spawn(relay(tcp, ours, Arc::new(Mutex::new(ctx)), send_max));
    Ok(theirs)
}

async fn relay(tcp: TcpStream, plain: UnixStream, ctx: Arc<Mutex<ClientCtx>>, send_max: usize) {
    let (mut net_rx, mut net_tx) = tcp.into_split();
    let (mut plain_rx, mut plain_tx) = plain.into_split();
    let seal_ctx = ctx.clone();
    let outbound = async move {
        let mut buf = vec![0u8; send_max];
        loop {
            let n = plain_rx.read(&mut buf).await?;
            if n == 0 {
                return Ok::<(), std::io::Error>(());
            }
            let sealed = {
                let mut guard = seal_ctx.lock().map_err(|_| std::io::Error::other("GSSAPI context poisoned"))?;
                guard.wrap(true, &buf[..n]).map_err(|e| std::io::Error::other(format!("gss_wrap: {e:#}")))?.to_vec()
            };
            net_tx.write_all(&(sealed.len() as u32).to_be_bytes()).await?;
            net_tx.write_all(&sealed).await?;
        }
    };
    let inbound = async move {
        loop {
            let mut len = [0u8; 4];
            match net_rx.read_exact(&mut len).await {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            }
            let len = u32::from_be_bytes(len);
            if len > RECV_MAX {
                return Err(std::io::Error::other(format!("SASL buffer of {len} bytes exceeds the announced maximum")));
            }
            let mut sealed = vec![0u8; len as usize];
            net_rx.read_exact(&mut sealed).await?;
            let clear = {
                let mut guard = ctx.lock().map_err(|_| std::io::Error::other("GSSAPI context poisoned"))?;
                guard.unwrap(&sealed).map_err(|e| std::io::Error::other(format!("gss_unwrap: {e:#}")))?.to_vec()
            };
            plain_tx.write_all(&clear).await?;
        }
    };
    // Either direction ending (or failing) ends the session; dropping the halves closes both sockets.
    let result = tokio::select! {
        r = outbound => r,
        r = inbound => r,
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "sealed LDAP session ended");
    }
}

/// Sends one SASL GSSAPI BindRequest. Returns the server's token while the bind is in progress,
/// `None` once it succeeded; any other result is an error.
async fn bind_step(tcp: &mut TcpStream, credentials: Option<&[u8]>) -> Result<Option<Vec<u8>>, SealedBindError> {
    tcp.write_all(&bind_request(credentials)).await?;
    let message = read_message(tcp).await?;
    let (code, diagnostic, server_creds) = parse_bind_response(&message)?;
    match code {
        0 => Ok(None),
        RESULT_SASL_BIND_IN_PROGRESS => Ok(Some(server_creds.unwrap_or_default())),
        code => Err(SealedBindError::Refused { code, message: diagnostic }),
    }
}

fn gss(e: anyhow::Error) -> SealedBindError {
    SealedBindError::Gssapi(format!("{e:#}"))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> Result<T, SealedBindError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| SealedBindError::Gssapi(e.to_string()))?.map_err(gss)
}

// ---- the BindRequest (RFC 4511), written with domain::ber ----

/// LDAPMessage { messageID 1, BindRequest { version 3, name "", sasl { "GSSAPI", credentials } } }
fn bind_request(credentials: Option<&[u8]>) -> Vec<u8> {
    let mut sasl = tlv(0x04, b"GSSAPI");
    if let Some(c) = credentials {
        sasl.extend(tlv(0x04, c));
    }
    let mut bind = tlv(0x02, &[3]);
    bind.extend(tlv(0x04, b""));
    bind.extend(tlv(0xA3, &sasl));
    let mut message = tlv(0x02, &[1]);
    message.extend(tlv(0x60, &bind));
    tlv(0x30, &message)
}

async fn read_message(tcp: &mut TcpStream) -> Result<Vec<u8>, SealedBindError> {
    let mut head = [0u8; 2];
    tcp.read_exact(&mut head).await?;
    if head[0] != 0x30 {
        return Err(SealedBindError::Protocol("response is not an LDAPMessage"));
    }
    let len = if head[1] & 0x80 == 0 {
        usize::from(head[1])
    } else {
        let n = usize::from(head[1] & 0x7f);
        if n == 0 || n > 4 {
            return Err(SealedBindError::Protocol("unsupported length encoding"));
        }
        let mut bytes = [0u8; 4];
        tcp.read_exact(&mut bytes[4 - n..]).await?;
        u32::from_be_bytes(bytes) as usize
    };
    if len > MAX_BIND_MESSAGE {
        return Err(SealedBindError::Protocol("bind response too large"));
    }
    let mut body = vec![0u8; len];
    tcp.read_exact(&mut body).await?;
    Ok(body)
}

/// Reads one TLV at the start of `input`: (tag, content, rest).
fn read_tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), SealedBindError> {
    let bad = SealedBindError::Protocol("truncated BER element");
    let (&tag, rest) = input.split_first().ok_or(SealedBindError::Protocol("missing BER element"))?;
    let (&first, rest) = rest.split_first().ok_or(SealedBindError::Protocol("missing BER length"))?;
    let (len, rest) = if first & 0x80 == 0 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err(bad);
        }
        let len = rest[..n].iter().fold(0usize, |acc, b| acc << 8 | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(bad);
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

/// (resultCode, diagnosticMessage, serverSaslCreds) of a BindResponse message body.
fn parse_bind_response(body: &[u8]) -> Result<(u32, String, Option<Vec<u8>>), SealedBindError> {
    let (tag, _id, rest) = read_tlv(body)?;
    if tag != 0x02 {
        return Err(SealedBindError::Protocol("missing message id"));
    }
    let (tag, mut op, _) = read_tlv(rest)?;
    if tag != 0x61 {
        return Err(SealedBindError::Protocol("response is not a BindResponse"));
    }
    let (tag, code, rest) = read_tlv(op)?;
    if tag != 0x0A || code.is_empty() || code.len() > 4 {
        return Err(SealedBindError::Protocol("missing result code"));
    }
    let code = code.iter().fold(0u32, |acc, b| acc << 8 | u32::from(*b));
    let (_, _matched, rest) = read_tlv(rest)?;
    let (_, diagnostic, rest) = read_tlv(rest)?;
    op = rest;
    let mut creds = None;
    while !op.is_empty() {
        let (tag, content, rest) = read_tlv(op)?;
        if tag == 0x87 {
            creds = Some(content.to_vec());
        }
        op = rest;
    }
    Ok((code, String::from_utf8_lossy(diagnostic).into_owned(), creds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_request_encoding() {
        let req = bind_request(Some(&[0xAA; 200]));
        // 0x30 with a long-form length, message id 1, [APPLICATION 0].
        assert_eq!(&req[..3], &[0x30, 0x81, (req.len() - 3) as u8]);
        assert_eq!(&req[3..6], &[0x02, 0x01, 0x01]);
        assert_eq!(req[6], 0x60);
        assert!(req.windows(6).any(|w| w == b"GSSAPI"));
        assert_eq!(bind_request(None).len(), 22);
    }

    #[test]
    fn bind_responses() {
        // BindResponse saslBindInProgress with creds 0x01 0x02.
        let body = [0x02, 0x01, 0x01, 0x61, 0x0B, 0x0A, 0x01, 0x0E, 0x04, 0x00, 0x04, 0x00, 0x87, 0x02, 0x01, 0x02];
        assert_eq!(parse_bind_response(&body).expect("parses"), (14, String::new(), Some(vec![1, 2])));
        let refused = [0x02, 0x01, 0x01, 0x61, 0x09, 0x0A, 0x01, 0x31, 0x04, 0x00, 0x04, 0x02, b'n', b'o'];
        assert_eq!(parse_bind_response(&refused).expect("parses"), (49, "no".into(), None));
        for cut in 0..refused.len() {
            assert!(parse_bind_response(&refused[..cut]).is_err(), "cut {cut}");
        }
    }
}
