//! One sync: find the servers, connect and bind with failover, read every object kind with paged
//! searches (and ranged `member` reads), and return a complete snapshot — or an error, never a
//! partial result.

use crate::domain::reason::Reason;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::DirectoryError;
use super::dns::{DnsError, DnsResolver};
use super::ldap::{BindCredentials, LdapSession, ServerEndpoint, TransportSettings};
use super::tls;
use crate::api::{DirectoryType, LdapConnectionSpec, TlsMode};
use crate::domain::duration::parse_duration;
use crate::domain::incremental::{FullReason, ReadSummary, SyncMode, SyncState};
use crate::domain::lazy::{Lazy, LoadFailed};
use crate::domain::profile::{FilterError, ObjectQuery, ReadPlan, read_plan};
use crate::domain::snapshot::{ConnectionRef, Snapshot, SnapshotBuilder, SnapshotError};
use crate::domain::srv::{
    SrvTarget, domain_srv_name, host_port, in_name_order, order_targets, parse_host_port, site_srv_name,
};
use crate::secret::Secret;

/// The DCs to try, in order, and the AD site whose DCs come first (configured or discovered).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DcList {
    pub servers: Vec<(String, u16)>,
    pub site: Option<String>,
}

/// A complete snapshot and how it was read.
#[derive(Debug)]
pub struct SnapshotRead {
    /// `None` when a delta found nothing changed: the served snapshot stays as it is.
    pub snapshot: Option<Snapshot>,
    pub site: Option<String>,
    pub read: ReadSummary,
}

/// The served content and its change-tracking state, for an incremental read.
#[derive(Clone, Copy)]
pub struct Previous<'a> {
    /// Loaded only when changes are to be applied to it.
    pub snapshot: &'a Lazy<Arc<Snapshot>>,
    pub state: &'a SyncState,
}

/// Secret material a connection references, already read.
#[derive(Clone, Default)]
pub struct ConnectionSecrets {
    pub password: Option<Secret>,
    pub keytab: Option<Secret>,
    pub ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for ConnectionSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionSecrets")
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("keytab", &self.keytab.as_ref().map(|_| "<redacted>"))
            .field("ca_pem", &self.ca_pem.as_ref().map(Vec::len))
            .finish()
    }
}

/// A spec that cannot be used, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("{field}: {detail}")]
    Invalid { field: &'static str, detail: String },
    #[error(transparent)]
    Filter(#[from] FilterError),
}

/// Why a sync produced no snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("invalid spec: {0}")]
    Spec(#[from] SpecError),
    #[error("no directory server found: {0}")]
    Discover(DnsError),
    #[error("no domain controller could be read: {}", .attempts.iter().map(|a| a.message.as_str()).collect::<Vec<_>>().join("; "))]
    NoDomainControllerReachable { attempts: Vec<Attempt> },
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("the sync did not finish within {after:?}")]
    SyncTimeout { after: Duration },
    #[error("a delta found nothing changed, but no snapshot is served to keep")]
    NoServedSnapshot,
    /// The stored snapshot a delta applies to could not be loaded.
    #[error("the stored snapshot cannot be read: {0}")]
    Served(#[from] LoadFailed),
}

impl SyncError {
    /// Stable reason for conditions, rows and metrics.
    pub fn reason(&self) -> Reason {
        match self {
            Self::Spec(SpecError::Filter(_)) => Reason::InvalidFilter,
            Self::Spec(_) => Reason::InvalidSpec,
            Self::Discover(_) => Reason::DnsLookupFailed,
            Self::NoDomainControllerReachable { attempts } => {
                // Every server failing the same way (a wrong CA, a busy or unwilling directory) names
                // that cause; servers that could not be reached at all are an outage.
                let first = attempts.first().map(|a| a.reason);
                match first {
                    Some(Reason::ConnectionFailed | Reason::Timeout | Reason::DnsLookupFailed) | None => {
                        Reason::NoDomainControllerReachable
                    }
                    Some(r) if attempts.iter().all(|a| a.reason == r) => r,
                    _ => Reason::NoDomainControllerReachable,
                }
            }
            Self::Directory(e) => e.reason(),
            Self::Snapshot(_) => Reason::InvalidDirectoryData,
            Self::SyncTimeout { .. } => Reason::Timeout,
            Self::NoServedSnapshot => Reason::InvalidDirectoryData,
            Self::Served(e) => e.reason,
        }
    }
}

/// One server that could not be used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub reason: Reason,
    pub message: String,
}

