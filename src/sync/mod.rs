//! The one sync pipeline, used by the agent and by `ldapsync sync`: secrets → connect → read →
//! snapshot → duplicate check → deletion safety → store. The caller swaps the index.
//!
//! Nothing is stored unless every step succeeded and the guard let the snapshot through, so a
//! failure or a hold leaves the previous cache as it was.

pub mod secrets;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use crate::api::IncrementalMode;
use crate::api::LdapConnectionSpec;
use crate::directory::dns::DnsResolver;
use crate::directory::sync::{ConnectionSecrets, PreparedConnection, Previous, SnapshotRead, SyncError};
use crate::domain::codec::{self, CodecError, Encoded};
use crate::domain::deletion::{DeletionHeld, DeletionLimits, check_deletions};
use crate::domain::duplicates::{DuplicateReport, find_duplicates};
use crate::domain::duration::parse_duration;
use crate::domain::incremental::{FullReason, ReadSummary, SyncMode, SyncState, plan_fingerprint, plan_next};
use crate::domain::lazy::{Lazy, LoadFailed};
use crate::domain::reason::Reason;
use crate::domain::snapshot::{ConnectionRef, Snapshot};
use crate::store::{CacheError, SnapshotStore};
use crate::system::{random_pick, unix_now};
use secrets::{ReferenceSource, SecretsError, read_secrets};

/// Which credentials a sync used: a hash salted per process, never logged or written, so that a
/// pod whose credentials were refused can tell whether its Secret now holds others.
#[derive(Clone, PartialEq, Eq)]
pub struct CredentialsFingerprint([u8; 32]);

impl CredentialsFingerprint {
    fn of(secrets: &ConnectionSecrets) -> Self {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        hash.update(crate::system::process_salt());
        for (tag, value) in [(b'p', &secrets.password), (b'k', &secrets.keytab)] {
            if let Some(value) = value {
                hash.update([tag]);
                hash.update((value.expose().len() as u64).to_le_bytes());
                hash.update(value.expose());
            }
        }
        Self(hash.finalize().into())
    }
}

impl std::fmt::Debug for CredentialsFingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CredentialsFingerprint(<redacted>)")
    }
}

