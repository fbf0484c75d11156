//! One LDAP session to one directory server: TCP, TLS (StartTLS or LDAPS), and a bind.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ldap3::asn1::{PL, StructureTag, TagClass, parse_tag};
use ldap3::controls::{Control, ControlType, PagedResults, RawControl};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, ResultEntry, Scope};
use rustls::ClientConfig;
use tokio::net::TcpStream;

use super::DirectoryError;
use crate::api::TlsMode;
use crate::domain::snapshot::{RawAttribute, RawEntry};
use crate::secret::Secret;

/// Where to connect: the server's DNS name (TLS name and Kerberos service host) and an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerEndpoint {
    pub host: String,
    pub addr: SocketAddr,
}

impl std::fmt::Display for ServerEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host == self.addr.ip().to_string() {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}:{} ({})", self.host, self.addr.port(), self.addr.ip())
        }
    }
}

/// Transport settings shared by every server of a connection.
#[derive(Clone)]
pub struct TransportSettings {
    pub mode: TlsMode,
    /// Required unless `mode` is `None`.
    pub tls: Option<Arc<ClientConfig>>,
    /// Overrides the endpoint's host as the TLS name and Kerberos service host.
    pub server_name: Option<String>,
    pub connect_timeout: Duration,
    pub operation_timeout: Duration,
}

/// How to bind.
#[derive(Clone)]
pub enum BindCredentials {
    /// Simple bind with a DN or `user@domain`.
    Simple { bind_dn: String, password: Secret },
    /// SASL GSSAPI with credentials private to this connection.
    #[cfg(feature = "kerberos")]
    Kerberos(Arc<super::kerberos::KerberosCredential>),
}

impl BindCredentials {
    /// Who binds, for messages (never the secret).
    pub fn identity(&self) -> &str {
        match self {
            Self::Simple { bind_dn, .. } => bind_dn,
            #[cfg(feature = "kerberos")]
            Self::Kerberos(cred) => cred.principal(),
        }
    }
}

/// A search as [`LdapSession::search`] runs it.
pub struct SearchRequest<'a> {
    pub base: &'a str,
    pub scope: Scope,
    pub filter: &'a str,
    pub attrs: &'a [&'a str],
    pub controls: Vec<RawControl>,
    /// Waits for entries without a silence timeout.
    pub persistent: bool,
}

/// What a search delivers besides its final result.
#[derive(Debug)]
pub enum SearchItem {
    /// An entry and the controls that came with it.
    Entry(RawEntry, Vec<RawControl>),
    /// An intermediate response: its name and value, when present.
    Intermediate { name: Option<String>, value: Option<Vec<u8>> },
}

/// IntermediateResponse ::= [APPLICATION 25] SEQUENCE { responseName [0] OPTIONAL,
/// responseValue [1] OPTIONAL } (RFC 4511 4.13); anything else reads as an empty one.
fn intermediate(tag: StructureTag) -> SearchItem {
    let (mut name, mut value) = (None, None);
    if let PL::C(parts) = tag.payload {
        for part in parts {
            match (part.class, part.id, part.payload) {
                (TagClass::Context, 0, PL::P(bytes)) => name = String::from_utf8(bytes).ok(),
                (TagClass::Context, 1, PL::P(bytes)) => value = Some(bytes),
                _ => {}
            }
        }
    }
    SearchItem::Intermediate { name, value }
}

/// An open, bound LDAP session.
pub struct LdapSession {
    pub(crate) ldap: Ldap,
    server: String,
    /// The name GSSAPI asks a ticket for (`ldap/<host>`).
    #[cfg_attr(not(feature = "kerberos"), allow(dead_code))]
    service_host: String,
    pub(crate) operation_timeout: Duration,
    tls: bool,
}

impl LdapSession {
    /// Connects and binds: the usual way to get a session. Kerberos on plain LDAP gets the
    /// confidentiality layer (see `sealed`); everything else binds over ldap3's connection.
    pub async fn open(
        endpoint: &ServerEndpoint,
        transport: &TransportSettings,
        credentials: &BindCredentials,
    ) -> Result<Self, DirectoryError> {
        #[cfg(feature = "kerberos")]
        if let BindCredentials::Kerberos(cred) = credentials {
            // An AD DC is a KDC of its domain too: ask the one this session talks to.
            super::kerberos::prefer_kdc(cred.principal(), &SocketAddr::new(endpoint.addr.ip(), 88).to_string());
            if transport.mode == TlsMode::None {
                return Self::open_sealed(endpoint, transport, cred).await;
            }
        }
        let mut session = Self::connect(endpoint, transport).await?;
        session.bind(credentials).await?;
        Ok(session)
    }