impl Attempt {
    fn of(e: &impl std::fmt::Display, reason: Reason) -> Self {
        Self { reason, message: e.to_string() }
    }
}

/// Everything a connection's syncs need, checked once.
pub struct PreparedConnection {
    pub connection: ConnectionRef,
    pub spec: LdapConnectionSpec,
    pub plan: ReadPlan,
    pub transport: TransportSettings,
    pub credentials: BindCredentials,
    pub sync_timeout: Duration,
    /// Objects read so far by the running sync (for progress metrics).
    pub progress: Arc<std::sync::atomic::AtomicU64>,
}

impl PreparedConnection {
    /// Builds TLS, credentials and the read plan from a spec that passed validation
    /// ([`crate::domain::validation::validate_spec`]) and the secrets it references. Kerberos
    /// credentials are acquired on a blocking thread (GSSAPI blocks) and kept private to this
    /// connection.
    pub async fn prepare(
        connection: ConnectionRef,
        spec: LdapConnectionSpec,
        secrets: ConnectionSecrets,
    ) -> Result<Self, SyncError> {
        let invalid = |field: &'static str, detail: String| SyncError::Spec(SpecError::Invalid { field, detail });
        let duration =
            |field: &'static str, value: &str| parse_duration(value).map_err(|e| invalid(field, e.to_string()));
        let connect_timeout = duration("spec.timeouts.connect", &spec.timeouts.connect)?;
        let operation_timeout = duration("spec.timeouts.operation", &spec.timeouts.operation)?;
        let sync_timeout = duration("spec.timeouts.sync", &spec.timeouts.sync)?;
        let plan = read_plan(&spec).map_err(SpecError::from)?;
        let tls = match spec.tls.mode {
            TlsMode::None => None,
            _ => Some(
                tls::client_config(secrets.ca_pem.as_deref(), spec.tls.insecure_skip_verify)
                    .map_err(DirectoryError::from)?,
            ),
        };
        let credentials = match (&spec.auth.simple, &spec.auth.kerberos) {
            (Some(simple), None) => {
                let password = secrets.password.clone().ok_or_else(|| {
                    invalid("spec.auth.simple.passwordSecretRef", "the password was not provided".into())
                })?;
                BindCredentials::Simple { bind_dn: simple.bind_dn.clone(), password }
            }
            (None, Some(kerberos)) => {
                kerberos_credentials(&connection, kerberos.principal.clone(), secrets.keytab.clone()).await?
            }
            _ => return Err(invalid("spec.auth", "set exactly one of kerberos or simple".into())),
        };
        let transport = TransportSettings {
            mode: spec.tls.mode,
            tls,
            server_name: spec.tls.server_name.clone(),
            connect_timeout,
            operation_timeout,
        };
        Ok(Self { connection, spec, plan, transport, credentials, sync_timeout, progress: Arc::default() })
    }

    /// The servers to try, in order: static ones as listed, or SRV targets in RFC 2782 order
    /// (the site's DCs first, then the domain's others). `pick(total)` is the randomness for weights.
    pub async fn servers(&self, dns: &DnsResolver, pick: impl FnMut(u64) -> u64) -> Result<DcList, SyncError> {
        let default_port = if self.spec.tls.mode == TlsMode::Ldaps { 636 } else { 389 };
        if !self.spec.servers.static_servers.is_empty() {
            let servers = self
                .spec
                .servers
                .static_servers
                .iter()
                .map(|s| {
                    parse_host_port(s, default_port)
                        .map_err(|detail| SyncError::Spec(SpecError::Invalid { field: "spec.servers.static", detail }))
                })
                .collect::<Result<_, _>>()?;
            return Ok(DcList { servers, site: None });
        }
        let mut pick = pick;
        let domain_targets = dns.srv(&domain_srv_name(&self.spec.domain)).await.map(|t| order_targets(t, &mut pick));
        let site = match self.spec.servers.srv.as_ref().and_then(|s| s.site.clone()) {
            Some(site) => Some(site),
            None => match &domain_targets {
                Ok(targets) => self.discover_site(dns, targets).await,
                Err(_) => None,
            },
        };
        let mut answers = Vec::new();
        let mut last_error = None;
        if let Some(site) = &site {
            match dns.srv(&site_srv_name(&self.spec.domain, site)).await {
                Ok(targets) => answers.push(order_targets(targets, &mut pick)),
                Err(e) => last_error = Some(e),
            }
        }
        match domain_targets {
            Ok(targets) => answers.push(targets),
            Err(e) => last_error = Some(e),
        }
        let ordered: Vec<SrvTarget> = in_name_order(answers);
        if ordered.is_empty() {
            return Err(SyncError::Discover(
                last_error.unwrap_or(DnsError::NoSrvRecords { name: self.spec.domain.clone() }),
            ));
        }
        let servers = ordered
            .into_iter()
            .map(|t| {
                // DCs publish the LDAP port; LDAPS listens on 636 of the same hosts.
                let port = if self.spec.tls.mode == TlsMode::Ldaps && t.port == 389 { 636 } else { t.port };
                (t.host, port)
            })
            .collect();
        Ok(DcList { servers, site })
    }

