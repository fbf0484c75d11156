//! Finds the real peers started by `scripts/test-env.sh` through environment variables. A missing
//! variable fails the test with the variable's name: integration tests never skip.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ldapsync::api::TlsMode;
use ldapsync::directory::ldap::{ServerEndpoint, TransportSettings};
use ldapsync::directory::tls;

/// The value of a `LDAPSYNC_TEST_*` variable, or a panic that says what is missing and how to get it.
pub fn env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{name} is not set: this integration test needs the real peers. Run `scripts/test.sh`, \
             or `unshare --net --fork -- scripts/test-env.sh run cargo nextest run`."
        ),
    }
}

pub fn read_file(var: &str) -> Vec<u8> {
    let path = env(var);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{var}={path} cannot be read: {e}"))
}

/// The Samba AD DC: its DNS name and LDAP address.
pub fn samba_endpoint(port: u16) -> ServerEndpoint {
    let addr: SocketAddr =
        format!("{}:{port}", env("LDAPSYNC_TEST_AD_ADDR")).parse().expect("LDAPSYNC_TEST_AD_ADDR is an IP");
    ServerEndpoint { host: env("LDAPSYNC_TEST_AD_HOST"), addr }
}

/// The slapd instances, as `(host, addr)` from `LDAPSYNC_TEST_SLAPD_URLS`.
pub fn slapd_endpoints() -> Vec<ServerEndpoint> {
    env("LDAPSYNC_TEST_SLAPD_URLS")
        .split(',')
        .map(|url| {
            let hostport = url.trim().trim_start_matches("ldap://");
            let addr: SocketAddr = hostport.parse().expect("slapd URL is ldap://IP:PORT");
            ServerEndpoint { host: addr.ip().to_string(), addr }
        })
        .collect()
}

pub fn transport(mode: TlsMode, ca_var: Option<&str>) -> TransportSettings {
    let tls = match mode {
        TlsMode::None => None,
        _ => {
            let ca = ca_var.map(read_file);
            Some(tls::client_config(ca.as_deref(), false).expect("TLS configuration builds"))
        }
    };
    TransportSettings {
        mode,
        tls,
        server_name: None,
        connect_timeout: Duration::from_secs(5),
        operation_timeout: Duration::from_secs(20),
    }
}

/// A panic message naming the peer when it cannot be reached.
pub fn unreachable(peer: &str, err: impl std::fmt::Display) -> String {
    format!("{peer} is not reachable ({err}); is it running? (scripts/test-env.sh starts it)")
}

pub fn arc<T>(v: T) -> Arc<T> {
    Arc::new(v)
}