    #[cfg(feature = "kerberos")]
    async fn open_sealed(
        endpoint: &ServerEndpoint,
        transport: &TransportSettings,
        cred: &Arc<super::kerberos::KerberosCredential>,
    ) -> Result<Self, DirectoryError> {
        use super::sealed::{SealedBindError, bind_sealed};
        let server = endpoint.to_string();
        let service_host = transport.server_name.clone().unwrap_or_else(|| endpoint.host.clone());
        let tcp = tcp_connect(endpoint, transport.connect_timeout).await?;
        let bind = bind_sealed(tcp, cred.bind_credential().await?, &service_host);
        let plain = match tokio::time::timeout(transport.operation_timeout, bind).await {
            Err(_) => {
                return Err(DirectoryError::OperationTimeout {
                    server,
                    operation: "bind",
                    after: transport.operation_timeout,
                });
            }
            Ok(Err(SealedBindError::Refused { code, message })) => {
                let detail = result_text(code, &message);
                return Err(DirectoryError::BindLdap { server, identity: cred.principal().to_owned(), code, detail });
            }
            Ok(Err(SealedBindError::Io(source))) => return Err(DirectoryError::ConnectLdap { server, source }),
            Ok(Err(e)) => return Err(DirectoryError::KerberosBind { server, detail: e.to_string() }),
            Ok(Ok(plain)) => plain,
        };
        let settings = LdapConnSettings::new().set_std_stream(ldap3::StdStream::Unix(plain));
        let (conn, ldap) = LdapConnAsync::with_settings(settings, "ldapi:///").await.map_err(|e| {
            DirectoryError::Operation { server: server.clone(), operation: "bind", detail: e.to_string() }
        })?;
        spawn_driver(conn);
        Ok(Self { ldap, server, service_host, operation_timeout: transport.operation_timeout, tls: false })
    }

    /// Opens TCP to `endpoint`, then TLS as `transport` says. Does not bind.
    pub async fn connect(endpoint: &ServerEndpoint, transport: &TransportSettings) -> Result<Self, DirectoryError> {
        let server = endpoint.to_string();
        let service_host = transport.server_name.clone().unwrap_or_else(|| endpoint.host.clone());
        let tcp = tcp_connect(endpoint, transport.connect_timeout).await?;
        let std_stream =
            tcp.into_std().map_err(|source| DirectoryError::ConnectLdap { server: server.clone(), source })?;
        let mut settings = LdapConnSettings::new().set_std_stream(ldap3::StdStream::Tcp(std_stream));
        // The URL carries the name TLS verifies; the socket is already connected to the address.
        let host_in_url = if service_host.contains(':') { format!("[{service_host}]") } else { service_host.clone() };
        let url = match transport.mode {
            TlsMode::Ldaps => format!("ldaps://{host_in_url}:{}", endpoint.addr.port()),
            TlsMode::StartTls | TlsMode::None => {
                format!("ldap://{host_in_url}:{}", endpoint.addr.port())
            }
        };
        let tls = transport.mode != TlsMode::None;
        if tls {
            let config = transport.tls.clone().ok_or_else(|| DirectoryError::TlsHandshake {
                server: server.clone(),
                detail: "no TLS configuration was built".into(),
            })?;
            settings = settings.set_config(config).set_starttls(transport.mode == TlsMode::StartTls);
        }
        let handshake = LdapConnAsync::with_settings(settings, &url);
        let (conn, ldap) = match tokio::time::timeout(transport.connect_timeout, handshake).await {
            Err(_) => {
                return Err(DirectoryError::ConnectTimeout { server, after: transport.connect_timeout });
            }
            Ok(Err(e)) => {
                return Err(DirectoryError::TlsHandshake { server, detail: describe_tls_error(&e) });
            }
            Ok(Ok(pair)) => pair,
        };
        spawn_driver(conn);
        Ok(Self { ldap, server, service_host, operation_timeout: transport.operation_timeout, tls })
    }