    /// The client's AD site as the first DCs that answer a netlogon ping say (Active Directory
    /// only; at most three DCs asked). `None` when none places this client in a site.
    async fn discover_site(&self, dns: &DnsResolver, dcs: &[SrvTarget]) -> Option<String> {
        if self.spec.directory_type != DirectoryType::ActiveDirectory {
            return None;
        }
        let wait = self.transport.connect_timeout.min(Duration::from_secs(2));
        for dc in dcs.iter().take(3) {
            let Ok(addresses) = dns.addresses(&dc.host).await else { continue };
            let Some(ip) = addresses.first() else { continue };
            // CLDAP answers on UDP 389 whatever port the SRV record gives for LDAP.
            match super::cldap::ping(SocketAddr::new(*ip, 389), &self.spec.domain, wait).await {
                Ok(answer) if !answer.client_site.is_empty() => {
                    tracing::debug!(dc = %dc.host, site = %answer.client_site, "the DC places this client in a site");
                    return Some(answer.client_site);
                }
                Ok(_) => return None,
                Err(e) => tracing::debug!(dc = %dc.host, error = %e, "no site from this DC"),
            }
        }
        None
    }

    /// Connects and binds to the first server that answers, trying the next one on network, TLS
    /// and timeout failures; also returns which of `servers` answered. A refused password is not
    /// retried elsewhere (it would only lock the account).
    pub async fn open_session(
        &self,
        dns: &DnsResolver,
        servers: &[(String, u16)],
    ) -> Result<(LdapSession, usize), SyncError> {
        let mut attempts = Vec::new();
        for (position, (host, port)) in servers.iter().enumerate() {
            let addresses = match dns.addresses(host).await {
                Ok(a) => a,
                Err(e) => {
                    attempts.push(Attempt::of(&format!("{host}:{port}: {e}"), Reason::DnsLookupFailed));
                    continue;
                }
            };
            for ip in addresses {
                let endpoint = ServerEndpoint { host: host.clone(), addr: SocketAddr::new(ip, *port) };
                match self.connect_and_bind(&endpoint).await {
                    Ok(session) => return Ok((session, position)),
                    Err(e) if fails_over(&e) => {
                        tracing::info!(server = %endpoint, reason = %e.reason(), error = %e, "directory server failed, trying the next");
                        attempts.push(Attempt::of(&e, e.reason()));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Err(SyncError::NoDomainControllerReachable { attempts })
    }

    async fn connect_and_bind(&self, endpoint: &ServerEndpoint) -> Result<LdapSession, DirectoryError> {
        LdapSession::open(endpoint, &self.transport, &self.credentials).await
    }

    /// A complete read, and the site whose DCs were asked first. Servers are tried in order; a
    /// server that fails mid-read is abandoned and the read starts again on the next one, so a
    /// snapshot never mixes servers or misses pages.
    ///
    /// With `previous`, the server that tracked its changes is asked first for only those; any
    /// doubt (another server answers, the cookie is refused) reads everything. `track` takes
    /// where change tracking stands before a full read, for the next sync to start from.
    pub async fn read_snapshot(
        &self,
        dns: &DnsResolver,
        pick: impl FnMut(u64) -> u64,
        now: impl Fn() -> i64,
        previous: Option<Previous<'_>>,
        track: bool,
    ) -> Result<SnapshotRead, SyncError> {
        let work = async {
            let DcList { mut servers, site } = self.servers(dns, pick).await?;
            let mut full_reason = None;
            let mut delta_from = None;
            if let Some(previous) = previous {
                match servers.iter().position(|(host, port)| host_port(host, *port) == previous.state.server) {
                    Some(at) => {
                        let tracked = servers.remove(at);
                        servers.insert(0, tracked);
                        delta_from = Some(previous);
                    }
                    None => full_reason = Some(FullReason::ServerChanged),
                }
            }
            let mut remaining: &[(String, u16)] = &servers;
            let mut attempts = Vec::new();
            while !remaining.is_empty() {
                let (mut session, used) = match self.open_session(dns, remaining).await {
                    Ok(found) => found,
                    Err(SyncError::NoDomainControllerReachable { attempts: more }) => {
                        attempts.extend(more);
                        break;
                    }
                    Err(e) => return Err(e),
                };
                let (host, port) = &remaining[used];
                let server_key = host_port(host, *port);
                let served_by = session.server().to_owned();
                // Only the server that tracked the changes can say what changed since.
                let tracked_here = match delta_from.take() {
                    Some(previous) if used == 0 => Some(previous),
                    Some(_) => {
                        full_reason = Some(FullReason::ServerChanged);
                        None
                    }
                    None => None,
                };
                remaining = &remaining[used + 1..];
                let result = match tracked_here {
                    Some(previous) => self.read_delta(&mut session, previous.snapshot, previous.state).await,
                    None => Ok(Err(super::delta::NeedFull(full_reason.unwrap_or(FullReason::NoState)))),
                };
                let result = match result {
                    Ok(Ok(delta)) => Ok(SnapshotRead {
                        snapshot: delta.snapshot,
                        site: site.clone(),
                        read: ReadSummary {
                            mode: SyncMode::Incremental,
                            full_reason: None,
                            entries_read: delta.entries_read,
                            changes: delta.changes,
                            state: Some(delta.state),
                            deletions: delta.deletions,
                        },
                    }),
                    Ok(Err(super::delta::NeedFull(reason))) => {
                        if previous.is_some() {
                            full_reason = Some(reason);
                        }
                        self.read_full(&mut session, &server_key, track, &now).await.map(
                            |(snapshot, entries_read, state)| SnapshotRead {
                                snapshot: Some(snapshot),
                                site: site.clone(),
                                read: ReadSummary {
                                    mode: SyncMode::Full,
                                    full_reason: full_reason
                                        .or((track && state.is_none()).then_some(FullReason::Unsupported)),
                                    entries_read,
                                    changes: 0,
                                    state,
                                    deletions: None,
                                },
                            },
                        )
                    }
                    Err(e) => Err(e),
                };
                match result {
                    Ok(read) => {
                        session.close().await;
                        return Ok(read);
                    }
                    Err(SyncError::Directory(e)) if fails_over(&e) => {
                        tracing::warn!(server = %served_by, reason = %e.reason(), error = %e, "read failed part-way, starting again on the next server");
                        attempts.push(Attempt::of(&e, e.reason()));
                        if previous.is_some() {
                            full_reason = Some(FullReason::ServerChanged);
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(SyncError::NoDomainControllerReachable { attempts })
        };
        match tokio::time::timeout(self.sync_timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(SyncError::SyncTimeout { after: self.sync_timeout }),
        }
    }

    /// Everything, on one session; with `track`, where change tracking stood before the read.
    async fn read_full(
        &self,
        session: &mut LdapSession,
        server_key: &str,
        track: bool,
        now: &impl Fn() -> i64,
    ) -> Result<(Snapshot, u64, Option<SyncState>), SyncError> {
        let point = if track {
            match self.tracking_point(session, super::delta::Position::Now).await {
                Ok(point) => point,
                // Change tracking refused (rights, limits) is no reason to fail a full read.
                Err(SyncError::Directory(e @ DirectoryError::Search { .. })) => {
                    tracing::info!(connection = %self.connection.name, error = %e, "no change tracking on this server: every sync reads everything");
                    None
                }
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        let mut builder = SnapshotBuilder::new(self.plan.names.clone());
        let entries = self.read_into(session, &mut builder, &self.plan.queries).await?;
        let taken_at = now();
        let snapshot = builder.finish(
            self.connection.clone(),
            &self.spec.domain,
            &self.spec.search_base,
            session.server(),
            taken_at,
        );
        let state = point.and_then(|p| self.state_at(server_key, p, taken_at));
        Ok((snapshot, entries, state))
    }

    /// Runs `queries` into `builder`, following ranged member values. Returns the entries read.
    pub(crate) async fn read_into(
        &self,
        session: &mut LdapSession,
        builder: &mut SnapshotBuilder,
        queries: &[ObjectQuery],
    ) -> Result<u64, SyncError> {
        let mut pending_ranges = Vec::new();
        let mut entries = 0;
        for query in queries {
            let attrs: Vec<&str> = query.attributes.iter().map(String::as_str).collect();
            let mut failure = None;
            entries += session
                .search_paged(&self.spec.search_base, &query.filter, &attrs, self.spec.page_size, |entry| {
                    if failure.is_some() {
                        return;
                    }
                    let before = builder.len();
                    match builder.add(query.kind, entry) {
                        Ok(pending) => pending_ranges.extend(pending),
                        Err(e) => failure = Some(e),
                    }
                    self.progress.store(builder.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    if builder.len() != before && builder.len().is_multiple_of(10_000) {
                        tracing::info!(connection = %self.connection.name, objects = builder.len(), "sync progress");
                    }
                })
                .await?;
            if let Some(e) = failure {
                return Err(e.into());
            }
        }
        for mut pending in pending_ranges {
            loop {
                let attr = format!("{};range={}-*", pending.attr, pending.next);
                let Some(entry) = session.read_entry(&pending.group_dn, &[attr.as_str()]).await? else {
                    break;
                };
                entries += 1;
                match builder.add_range(&pending, entry) {
                    Some(next) => pending = next,
                    None => break,
                }
            }
        }
        Ok(entries)
    }
}

/// Network, TLS and timeout failures (and a busy server) move on to the next server; refused
/// credentials never do (each DC would count one more bad attempt).
fn fails_over(e: &DirectoryError) -> bool {
    // Tickets that could not be had from this DC (it is the KDC) are this DC's failure too.
    let no_tickets = e.reason() == Reason::KerberosFailed;
    !crate::domain::credentials::is_refusal(e.reason())
        && (no_tickets
            || matches!(
                e,
                DirectoryError::ConnectLdap { .. }
                    | DirectoryError::ConnectTimeout { .. }
                    | DirectoryError::TlsHandshake { .. }
                    | DirectoryError::OperationTimeout { .. }
                    | DirectoryError::ConnectionLost { .. }
                    | DirectoryError::MalformedResponse { .. }
                    | DirectoryError::Operation { .. }
                    | DirectoryError::KerberosBind { .. }
                    | DirectoryError::Search { code: 51 | 52, .. }
            ))
}

#[cfg(feature = "kerberos")]
async fn kerberos_credentials(
    connection: &ConnectionRef,
    principal: Option<String>,
    keytab: Option<Secret>,
) -> Result<BindCredentials, SyncError> {
    let keytab = keytab.ok_or_else(|| SpecError::Invalid {
        field: "spec.auth.kerberos.keytabSecretRef",
        detail: "the keytab was not provided".into(),
    })?;
    let cache = format!(
        "ldapsync-{}-{}",
        connection.namespace,
        if connection.uid.is_empty() { &connection.name } else { &connection.uid }
    );
    let cred = super::kerberos::KerberosCredential::from_keytab(keytab.expose(), principal.as_deref(), &cache)
        .map_err(DirectoryError::from)?;
    Ok(BindCredentials::Kerberos(Arc::new(cred)))
}

#[cfg(not(feature = "kerberos"))]
async fn kerberos_credentials(
    _: &ConnectionRef,
    _: Option<String>,
    _: Option<Secret>,
) -> Result<BindCredentials, SyncError> {
    Err(SpecError::Invalid {
        field: "spec.auth.kerberos",
        detail: "this build has no Kerberos support (cargo feature `kerberos`)".into(),
    }
    .into())
}
