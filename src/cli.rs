//! The cluster-less commands: `check` (a connection test) and `sync` (one sync into a local store).
//! A manifest is an `LdapConnection` YAML; the Secrets and ConfigMaps it references are read from
//! `--secrets-dir DIR` laid out as `DIR/<name>/<key>`, like a mounted Secret volume.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::api::{LdapConnection, LdapConnectionSpec, SecretKeyRef};
use crate::directory::dns::DnsResolver;
use crate::directory::sync::{ConnectionSecrets, PreparedConnection, SyncError};
use crate::domain::codec;
use crate::domain::deletion::{DeletionLimits, ObjectIds, check_deletions};
use crate::domain::duplicates::find_duplicates;
use crate::domain::snapshot::ConnectionRef;
use crate::secret::Secret;
use crate::store::local::{LocalStore, StoreError};

/// A failed CLI command, with a stable reason.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot read {path}: {source}")]
    ReadManifest { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a valid LdapConnection: {detail}")]
    ParseManifest { path: PathBuf, detail: String },
    #[error("{field}: {path} cannot be read ({source}); put the value of {what} there")]
    SecretNotFound { field: &'static str, what: String, path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Held(String),
    #[error("cannot encode the snapshot: {0}")]
    Encode(#[from] codec::CodecError),
}

impl CliError {
    pub fn reason(&self) -> &'static str {
        match self {
            Self::ReadManifest { .. } | Self::ParseManifest { .. } => "InvalidSpec",
            Self::SecretNotFound { .. } => "SecretNotFound",
            Self::Sync(e) => e.reason(),
            Self::Store(_) => "StoreFailed",
            Self::Held(_) => "DeletionThresholdExceeded",
            Self::Encode(_) => "StoreFailed",
        }
    }
}

/// Reads an LdapConnection manifest.
pub fn load_manifest(path: &Path) -> Result<(ConnectionRef, LdapConnectionSpec), CliError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| CliError::ReadManifest { path: path.to_owned(), source })?;
    let conn: LdapConnection = serde_yaml::from_str(&text)
        .map_err(|e| CliError::ParseManifest { path: path.to_owned(), detail: e.to_string() })?;
    let namespace = conn.metadata.namespace.clone().unwrap_or_else(|| "default".to_owned());
    let name = conn
        .metadata
        .name
        .clone()
        .ok_or_else(|| CliError::ParseManifest { path: path.to_owned(), detail: "metadata.name is missing".into() })?;
    let uid = conn.metadata.uid.clone().unwrap_or_else(|| format!("local-{namespace}-{name}"));
    Ok((ConnectionRef { namespace, name, uid }, conn.spec))
}

/// Reads the secrets `spec` references from `dir/<name>/<key>`.
pub fn load_secrets(spec: &LdapConnectionSpec, dir: Option<&Path>) -> Result<ConnectionSecrets, CliError> {
    let read = |field: &'static str, r: &SecretKeyRef, default_key: &str| -> Result<Vec<u8>, CliError> {
        let key = r.key.as_deref().unwrap_or(default_key);
        let base = dir.unwrap_or(Path::new("."));
        let path = base.join(&r.name).join(key);
        std::fs::read(&path).map_err(|source| CliError::SecretNotFound {
            field,
            what: format!("{}/{key}", r.name),
            path,
            source,
        })
    };
    let mut secrets = ConnectionSecrets::default();
    if let Some(simple) = &spec.auth.simple {
        let mut pw = read("spec.auth.simple.passwordSecretRef", &simple.password_secret_ref, "password")?;
        // Files written by `echo` end with a newline that is not part of the password.
        while pw.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            pw.pop();
        }
        secrets.password = Some(Secret::new(pw));
    }
    if let Some(kerberos) = &spec.auth.kerberos {
        secrets.keytab =
            Some(Secret::new(read("spec.auth.kerberos.keytabSecretRef", &kerberos.keytab_secret_ref, "keytab")?));
    }
    if let Some(ca) = &spec.tls.ca {
        if let Some(r) = &ca.secret_ref {
            secrets.ca_pem = Some(read("spec.tls.ca.secretRef", r, "ca.crt")?);
        } else if let Some(r) = &ca.config_map_ref {
            secrets.ca_pem = Some(read("spec.tls.ca.configMapRef", r, "ca.crt")?);
        }
    }
    Ok(secrets)
}