    /// `host:port (ip)` of the server, for status and messages.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Whether the session is protected by TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Binds with `credentials`. A Kerberos bind on a plain connection installs the SASL
    /// confidentiality layer; over TLS it sends tls-server-end-point channel binding.
    pub async fn bind(&mut self, credentials: &BindCredentials) -> Result<(), DirectoryError> {
        let identity = credentials.identity().to_owned();
        let timeout = self.operation_timeout;
        let result = match credentials {
            BindCredentials::Simple { bind_dn, password } => {
                let password = password.expose_str().ok_or_else(|| DirectoryError::BindLdap {
                    server: self.server.clone(),
                    identity: identity.clone(),
                    code: 49,
                    detail: "the password is not valid UTF-8".into(),
                })?;
                if password.is_empty() {
                    // An empty password would be an anonymous bind (RFC 4513 5.1.2): refuse it.
                    return Err(DirectoryError::BindLdap {
                        server: self.server.clone(),
                        identity,
                        code: 49,
                        detail: "the password is empty".into(),
                    });
                }
                tokio::time::timeout(timeout, self.ldap.simple_bind(bind_dn, password)).await
            }
            #[cfg(feature = "kerberos")]
            BindCredentials::Kerberos(_) if !self.tls => {
                // ldap3's own SASL layer loses data on large answers; `open` seals correctly.
                return Err(DirectoryError::KerberosBind {
                    server: self.server.clone(),
                    detail: "Kerberos on plain LDAP needs the sealed session of LdapSession::open".into(),
                });
            }
            #[cfg(feature = "kerberos")]
            BindCredentials::Kerberos(cred) => {
                let host = self.service_host.clone();
                let cred = cred.bind_credential().await?;
                tokio::time::timeout(timeout, self.ldap.sasl_gssapi_cred_bind(cred, &host)).await
            }
        };
        match result {
            Err(_) => {
                Err(DirectoryError::OperationTimeout { server: self.server.clone(), operation: "bind", after: timeout })
            }
            Ok(Ok(res)) if res.rc == 0 => Ok(()),
            Ok(Ok(res)) => Err(DirectoryError::BindLdap {
                server: self.server.clone(),
                identity,
                code: res.rc,
                detail: result_text(res.rc, &res.text),
            }),
            #[cfg(feature = "kerberos")]
            Ok(Err(LdapError::GssapiOperationError(detail))) => {
                Err(DirectoryError::KerberosBind { server: self.server.clone(), detail })
            }
            Ok(Err(LdapError::LdapResult { result })) => Err(DirectoryError::BindLdap {
                server: self.server.clone(),
                identity,
                code: result.rc,
                detail: result_text(result.rc, &result.text),
            }),
            Ok(Err(e)) => Err(self.operation_error("bind", e)),
        }
    }

    /// Runs a paged subtree search and hands each entry to `on_entry` as it arrives, so memory holds
    /// one page at most. Continuation references are skipped. Returns the number of entries.
    ///
    /// Pages are requested here rather than through ldap3's adapters, which cost two boxed futures
    /// and two async mutex locks per entry.
    pub async fn search_paged(
        &mut self,
        base: &str,
        filter: &str,
        attrs: &[&str],
        page_size: u32,
        on_entry: impl FnMut(RawEntry),
    ) -> Result<u64, DirectoryError> {
        self.search_paged_with(base, filter, attrs, page_size, Vec::new(), on_entry).await
    }

    /// [`Self::search_paged`] with more request controls on every page.
    pub async fn search_paged_with(
        &mut self,
        base: &str,
        filter: &str,
        attrs: &[&str],
        page_size: u32,
        extra: Vec<RawControl>,
        mut on_entry: impl FnMut(RawEntry),
    ) -> Result<u64, DirectoryError> {
        let size = i32::try_from(page_size).unwrap_or(i32::MAX).max(1);
        let mut cookie = Vec::new();
        let mut count = 0u64;
        loop {
            let mut controls: Vec<RawControl> = vec![PagedResults { size, cookie: std::mem::take(&mut cookie) }.into()];
            controls.extend(extra.iter().cloned());
            let request = SearchRequest { base, scope: Scope::Subtree, filter, attrs, controls, persistent: false };
            let done = self
                .search(request, |item| {
                    if let SearchItem::Entry(entry, _) = item {
                        count += 1;
                        on_entry(entry);
                    }
                })
                .await?;
            if done.rc != 0 {
                return Err(self.search_error(base, LdapError::LdapResult { result: done }));
            }
            cookie = self.next_page(&done)?;
            if cookie.is_empty() {
                return Ok(count);
            }
        }
    }

