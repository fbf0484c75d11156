//! The cluster-less commands: `check` (a connection test) and `sync` (one sync into a local store).
//! A manifest is an `LdapConnection` YAML; the Secrets and ConfigMaps it references are read from
//! `--secrets-dir DIR` laid out as `DIR/<name>/<key>`, like a mounted Secret volume.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::api::{LdapConnection, LdapConnectionSpec};
use crate::directory::sync::SyncError;
use crate::domain::codec::content_hash;
use crate::domain::duplicates::find_duplicates;
use crate::domain::incremental::{DeletionSource, FullReason};
use crate::domain::lazy::{Lazy, LoadFailed};
use crate::domain::reason::Reason;
use crate::domain::snapshot::{ConnectionRef, Snapshot};
use crate::store::local::{LocalStore, SnapshotSummary, StoreError};
use crate::sync::secrets::FileSource;
use crate::sync::{PipelineError, Served, SyncOutcome, SyncRequest, Synced};
pub use crate::system::unix_now;

/// A failed CLI command, with a stable reason.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot read {path}: {source}")]
    ReadManifest { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a valid LdapConnection: {detail}")]
    ParseManifest { path: PathBuf, detail: String },
    #[error(transparent)]
    Sync(#[from] PipelineError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Held(String),
    #[error("cannot write the answer as JSON: {0}")]
    Output(#[from] serde_json::Error),
    #[error("cannot read the LdapConnection: {0}")]
    Api(#[from] kube::Error),
}

impl CliError {
    pub fn reason(&self) -> Reason {
        match self {
            Self::ReadManifest { .. } | Self::ParseManifest { .. } => Reason::InvalidSpec,
            Self::Sync(e) => e.reason(),
            Self::Store(_) => Reason::StoreFailed,
            Self::Held(_) => Reason::DeletionThresholdExceeded,
            Self::Output(_) => Reason::OutputFailed,
            Self::Api(_) => Reason::KubernetesApiUnavailable,
        }
    }
}

impl From<SyncError> for CliError {
    fn from(e: SyncError) -> Self {
        Self::Sync(e.into())
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

/// What `check` found.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckReport {
    pub servers: Vec<String>,
    /// The AD site whose DCs come first (`servers.srv.site`, or the one the DCs place us in).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
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
    let prepared = crate::sync::prepare(connection, &spec, &FileSource::new(secrets_dir)).await?;
    check_prepared(prepared, dns_server).await
}

/// `check` of a connection in the cluster, with its own Secrets read through the API: what
/// `kubectl ldapsync check` runs inside a gateway pod's agent container, to test from where the
/// pods connect.
pub async fn check_in_cluster(
    client: kube::Client,
    namespace: &str,
    name: &str,
    dns_server: Option<&str>,
) -> Result<CheckReport, CliError> {
    let api: kube::Api<LdapConnection> = kube::Api::namespaced(client.clone(), namespace);
    let conn = api.get_opt(name).await?.ok_or_else(|| CliError::ParseManifest {
        path: PathBuf::from(format!("{namespace}/{name}")),
        detail: "no such LdapConnection".into(),
    })?;
    let connection = ConnectionRef {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        uid: conn.metadata.uid.clone().unwrap_or_default(),
    };
    let source = crate::sync::secrets::KubeSource::new(client, namespace);
    let prepared = crate::sync::prepare(connection, &conn.spec, &source).await?;
    check_prepared(prepared, dns_server).await
}

async fn check_prepared(
    prepared: crate::directory::sync::PreparedConnection,
    dns_server: Option<&str>,
) -> Result<CheckReport, CliError> {
    let dns = crate::sync::resolver(&prepared, dns_server)?;
    let crate::directory::sync::DcList { servers, site } = prepared.servers(&dns, crate::system::random_pick).await?;
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
        site,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<String>,
    pub users: u64,
    pub contacts: u64,
    pub groups: u64,
    /// Objects of `spec.mailObjectClasses`.
    pub recipients: u64,
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
    /// `Full` or `Incremental`.
    pub mode: &'static str,
    /// Entries the server sent.
    pub entries_read: u64,
    /// Objects an incremental sync changed, added or removed.
    pub changes_applied: u64,
    /// Why the sync read everything, when it could have been incremental.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub full_reason: Option<&'static str>,
    /// How an incremental sync learnt of deletions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletions: Option<&'static str>,
}

/// One standalone sync into `store_dir`. The previous snapshot stays when anything fails, and when
/// the deletion-safety guard holds the new one (unless `approve` is its content hash). Duplicates
/// are counted across every snapshot of the store, as `ldapsync serve` would serve them.
pub async fn sync(
    manifest: &Path,
    secrets_dir: Option<&Path>,
    store_dir: &Path,
    dns_server: Option<&str>,
    approve: Option<&str>,
) -> Result<SyncReport, CliError> {
    let (connection, spec) = load_manifest(manifest)?;
    let store = LocalStore::open(store_dir)?;
    let key = connection.uid.clone();
    let sibling_keys: Vec<String> = store.keys()?.into_iter().filter(|k| *k != key).collect();
    let sibling_ids = store.identities(sibling_keys.iter().map(String::as_str));
    let Kept { served, summary, size, hash } = kept_snapshot(&store, &key)?;
    let siblings = {
        let store = store.clone();
        Lazy::later(move || {
            let loaded = store.load_keys(&sibling_keys).map_err(|e| load_failed(&e))?;
            Ok(loaded.into_iter().map(|s| Arc::new(s.snapshot)).collect())
        })
    };
    let request = SyncRequest {
        connection: connection.clone(),
        spec: &spec,
        dns_server,
        approval: approve,
        siblings: &siblings,
        progress: Arc::default(),
        served: served.as_ref(),
    };
    let (summary, size, deleted, site, read) = match crate::sync::run(request, &FileSource::new(secrets_dir), &store)
        .await?
    {
        SyncOutcome::Synced(Synced {
            snapshot,
            snapshot_hash,
            content_hash,
            size,
            deleted,
            duplicates,
            site,
            read,
        }) => {
            let summary = SnapshotSummary::describe(&snapshot, snapshot_hash, content_hash, duplicates, sibling_ids);
            (summary, size, deleted, site, read)
        }
        SyncOutcome::Held { held, .. } => return Err(CliError::Held(held.to_string())),
        SyncOutcome::Unchanged { site, read } => {
            let served = served.as_ref().ok_or(PipelineError::from(SyncError::NoServedSnapshot))?;
            let mut summary = unchanged_summary(served, summary, hash, &siblings, sibling_ids)?;
            summary.state = read.state.clone().or(summary.state);
            (summary, size, 0, site, read)
        }
    };
    // Only a later sync is slower without it: a failure to keep it is not this sync's failure.
    if let Err(e) = store.write_summary(&key, &summary) {
        tracing::warn!(error = %e, "cannot keep the snapshot's summary; the next sync decodes the snapshot");
    }
    let counts = summary.counts;
    Ok(SyncReport {
        connection: format!("{}/{}", connection.namespace, connection.name),
        server: summary.server,
        site,
        users: counts.users,
        contacts: counts.contacts,
        groups: counts.groups,
        recipients: counts.recipients,
        addresses: counts.addresses,
        unresolved_members: summary.unresolved_members,
        deleted,
        duplicate_user_names: summary.duplicates.user_names,
        duplicate_addresses: summary.duplicates.addresses,
        duplicate_examples: summary.duplicates.examples,
        snapshot_hash: summary.snapshot_hash,
        content_hash: summary.content_hash,
        snapshot_size: size,
        path: store.path_of(&key)?,
        mode: read.mode.as_str(),
        entries_read: read.entries_read,
        changes_applied: read.changes,
        full_reason: read.full_reason.map(FullReason::as_str),
        deletions: read.deletions.map(DeletionSource::as_str),
    })
}

/// What a sync that changed nothing reports: the stored snapshot as it is. Its kept summary says
/// it all unless the other snapshots changed since (the duplicates are counted again) or there
/// is none (the snapshot is described anew).
fn unchanged_summary(
    served: &Served,
    kept: Option<SnapshotSummary>,
    file_hash: String,
    siblings: &Lazy<Vec<Arc<Snapshot>>>,
    sibling_ids: BTreeMap<String, String>,
) -> Result<SnapshotSummary, CliError> {
    if let Some(summary) = kept.as_ref().filter(|s| s.siblings == sibling_ids) {
        return Ok(summary.clone());
    }
    let snapshot = served.snapshot.get().map_err(PipelineError::from)?;
    let others = siblings.get().map_err(PipelineError::from)?;
    let content_hash = match kept {
        Some(summary) => summary.content_hash,
        None => content_hash(snapshot).map_err(PipelineError::from)?,
    };
    let duplicates = find_duplicates(others.iter().map(|s| s.as_ref()).chain([snapshot.as_ref()]));
    Ok(SnapshotSummary::describe(snapshot, file_hash, content_hash, duplicates, sibling_ids))
}

/// The stored snapshot of a connection, what a delta applies to.
struct Kept {
    served: Option<Served>,
    /// What the last sync reported of it, when kept and still true of the file.
    summary: Option<SnapshotSummary>,
    /// Bytes of the file, and their SHA-256.
    size: u64,
    hash: String,
}

impl Kept {
    fn none() -> Self {
        Self { served: None, summary: None, size: 0, hash: String::new() }
    }
}

/// With a summary, the snapshot is decoded only when a step needs its content; without one, now
/// (the state it holds decides the read). A damaged file is set aside and the sync starts from
/// scratch.
fn kept_snapshot(store: &LocalStore, key: &str) -> Result<Kept, CliError> {
    let Some(file) = store.read(key)? else { return Ok(Kept::none()) };
    let (size, hash) = (file.bytes.len() as u64, file.hash.clone());
    if let Some(summary) = store.summary(key, &file) {
        let (store, key) = (store.clone(), key.to_owned());
        let snapshot = Lazy::later(move || match store.decode(&key, file) {
            Ok(stored) => Ok(Arc::new(stored.snapshot)),
            Err(e) => {
                store.set_aside_damaged(&key, &e);
                Err(load_failed(&e))
            }
        });
        let served = Served { snapshot, state: summary.state.clone() };
        return Ok(Kept { served: Some(served), summary: Some(summary), size, hash });
    }
    match store.decode(key, file) {
        Ok(stored) => {
            let served = Served::loaded(Arc::new(stored.snapshot), None);
            Ok(Kept { served: Some(served), summary: None, size, hash })
        }
        Err(e @ StoreError::CorruptSnapshot { .. }) => {
            store.set_aside_damaged(key, &e);
            Ok(Kept::none())
        }
        Err(e) => Err(e.into()),
    }
}

fn load_failed(e: &StoreError) -> LoadFailed {
    let reason = match e {
        StoreError::CorruptSnapshot { source, .. } => source.reason(),
        _ => Reason::StoreFailed,
    };
    LoadFailed { reason, message: e.to_string() }
}

/// Loads every valid snapshot of an existing store folder (damaged ones are set aside).
pub fn load_store(store_dir: &Path) -> Result<Vec<Arc<Snapshot>>, CliError> {
    if !store_dir.is_dir() {
        let source = std::io::Error::new(std::io::ErrorKind::NotFound, "no such store folder");
        return Err(StoreError::ReadSnapshot { path: store_dir.to_owned(), source }.into());
    }
    let stored = LocalStore::open(store_dir)?.load_all()?;
    Ok(stored.into_iter().map(|s| Arc::new(s.snapshot)).collect())
}

/// Answers an address lookup from a local store, as the agent's lookup API would: the answer as
/// JSON text, `None` when the address is not in the store.
pub fn lookup(address: &str, store_dir: &Path) -> Result<Option<String>, CliError> {
    let index = crate::domain::index::Index::build(load_store(store_dir)?);
    index.lookup_address(address).map(|answer| to_json(&answer)).transpose()
}

/// A command's report as pretty JSON.
pub fn to_json(report: &impl Serialize) -> Result<String, CliError> {
    Ok(serde_json::to_string_pretty(report)?)
}
