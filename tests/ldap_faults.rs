#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout, unreachable_pub)] // test code states its expectations
//! Directory servers that misbehave, played by a small scripted LDAPS responder (the test CA's
//! server certificate, so TLS verification stays on): result codes a real DC sends when it is
//! overloaded or unwilling, a server that accepts TCP and never answers, and one that drops the
//! connection in the middle of a paged search. Each must give a named reason, and never a partial
//! cache; with a real slapd behind the broken one, the sync fails over and completes.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ldapsync::cli::{self, CliError};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use support::env;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// How the scripted server behaves after a successful bind.
#[derive(Clone, Copy, Debug)]
enum Script {
    /// Every search ends with this LDAP result code.
    SearchResult(u8),
    /// Accepts TCP connections and never sends a byte.
    Silent,
    /// Sends this many entries of the first search, then closes the connection.
    DropAfter(usize),
    /// Sends this many entries of the first search, then keeps the connection open in silence.
    StallAfter(usize),
}

fn ber_length(len: usize) -> Vec<u8> {
    if len < 0x80 {
        vec![len as u8]
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        let mut out = vec![0x80 | bytes.len() as u8];
        out.extend(bytes);
        out
    }
}

fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend(ber_length(body.len()));
    out.extend_from_slice(body);
    out
}

fn message(id: u32, op: Vec<u8>) -> Vec<u8> {
    let id_bytes: Vec<u8> = {
        let b: Vec<u8> = id.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        let mut b = if b.is_empty() { vec![0] } else { b };
        if b[0] & 0x80 != 0 {
            b.insert(0, 0);
        }
        b
    };
    let mut body = tlv(0x02, &id_bytes);
    body.extend(op);
    tlv(0x30, &body)
}

fn result(tag: u8, code: u8, diagnostic: &str) -> Vec<u8> {
    let mut body = tlv(0x0a, &[code]);
    body.extend(tlv(0x04, b""));
    body.extend(tlv(0x04, diagnostic.as_bytes()));
    tlv(tag, &body)
}

fn entry(dn: &str) -> Vec<u8> {
    let mut body = tlv(0x04, dn.as_bytes());
    body.extend(tlv(0x30, b""));
    tlv(0x64, &body)
}

/// One LDAP request as the script needs it.
struct Request {
    id: u32,
    /// The protocol operation's tag.
    op: u8,
    /// A search of the empty base: the RootDSE.
    reads_root_dse: bool,
}

/// Reads one LDAP message.
async fn read_message(stream: &mut (impl AsyncReadExt + Unpin)) -> Option<Request> {
    let tag = stream.read_u8().await.ok()?;
    if tag != 0x30 {
        return None;
    }
    let first = stream.read_u8().await.ok()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let mut len = 0usize;
        for _ in 0..(first & 0x7f) {
            len = len << 8 | usize::from(stream.read_u8().await.ok()?);
        }
        len
    };
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await.ok()?;
    // messageID INTEGER, then the operation's tag.
    let id_len = usize::from(*body.get(1)?);
    let id = body.get(2..2 + id_len)?.iter().fold(0u32, |n, b| n << 8 | u32::from(*b));
    let op = *body.get(2 + id_len)?;
    // A search request opens with its base DN, an OCTET STRING: `04 00` when it is empty. (Other
    // requests may be shorter: an abandon is its tag, a length and the id.)
    let op_len_octets = match body.get(3 + id_len).copied().unwrap_or(0) {
        short if short < 0x80 => 1,
        long => 1 + usize::from(long & 0x7f),
    };
    let base = body.get(3 + id_len + op_len_octets..5 + id_len + op_len_octets);
    Some(Request { id, op, reads_root_dse: op == 0x63 && base == Some(&[0x04, 0x00][..]) })
}