    /// One search with request controls: entries (with their controls) and intermediate
    /// responses go to `on_item` as they arrive; returns the final result, whatever its code.
    /// A search that is not `persistent` fails after the operation timeout of silence; a
    /// persistent one (change notification, refreshAndPersist) waits as long as the server
    /// keeps the connection.
    pub async fn search(
        &mut self,
        request: SearchRequest<'_>,
        mut on_item: impl FnMut(SearchItem),
    ) -> Result<ldap3::LdapResult, DirectoryError> {
        let timeout = self.operation_timeout;
        let SearchRequest { base, scope, filter, attrs, controls, persistent } = request;
        let start = self.ldap.with_controls(controls).streaming_search(base, scope, filter, attrs.to_vec());
        let mut stream = match tokio::time::timeout(timeout, start).await {
            Err(_) => return Err(self.timed_out("search")),
            Ok(Err(e)) => return Err(self.search_error(base, e)),
            Ok(Ok(stream)) => stream,
        };
        // A silent server is caught by a ticker rather than a timeout around every entry (a
        // clock read and a timer registration per entry): three ticks of half the timeout
        // without an entry mean between 1 and 1.5 timeouts of silence.
        // (`interval` panics on a zero period; a timeout of a nanosecond must not reach it.)
        let half = (timeout / 2).max(Duration::from_millis(1));
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + half, half);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut quiet_ticks = 0u8;
        loop {
            // The same `next` is polled again after a tick: it is never dropped half-way.
            let item = {
                let next = stream.next();
                tokio::pin!(next);
                loop {
                    tokio::select! {
                        biased;
                        item = &mut next => break Some(item),
                        _ = ticker.tick() => {
                            quiet_ticks = quiet_ticks.saturating_add(1);
                            if quiet_ticks >= 3 && !persistent {
                                break None;
                            }
                        }
                    }
                }
            };
            match item {
                None => {
                    let handle = stream.ldap_handle();
                    let id = handle.last_id();
                    let _ = handle.abandon(id).await;
                    return Err(self.timed_out("search"));
                }
                Some(Err(e)) => return Err(self.search_error(base, e)),
                Some(Ok(None)) => break,
                Some(Ok(Some(entry))) => {
                    quiet_ticks = 0;
                    if entry.is_ref() {
                        continue;
                    }
                    if entry.is_intermediate() {
                        on_item(intermediate(entry.0));
                        continue;
                    }
                    let (tag, controls) = (entry.0, entry.1);
                    let controls = controls.into_iter().map(|Control(_, raw)| raw).collect();
                    let entry = decode_entry(tag).ok_or_else(|| self.malformed_entry())?;
                    on_item(SearchItem::Entry(entry, controls));
                }
            }
        }
        Ok(stream.finish().await)
    }

    /// The cookie of the next page; empty when this was the last. No paged-results control in the
    /// answer (a server that does not page) ends the search too.
    fn next_page(&self, done: &ldap3::LdapResult) -> Result<Vec<u8>, DirectoryError> {
        let control = done.ctrls.iter().find_map(|c| match c {
            Control(Some(ControlType::PagedResults), raw) => Some(raw),
            _ => None,
        });
        match control {
            None => Ok(Vec::new()),
            Some(raw) => paged_cookie(raw.val.as_deref()).ok_or_else(|| DirectoryError::MalformedResponse {
                server: self.server.clone(),
                detail: "a paged-results control that is not a size and a cookie".into(),
            }),
        }
    }

    /// Reads one entry (base scope), or `None` when it does not exist.
    pub async fn read_entry(&mut self, dn: &str, attrs: &[&str]) -> Result<Option<RawEntry>, DirectoryError> {
        let timeout = self.operation_timeout;
        let search = self.ldap.search(dn, Scope::Base, "(objectClass=*)", attrs.to_vec());
        let result = match tokio::time::timeout(timeout, search).await {
            Err(_) => return Err(self.timed_out("read")),
            Ok(Err(e)) => return Err(self.search_error(dn, e)),
            Ok(Ok(result)) => result,
        };
        match result.success() {
            Ok((mut entries, _)) => entries.pop().map(|e| self.raw_entry(e)).transpose(),
            Err(LdapError::LdapResult { result }) if result.rc == 32 => Ok(None),
            Err(e) => Err(self.search_error(dn, e)),
        }
    }

    /// The server's RootDSE (naming contexts, supported controls and mechanisms, host name).
    pub async fn root_dse(&mut self) -> Result<RawEntry, DirectoryError> {
        let attrs = [
            "defaultNamingContext",
            "namingContexts",
            "supportedControl",
            "supportedSASLMechanisms",
            "supportedLDAPVersion",
            "dnsHostName",
            "vendorName",
            "vendorVersion",
        ];
        self.read_entry("", &attrs).await?.ok_or_else(|| DirectoryError::Operation {
            server: self.server.clone(),
            operation: "read RootDSE",
            detail: "the server returned no RootDSE".into(),
        })
    }

    /// Takes a SearchResultEntry apart, moving each value out of ldap3's tag tree rather than
    /// copying it (ldap3's `SearchEntry::construct` copies every value and panics on a malformed
    /// entry; a server's bytes must never panic the agent).
    fn raw_entry(&self, entry: ResultEntry) -> Result<RawEntry, DirectoryError> {
        decode_entry(entry.0).ok_or_else(|| self.malformed_entry())
    }

    fn malformed_entry(&self) -> DirectoryError {
        DirectoryError::MalformedResponse {
            server: self.server.clone(),
            detail: "a search result entry that is not a DN and a list of attributes".into(),
        }
    }

    fn timed_out(&self, operation: &'static str) -> DirectoryError {
        DirectoryError::OperationTimeout { server: self.server.clone(), operation, after: self.operation_timeout }
    }

    fn search_error(&self, base: &str, e: LdapError) -> DirectoryError {
        match e {
            LdapError::LdapResult { result } => DirectoryError::Search {
                server: self.server.clone(),
                base: base.to_owned(),
                code: result.rc,
                detail: result_text(result.rc, &result.text),
            },
            LdapError::FilterParsing => DirectoryError::InvalidFilter { detail: "the filter does not parse".into() },
            other => self.operation_error("search", other),
        }
    }

    /// ldap3 reports a connection that ended under a running operation as a closed channel, an
    /// I/O error or an early end of the result stream; these read as a lost connection.
    fn operation_error(&self, operation: &'static str, e: LdapError) -> DirectoryError {
        let server = self.server.clone();
        match e {
            LdapError::Io { .. }
            | LdapError::OpSend { .. }
            | LdapError::ResultRecv { .. }
            | LdapError::IdScrubSend { .. }
            | LdapError::EndOfStream => DirectoryError::ConnectionLost { server, operation, detail: e.to_string() },
            other => DirectoryError::Operation { server, operation, detail: other.to_string() },
        }
    }

    /// Politely ends the session.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.ldap.unbind()).await;
    }
}