/// Why a sync stored nothing, by step.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Secrets(#[from] SecretsError),
    #[error(transparent)]
    Directory(#[from] SyncError),
    /// The directory refused these credentials (wrong password, locked account, ...).
    #[error("{source}")]
    CredentialsRefused { credentials: CredentialsFingerprint, source: SyncError },
    #[error("cannot encode the snapshot: {0}")]
    Encode(#[from] CodecError),
    #[error("the encoding task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error(transparent)]
    Store(#[from] CacheError),
}

/// A snapshot handed to the sync that could not be loaded when a step needed it.
impl From<LoadFailed> for PipelineError {
    fn from(e: LoadFailed) -> Self {
        Self::Directory(SyncError::Served(e))
    }
}

impl PipelineError {
    pub fn reason(&self) -> Reason {
        match self {
            Self::Secrets(e) => e.reason(),
            Self::Directory(e) | Self::CredentialsRefused { source: e, .. } => e.reason(),
            Self::Encode(_) | Self::Task(_) => Reason::StoreFailed,
            Self::Store(e) => e.reason(),
        }
    }
}

/// One sync of one connection.
pub struct SyncRequest<'a> {
    pub connection: ConnectionRef,
    pub spec: &'a LdapConnectionSpec,
    /// DNS server for SRV lookups instead of the system resolver.
    pub dns_server: Option<&'a str>,
    /// The content hash an administrator approved (`ldapsync.io/approve-deletions`).
    pub approval: Option<&'a str>,
    /// The other snapshots served beside this one: duplicates are counted across all of them
    /// (loaded only when a new snapshot is to be stored).
    pub siblings: &'a Lazy<Vec<Arc<Snapshot>>>,
    /// Objects read so far, for progress metrics.
    pub progress: Arc<AtomicU64>,
    /// The snapshot served now: a delta applies to it, the deletion-safety guard compares with it.
    pub served: Option<&'a Served>,
}

/// The snapshot served now, loaded only when a step needs its content, and where change
/// tracking stands for it.
pub struct Served {
    pub snapshot: Lazy<Arc<Snapshot>>,
    /// The state stored with the snapshot, or a newer one (a delta that changed nothing advances
    /// it without rewriting the snapshot).
    pub state: Option<SyncState>,
}

impl Served {
    /// A snapshot in memory; `newer` replaces the state stored with it.
    pub fn loaded(snapshot: Arc<Snapshot>, newer: Option<SyncState>) -> Self {
        let state = newer.or_else(|| snapshot.sync_state.clone());
        Self { snapshot: Lazy::ready(snapshot), state }
    }
}

/// A snapshot that was read, checked and stored.
#[derive(Debug)]
pub struct Synced {
    pub snapshot: Arc<Snapshot>,
    /// Hash of the stored bytes (they include when and from which server it was read).
    pub snapshot_hash: String,
    /// Hash of the content alone (what an approval names).
    pub content_hash: String,
    pub size: u64,
    /// Objects of the previous snapshot that this one no longer holds.
    pub deleted: u64,
    pub duplicates: DuplicateReport,
    /// The AD site whose DCs were asked first (configured or discovered), if any.
    pub site: Option<String>,
    pub read: ReadSummary,
}

#[derive(Debug)]
pub enum SyncOutcome {
    Synced(Synced),
    /// A delta found nothing changed: the served snapshot stays, stored as it is.
    Unchanged {
        site: Option<String>,
        read: ReadSummary,
    },
    /// The guard held the new snapshot; nothing was stored. The encoded snapshot is what an
    /// approval of `held.content_hash` should apply.
    Held {
        held: DeletionHeld,
        encoded: Encoded,
    },
}

/// Secrets and validation, then what the connection needs to reach its directory.
pub async fn prepare(
    connection: ConnectionRef,
    spec: &LdapConnectionSpec,
    source: &dyn ReferenceSource,
) -> Result<PreparedConnection, PipelineError> {
    Ok(prepare_with_credentials(connection, spec, source).await?.0)
}

/// The fingerprint of the credentials `spec` references now: whether refused ones were replaced.
pub async fn credentials_of(
    spec: &LdapConnectionSpec,
    source: &dyn ReferenceSource,
) -> Result<CredentialsFingerprint, PipelineError> {
    Ok(CredentialsFingerprint::of(&read_secrets(spec, source).await?))
}

async fn prepare_with_credentials(
    connection: ConnectionRef,
    spec: &LdapConnectionSpec,
    source: &dyn ReferenceSource,
) -> Result<(PreparedConnection, CredentialsFingerprint), PipelineError> {
    let secrets = read_secrets(spec, source).await?;
    let credentials = CredentialsFingerprint::of(&secrets);
    match PreparedConnection::prepare(connection, spec.clone(), secrets).await {
        Ok(prepared) => Ok((prepared, credentials)),
        Err(e) => Err(refused_or_failed(e, &credentials)),
    }
}

/// A directory failure, told apart when it refused the credentials themselves.
fn refused_or_failed(e: SyncError, credentials: &CredentialsFingerprint) -> PipelineError {
    if crate::domain::credentials::is_refusal(e.reason()) {
        PipelineError::CredentialsRefused { credentials: credentials.clone(), source: e }
    } else {
        PipelineError::Directory(e)
    }
}

/// The resolver a prepared connection uses for discovery.
pub fn resolver(prepared: &PreparedConnection, dns_server: Option<&str>) -> Result<DnsResolver, PipelineError> {
    DnsResolver::new(dns_server, prepared.transport.operation_timeout)
        .map_err(|e| PipelineError::Directory(SyncError::Discover(e)))
}

/// Runs every step; see the module comment.
pub async fn run(
    request: SyncRequest<'_>,
    source: &dyn ReferenceSource,
    store: &dyn SnapshotStore,
) -> Result<SyncOutcome, PipelineError> {
    let connection = request.connection.clone();
    let (mut prepared, credentials) = prepare_with_credentials(request.connection, request.spec, source).await?;
    prepared.progress = request.progress;
    let dns = resolver(&prepared, request.dns_server)?;
    let incremental = &request.spec.incremental;
    let configured_full = incremental.mode == IncrementalMode::Full;
    // Validated with the spec; an unparsable value cannot reach here, and would mean "never".
    let full_interval = parse_duration(&incremental.full_sync_interval).map_or(0, |d| d.as_secs() as i64);
    let fingerprint = plan_fingerprint(&request.spec.search_base, &prepared.plan);
    let served = request.served;
    let (previous, planned_full) = match served {
        None => (None, Some(FullReason::NoState)),
        Some(served) => {
            match plan_next(served.state.as_ref(), &fingerprint, full_interval, configured_full, unix_now()) {
                Ok(state) => (Some(Previous { snapshot: &served.snapshot, state }), None),
                Err(reason) => (None, Some(reason)),
            }
        }
    };
    let read = prepared
        .read_snapshot(&dns, random_pick, unix_now, previous, !configured_full)
        .await
        .map_err(|e| refused_or_failed(e, &credentials))?;
    let SnapshotRead { snapshot, site, read: mut summary } = read;
    if summary.mode == SyncMode::Full {
        summary.full_reason = summary.full_reason.or(planned_full);
    }
    let state = summary.state.clone();
    let mut snapshot = match (snapshot, served) {
        (Some(snapshot), _) => snapshot,
        (None, Some(_)) => return Ok(SyncOutcome::Unchanged { site, read: summary }),
        (None, None) => return Err(SyncError::NoServedSnapshot.into()),
    };
    snapshot.sync_state = state;
    let served = match served {
        Some(served) => Some(served.snapshot.get()?.as_ref()),
        None => None,
    };
    let siblings = request.siblings.get()?.clone();
    let Encoding { snapshot, encoded, content_hash, duplicates } = encode(snapshot, siblings).await?;
    let limits = DeletionLimits {
        max_objects: u64::from(request.spec.deletion_safety.max_deleted_objects),
        max_percent: u64::from(request.spec.deletion_safety.max_deleted_percent),
    };
    let deleted = match check_deletions(served, &snapshot, &content_hash, limits, request.approval) {
        Ok(deleted) => deleted,
        Err(held) => return Ok(SyncOutcome::Held { held, encoded }),
    };
    let mut outcome =
        store_step(&connection, Encoding { snapshot, encoded, content_hash, duplicates }, deleted, store).await?;
    if let SyncOutcome::Synced(synced) = &mut outcome {
        synced.site = site;
        synced.read = summary;
    }
    Ok(outcome)
}

/// Watches the server that tracked `state` for changes (push) and calls `changed` for each, until
/// the server ends the watch or the connection fails. Refused credentials come back as
/// [`PipelineError::CredentialsRefused`]: the caller must not bind with them again.
pub async fn watch(
    connection: ConnectionRef,
    spec: &LdapConnectionSpec,
    source: &dyn ReferenceSource,
    dns_server: Option<&str>,
    state: &SyncState,
    opened: impl FnOnce(),
    changed: impl FnMut(),
) -> Result<(), PipelineError> {
    let (prepared, credentials) = prepare_with_credentials(connection, spec, source).await?;
    let dns = resolver(&prepared, dns_server)?;
    let default_port = if spec.tls.mode == crate::api::TlsMode::Ldaps { 636 } else { 389 };
    let server = crate::domain::srv::parse_host_port(&state.server, default_port).map_err(|detail| {
        SyncError::Spec(crate::directory::sync::SpecError::Invalid { field: "spec.servers", detail })
    })?;
    let (mut session, _) =
        prepared.open_session(&dns, &[server]).await.map_err(|e| refused_or_failed(e, &credentials))?;
    tracing::info!(connection = %prepared.connection.name, server = %session.server(), "watching the directory for changes");
    opened();
    let watched = prepared.watch_changes(&mut session, state, changed).await;
    session.close().await;
    watched.map_err(|e| refused_or_failed(e, &credentials))
}

/// Applies a snapshot the guard held, once an administrator approved exactly its content: no
/// second read of the directory. `None` when `snapshot` is not the approved content.
pub async fn apply_approved(
    connection: &ConnectionRef,
    snapshot: Snapshot,
    approval: &str,
    deleted: u64,
    siblings: Vec<Arc<Snapshot>>,
    store: &dyn SnapshotStore,
) -> Result<Option<Synced>, PipelineError> {
    let encoding = encode(snapshot, siblings).await?;
    if !crate::domain::deletion::approval_names(approval, &encoding.content_hash) {
        return Ok(None);
    }
    match store_step(connection, encoding, deleted, store).await? {
        SyncOutcome::Synced(synced) => Ok(Some(synced)),
        SyncOutcome::Held { .. } | SyncOutcome::Unchanged { .. } => Ok(None),
    }
}

/// A snapshot with its encoding, content hash and duplicate count.
struct Encoding {
    snapshot: Snapshot,
    encoded: Encoded,
    content_hash: String,
    duplicates: DuplicateReport,
}

/// Encoding, hashing and the duplicate check use the cores side by side (the server is done).
async fn encode(snapshot: Snapshot, siblings: Vec<Arc<Snapshot>>) -> Result<Encoding, PipelineError> {
    let (snapshot, coded, duplicates) = tokio::task::spawn_blocking(move || {
        let (coded, duplicates) = std::thread::scope(|scope| {
            let snapshot = &snapshot;
            let duplicates =
                scope.spawn(move || find_duplicates(siblings.iter().map(|s| s.as_ref()).chain([snapshot])));
            let coded = codec::encode_and_hash(snapshot);
            (coded, duplicates.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
        });
        (snapshot, coded, duplicates)
    })
    .await?;
    let (encoded, content_hash) = coded?;
    Ok(Encoding { snapshot, encoded, content_hash, duplicates })
}

async fn store_step(
    connection: &ConnectionRef,
    encoding: Encoding,
    deleted: u64,
    store: &dyn SnapshotStore,
) -> Result<SyncOutcome, PipelineError> {
    let Encoding { snapshot, encoded, content_hash, duplicates } = encoding;
    let (snapshot_hash, size) = (encoded.hash.clone(), encoded.bytes.len() as u64);
    store.write(connection, Arc::new(encoded)).await?;
    Ok(SyncOutcome::Synced(Synced {
        snapshot: Arc::new(snapshot),
        snapshot_hash,
        content_hash,
        size,
        deleted,
        duplicates,
        site: None,
        read: ReadSummary::default(),
    }))
}
