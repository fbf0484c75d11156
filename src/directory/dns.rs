//! DNS lookups of domain controllers (SRV) and their addresses, through hickory.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;

use crate::domain::srv::SrvTarget;

/// Environment variable naming the DNS server (`HOST:PORT`) used instead of the system resolver.
pub const DNS_SERVER_ENV: &str = "LDAPSYNC_DNS_SERVER";

/// Why a DNS lookup failed.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("invalid DNS server {value:?}: expected IP:PORT")]
    InvalidServer { value: String },
    #[error("cannot set up the DNS resolver: {detail}")]
    BuildResolver { detail: String },
    #[error("no SRV records for {name}")]
    NoSrvRecords { name: String },
    #[error("no address records for {host}")]
    NoAddress { host: String },
    #[error("DNS lookup of {name} failed: {detail}")]
    Lookup { name: String, detail: String },
}

/// Resolves SRV records and host names, with the system's or an explicit DNS server.
#[derive(Clone)]
pub struct DnsResolver {
    inner: TokioResolver,
}

impl DnsResolver {
    /// `server` is `IP:PORT` (e.g. `127.0.0.1:5353`); `None` uses the system configuration.
    pub fn new(server: Option<&str>, timeout: Duration) -> Result<Self, DnsError> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = match server {
            Some(value) => {
                let addr: SocketAddr =
                    value.parse().map_err(|_| DnsError::InvalidServer { value: value.to_owned() })?;
                let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                for c in &mut ns.connections {
                    c.port = addr.port();
                }
                TokioResolver::builder_with_config(ResolverConfig::from_name_servers(vec![ns]), provider)
            }
            None => TokioResolver::builder(provider).map_err(|e| DnsError::BuildResolver { detail: e.to_string() })?,
        };
        let opts = builder.options_mut();
        opts.timeout = timeout;
        opts.attempts = 2;
        let inner = builder.build().map_err(|e| DnsError::BuildResolver { detail: e.to_string() })?;
        Ok(Self { inner })
    }

    /// The SRV targets published under `name` (unordered, as answered).
    pub async fn srv(&self, name: &str) -> Result<Vec<SrvTarget>, DnsError> {
        let fqdn = fully_qualified(name);
        let lookup = match self.inner.srv_lookup(fqdn.as_str()).await {
            Ok(lookup) => lookup,
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => {
                return Err(DnsError::NoSrvRecords { name: name.to_owned() });
            }
            Err(e) => {
                return Err(DnsError::Lookup { name: name.to_owned(), detail: e.to_string() });
            }
        };
        let targets: Vec<SrvTarget> = lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::SRV(srv) => Some(SrvTarget {
                    priority: srv.priority,
                    weight: srv.weight,
                    port: srv.port,
                    host: srv.target.to_utf8().trim_end_matches('.').to_owned(),
                }),
                _ => None,
            })
            .collect();
        if targets.is_empty() {
            return Err(DnsError::NoSrvRecords { name: name.to_owned() });
        }
        Ok(targets)
    }

    /// The addresses of `host`; an IP literal is returned as is.
    pub async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, DnsError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![ip]);
        }
        let fqdn = fully_qualified(host);
        match self.inner.lookup_ip(fqdn.as_str()).await {
            Ok(lookup) => {
                let ips: Vec<IpAddr> = lookup.iter().collect();
                if ips.is_empty() { Err(DnsError::NoAddress { host: host.to_owned() }) } else { Ok(ips) }
            }
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => Err(DnsError::NoAddress { host: host.to_owned() }),
            Err(e) => Err(DnsError::Lookup { name: host.to_owned(), detail: e.to_string() }),
        }
    }
}

fn fully_qualified(name: &str) -> String {
    if name.ends_with('.') { name.to_owned() } else { format!("{name}.") }
}