/// Our decoders of directory bytes, on their own: what the fuzz targets feed arbitrary BER.
pub mod wire {
    use super::{RawEntry, StructureTag, decode_entry, paged_cookie, parse_tag};

    /// A BER-encoded SearchResultEntry, decoded as a search decodes it; `None` when malformed.
    pub fn decode_search_entry(bytes: &[u8]) -> Option<RawEntry> {
        let (_, tag) = parse_tag(bytes).ok()?;
        decode_entry(tag)
    }

    /// The SearchResultEntry of a BER-encoded LDAPMessage (as a CLDAP datagram starts with one);
    /// `None` when malformed or another operation.
    pub fn decode_message_entry(bytes: &[u8]) -> Option<RawEntry> {
        let (_, message) = parse_tag(bytes).ok()?;
        let StructureTag { class: super::TagClass::Universal, id: 16, payload: super::PL::C(parts) } = message else {
            return None;
        };
        decode_entry(parts.into_iter().nth(1)?)
    }

    /// The cookie of a BER-encoded paged-results control value; `None` when malformed.
    pub fn decode_paged_cookie(bytes: &[u8]) -> Option<Vec<u8>> {
        paged_cookie(Some(bytes))
    }
}

/// SearchResultEntry ::= [APPLICATION 4] SEQUENCE { objectName, attributes SEQUENCE OF
/// PartialAttribute { type, vals SET OF value } } (RFC 4511 4.5.2).
fn decode_entry(tag: StructureTag) -> Option<RawEntry> {
    let StructureTag { class: TagClass::Application, id: 4, payload: PL::C(parts) } = tag else {
        return None;
    };
    let mut parts = parts.into_iter();
    let dn = String::from_utf8(primitive(parts.next()?)?).ok()?;
    let list = constructed(parts.next()?)?;
    let mut attributes = Vec::with_capacity(list.len());
    for attribute in list {
        let mut pair = constructed(attribute)?.into_iter();
        let name = String::from_utf8(primitive(pair.next()?)?).ok()?;
        let values = constructed(pair.next()?)?;
        let mut text = Vec::with_capacity(values.len());
        let mut binary = Vec::new();
        for value in values {
            match String::from_utf8(primitive(value)?) {
                Ok(value) if binary.is_empty() => text.push(value),
                Ok(value) => binary.push(value.into_bytes()),
                Err(e) => {
                    binary.extend(text.drain(..).map(String::into_bytes));
                    binary.push(e.into_bytes());
                }
            }
        }
        attributes.push(RawAttribute { name, values: text, binary });
    }
    Some(RawEntry { dn, attributes })
}