/// What `check` found.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckReport {
    pub servers: Vec<String>,
    pub server: String,
    pub tls: bool,
    pub identity: String,
    pub root_dse: std::collections::BTreeMap<String, Vec<String>>,
    pub paged_results: bool,
    pub dirsync: bool,
    pub syncrepl: bool,
    pub counts: std::collections::BTreeMap<String, u64>,
}

const PAGED_RESULTS_OID: &str = "1.2.840.113556.1.4.319";
const DIRSYNC_OID: &str = "1.2.840.113556.1.4.841";
const SYNCREPL_OID: &str = "1.3.6.1.4.1.4203.1.9.1.1";

/// Resolves the servers, connects and binds to the first that answers, reads the RootDSE and
/// counts the objects each query would sync (reading no attributes).
pub async fn check(
    manifest: &Path,
    secrets_dir: Option<&Path>,
    dns_server: Option<&str>,
) -> Result<CheckReport, CliError> {
    let (connection, spec) = load_manifest(manifest)?;
    let secrets = load_secrets(&spec, secrets_dir)?;
    let prepared = PreparedConnection::prepare(connection, spec, secrets).await?;
    let dns = resolver(dns_server, &prepared)?;
    let servers = prepared.servers(&dns, random_pick).await?;
    let (mut session, _) = prepared.open_session(&dns, &servers).await?;
    let root = session.root_dse().await.map_err(SyncError::from)?;
    let controls = root.values("supportedControl").to_vec();
    let mut counts = std::collections::BTreeMap::new();
    for query in &prepared.plan.queries {
        let n = session
            .search_paged(&prepared.spec.search_base, &query.filter, &["1.1"], prepared.spec.page_size, |_| {})
            .await
            .map_err(SyncError::from)?;
        counts.insert(format!("{}s", query.kind.as_str()), n);
    }
    let report = CheckReport {
        servers: servers.iter().map(|(h, p)| format!("{h}:{p}")).collect(),
        server: session.server().to_owned(),
        tls: session.is_tls(),
        identity: prepared.credentials.identity().to_owned(),
        paged_results: controls.iter().any(|c| c == PAGED_RESULTS_OID),
        dirsync: controls.iter().any(|c| c == DIRSYNC_OID),
        syncrepl: controls.iter().any(|c| c == SYNCREPL_OID),
        root_dse: root
            .attributes
            .into_iter()
            .filter(|a| !a.name.eq_ignore_ascii_case("supportedControl"))
            .map(|a| (a.name, a.values))
            .collect(),
        counts,
    };
    session.close().await;
    Ok(report)
}

/// What `sync` did.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncReport {
    pub connection: String,
    pub server: String,
    pub users: u64,
    pub contacts: u64,
    pub groups: u64,
    pub addresses: u64,
    pub unresolved_members: u64,
    pub deleted: u64,
    pub duplicate_user_names: u64,
    pub duplicate_addresses: u64,
    pub duplicate_examples: Vec<String>,
    pub snapshot_hash: String,
    /// Hash of the content only (what `--approve-deletions` names).
    pub content_hash: String,
    pub snapshot_size: u64,
    pub path: PathBuf,
}