/// Starts the scripted server on 127.0.0.1; returns its port.
async fn scripted_server(script: Script) -> u16 {
    let state = env("LDAPSYNC_TEST_STATE");
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(format!("{state}/pki/server.pem"))
        .expect("server certificate")
        .collect::<Result<_, _>>()
        .expect("certificate PEM");
    let key = PrivateKeyDer::from_pem_file(format!("{state}/pki/server.key")).expect("server key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server TLS config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind scripted server");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Script::Silent = script {
                    let _held = tcp;
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    return;
                }
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                while let Some(Request { id, op, reads_root_dse }) = read_message(&mut tls).await {
                    let answer = match (op, script) {
                        (0x60, _) => message(id, result(0x61, 0, "")),
                        (0x42, _) => return,
                        // A RootDSE that offers no change tracking: the script acts on the sync's searches.
                        (0x63, _) if reads_root_dse => {
                            let mut out = message(id, entry(""));
                            out.extend(message(id, result(0x65, 0, "")));
                            out
                        }
                        (0x63, Script::SearchResult(code)) => message(id, result(0x65, code, "scripted answer")),
                        (0x63, Script::DropAfter(n) | Script::StallAfter(n)) => {
                            let mut out = Vec::new();
                            for i in 0..n {
                                out.extend(message(id, entry(&format!("uid=partial{i},ou=people,dc=example,dc=test"))));
                            }
                            let _ = tls.write_all(&out).await;
                            let _ = tls.flush().await;
                            if let Script::StallAfter(_) = script {
                                tokio::time::sleep(Duration::from_secs(3600)).await;
                            }
                            return; // the connection drops in the middle of the search
                        }
                        (_, _) => message(id, result(0x78, 53, "not scripted")),
                    };
                    if tls.write_all(&answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

/// A manifest and the secrets it names, in a temporary folder.
struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let put = |name: &str, key: &str, value: &[u8]| {
            let p = dir.path().join("secrets").join(name);
            std::fs::create_dir_all(&p).expect("secret dir");
            std::fs::write(p.join(key), value).expect("secret");
        };
        put("pw", "password", env("LDAPSYNC_TEST_SLAPD_PASSWORD").as_bytes());
        put("ca", "ca.crt", &support::read_file("LDAPSYNC_TEST_CA_FILE"));
        Self { dir }
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    fn manifest(&self, servers: &[String]) -> PathBuf {
        let list: Vec<String> = servers.iter().map(|s| format!("'{s}'")).collect();
        let yaml = format!(
            "apiVersion: ldapsync.io/v1alpha1\nkind: LdapConnection\nmetadata: {{name: faults, namespace: faults, uid: faults-uid}}\nspec:\n  domain: example.test\n  searchBase: '{}'\n  directoryType: Generic\n  servers: {{static: [{}]}}\n  tls: {{mode: LDAPS, ca: {{secretRef: {{name: ca}}}}}}\n  auth: {{simple: {{bindDN: '{}', passwordSecretRef: {{name: pw}}}}}}\n  timeouts: {{connect: 1s, operation: 2s}}\n  deletionSafety: {{maxDeletedObjects: 0, maxDeletedPercent: 0}}\n",
            env("LDAPSYNC_TEST_SLAPD_BASE"),
            list.join(", "),
            env("LDAPSYNC_TEST_SLAPD_BIND_DN"),
        );
        let path = self.dir.path().join(format!("m{}.yaml", servers.len()));
        std::fs::write(&path, yaml).expect("manifest");
        path
    }

    async fn sync(&self, servers: &[String]) -> Result<cli::SyncReport, CliError> {
        let m = self.manifest(servers);
        cli::sync(&m, Some(&self.dir.path().join("secrets")), &self.store(), None, None).await
    }

    fn stored(&self) -> Option<Vec<u8>> {
        std::fs::read(Path::new(&self.store()).join("faults-uid.snap")).ok()
    }
}

#[tokio::test]
async fn result_codes_of_a_struggling_directory_get_named_reasons() {
    let cases = [(4u8, "SizeLimitExceeded"), (51, "ServerBusy"), (52, "ServerUnavailable"), (53, "UnwillingToPerform")];
    for (code, reason) in cases {
        let port = scripted_server(Script::SearchResult(code)).await;
        let case = Case::new();
        let err = case.sync(&[format!("127.0.0.1:{port}")]).await.expect_err("a scripted failure");
        assert_eq!(err.reason(), reason, "code {code}: {err}");
        assert!(case.stored().is_none(), "code {code}: nothing may be stored");
    }
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_and_is_reported() {
    let port = scripted_server(Script::Silent).await;
    let case = Case::new();
    let started = Instant::now();
    let err = case.sync(&[format!("127.0.0.1:{port}")]).await.expect_err("silence");
    let took = started.elapsed();
    assert_eq!(err.reason(), "NoDomainControllerReachable", "{err}");
    assert!(err.to_string().contains("timed out") || err.to_string().contains("timeout"), "{err}");
    assert!(took < Duration::from_secs(5), "the 1 s connect timeout did not fire: {took:?}");
}

#[tokio::test]
async fn a_server_that_stalls_mid_search_times_out_after_the_operation_timeout() {
    let port = scripted_server(Script::StallAfter(3)).await;
    let case = Case::new();
    let started = Instant::now();
    let err = case.sync(&[format!("127.0.0.1:{port}")]).await.expect_err("a stalled search");
    let took = started.elapsed();
    // Every server timing out reads as an outage; the message names the search that went quiet.
    assert_eq!(err.reason(), "NoDomainControllerReachable", "{err}");
    assert!(err.to_string().contains("search on 127.0.0.1") && err.to_string().contains("timed out after 2s"), "{err}");
    // `timeouts.operation` is 2 s: silence is reported after 2 to 3 s of it, not before.
    assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(4), "timed out after {took:?}");
    assert!(case.stored().is_none(), "nothing may be stored");
}

#[tokio::test]
async fn a_connection_dropped_mid_search_fails_over_or_keeps_the_old_cache() {
    let real = "127.0.0.2:636".to_owned();
    let case = Case::new();
    let first = case.sync(std::slice::from_ref(&real)).await.unwrap_or_else(|e| panic!("sync from slapd: {e}"));
    let before = case.stored().expect("stored snapshot");

    // Alone, the dropping server fails the sync and the old cache stays byte for byte.
    let port = scripted_server(Script::DropAfter(5)).await;
    let dropping = format!("127.0.0.1:{port}");
    let err = case.sync(std::slice::from_ref(&dropping)).await.expect_err("dropped mid-search");
    assert_eq!(case.stored().as_deref(), Some(before.as_slice()), "a failed sync replaced the cache: {err}");

    // With slapd behind it, the read starts again there and the snapshot is complete.
    let report = case.sync(&[dropping, real]).await.unwrap_or_else(|e| panic!("failover: {e}"));
    assert!(report.server.starts_with("127.0.0.2:636"), "{}", report.server);
    assert_eq!((report.users, report.groups, report.contacts), (first.users, first.groups, first.contacts));
    assert!(report.users > 5);
}