/// The cookie of a paged-results response control, `SEQUENCE { size INTEGER, cookie OCTET
/// STRING }` (RFC 2696), read without ldap3's parser, which panics on a malformed value.
fn paged_cookie(value: Option<&[u8]>) -> Option<Vec<u8>> {
    let (_, tag) = parse_tag(value?).ok()?;
    let mut parts = constructed(tag)?.into_iter();
    let size = parts.next()?;
    if !matches!(size, StructureTag { class: TagClass::Universal, id: 2, payload: PL::P(_) }) {
        return None;
    }
    primitive(parts.next()?)
}

fn primitive(tag: StructureTag) -> Option<Vec<u8>> {
    match tag.payload {
        PL::P(bytes) => Some(bytes),
        PL::C(_) => None,
    }
}

fn constructed(tag: StructureTag) -> Option<Vec<StructureTag>> {
    match tag.payload {
        PL::C(tags) => Some(tags),
        PL::P(_) => None,
    }
}

async fn tcp_connect(endpoint: &ServerEndpoint, timeout: Duration) -> Result<TcpStream, DirectoryError> {
    let server = endpoint.to_string();
    match tokio::time::timeout(timeout, TcpStream::connect(endpoint.addr)).await {
        Err(_) => Err(DirectoryError::ConnectTimeout { server, after: timeout }),
        Ok(Err(source)) => Err(DirectoryError::ConnectLdap { server, source }),
        Ok(Ok(tcp)) => {
            let _ = tcp.set_nodelay(true);
            Ok(tcp)
        }
    }
}

fn spawn_driver(conn: LdapConnAsync) {
    tokio::spawn(async move {
        if let Err(e) = conn.drive().await {
            tracing::debug!(error = %e, "LDAP connection closed");
        }
    });
}

fn result_text(code: u32, text: &str) -> String {
    let name = match code {
        3 => "timeLimitExceeded",
        4 => "sizeLimitExceeded",
        8 => "strongerAuthRequired",
        13 => "confidentialityRequired",
        32 => "noSuchObject",
        48 => "inappropriateAuthentication",
        49 => "invalidCredentials",
        50 => "insufficientAccessRights",
        51 => "busy",
        52 => "unavailable",
        53 => "unwillingToPerform",
        _ => "",
    };
    match (name.is_empty(), text.trim().is_empty()) {
        (false, false) => format!("{name}: {}", text.trim()),
        (false, true) => name.to_owned(),
        (true, false) => text.trim().to_owned(),
        (true, true) => format!("result code {code}"),
    }
}

/// Finds the rustls error inside ldap3's error chain, so "unknown issuer" reads as such.
fn describe_tls_error(e: &LdapError) -> String {
    match e {
        LdapError::Io { source } => match source.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            Some(tls) => format!("certificate or handshake error: {tls}"),
            None => format!("{source}"),
        },
        LdapError::LdapResult { result } => {
            format!("StartTLS refused: {}", result_text(result.rc, &result.text))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests;