/// One standalone sync into `store_dir`. The previous snapshot stays when anything fails, and when
/// the deletion-safety guard holds the new one (unless `approve` is its content hash).
pub async fn sync(
    manifest: &Path,
    secrets_dir: Option<&Path>,
    store_dir: &Path,
    dns_server: Option<&str>,
    approve: Option<&str>,
) -> Result<SyncReport, CliError> {
    let (connection, spec) = load_manifest(manifest)?;
    let secrets = load_secrets(&spec, secrets_dir)?;
    let store = LocalStore::open(store_dir)?;
    let key = connection.uid.clone();
    // Only the previous snapshot's ids are kept while the new one is read.
    let previous = match store.load(&key) {
        Ok(p) => p.map(|stored| ObjectIds::of(&stored.snapshot)),
        Err(e @ StoreError::CorruptSnapshot { .. }) => {
            let aside = store.set_aside(&key)?;
            tracing::warn!(error = %e, moved_to = %aside.display(), "previous snapshot is corrupt; set aside, doing a full sync");
            None
        }
        Err(e) => return Err(e.into()),
    };
    let limits = DeletionLimits {
        max_objects: u64::from(spec.deletion_safety.max_deleted_objects),
        max_percent: u64::from(spec.deletion_safety.max_deleted_percent),
    };
    let prepared = PreparedConnection::prepare(connection.clone(), spec, secrets).await?;
    let dns = resolver(dns_server, &prepared)?;
    let snapshot = prepared.read_snapshot(&dns, random_pick, unix_now).await?;
    // The duplicate check beside encoding and hashing: the server is done, only wall time counts.
    let (coded, duplicates) = std::thread::scope(|scope| {
        let duplicates = scope.spawn(|| find_duplicates([&snapshot]));
        let coded = codec::encode_and_hash(&snapshot);
        (coded, duplicates.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
    });
    let (encoded, content) = coded?;
    let deleted = check_deletions(previous.as_ref(), &snapshot, &content, limits, approve)
        .map_err(|held| CliError::Held(held.to_string()))?;
    let path = store.write(&key, &encoded)?;
    let counts = snapshot.counts();
    Ok(SyncReport {
        connection: format!("{}/{}", connection.namespace, connection.name),
        server: snapshot.server.clone(),
        users: counts.users,
        contacts: counts.contacts,
        groups: counts.groups,
        addresses: counts.addresses,
        unresolved_members: snapshot.unresolved_members,
        deleted,
        duplicate_user_names: duplicates.user_names,
        duplicate_addresses: duplicates.addresses,
        duplicate_examples: duplicates.examples,
        snapshot_hash: encoded.hash,
        content_hash: content,
        snapshot_size: encoded.bytes.len() as u64,
        path,
    })
}

/// Loads every valid snapshot of an existing store folder (damaged ones are set aside).
pub fn load_store(store_dir: &Path) -> Result<Vec<std::sync::Arc<crate::domain::snapshot::Snapshot>>, CliError> {
    if !store_dir.is_dir() {
        let source = std::io::Error::new(std::io::ErrorKind::NotFound, "no such store folder");
        return Err(StoreError::ReadSnapshot { path: store_dir.to_owned(), source }.into());
    }
    let stored = LocalStore::open(store_dir)?.load_all()?;
    Ok(stored.into_iter().map(|s| std::sync::Arc::new(s.snapshot)).collect())
}

/// Answers an address lookup from a local store, as the agent's lookup API would.
pub fn lookup(address: &str, store_dir: &Path) -> Result<Option<serde_json::Value>, CliError> {
    let index = crate::domain::index::Index::build(load_store(store_dir)?);
    Ok(index.lookup_address(address).and_then(|answer| serde_json::to_value(answer).ok()))
}

fn resolver(dns_server: Option<&str>, prepared: &PreparedConnection) -> Result<DnsResolver, CliError> {
    DnsResolver::new(dns_server, prepared.transport.operation_timeout)
        .map_err(|e| CliError::Sync(SyncError::Discover(e)))
}

/// Uniform in `0..=total` from the OS's randomness (weights of SRV records).
pub fn random_pick(total: u64) -> u64 {
    let mut bytes = [0u8; 8];
    if getrandom_fill(&mut bytes).is_err() {
        return 0;
    }
    u64::from_le_bytes(bytes) % (total + 1)
}

fn getrandom_fill(buf: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")?.read_exact(buf)
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}
