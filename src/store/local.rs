//! The `Sidecar` store: one snapshot file per connection on the pod's volume, replaced atomically
//! (temporary file, fsync, rename, fsync of the folder), so a crash leaves the old or the new file.
//! Beside it may stand a held snapshot and the CLI's summary of the snapshot (a cache).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::domain::codec::{self, CodecError, Encoded};
use crate::domain::duplicates::DuplicateReport;
use crate::domain::incremental::SyncState;
use crate::domain::snapshot::{Counts, Snapshot};

const EXTENSION: &str = "snap";
const HELD_EXTENSION: &str = "held";
const SUMMARY_EXTENSION: &str = "summary";

/// A failed store action.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the store folder {path}: {source}")]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    WriteSnapshot { path: PathBuf, source: std::io::Error },
    #[error("cannot read {path}: {source}")]
    ReadSnapshot { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a usable snapshot: {source}")]
    CorruptSnapshot { path: PathBuf, source: CodecError },
    #[error("cannot remove {path}: {source}")]
    Purge { path: PathBuf, source: std::io::Error },
    #[error("invalid connection key {key:?}: only letters, digits, '-', '_' and '.' are allowed")]
    BadKey { key: String },
}

/// A loaded snapshot and its identity.
#[derive(Debug, Clone)]
pub struct Stored {
    pub snapshot: Snapshot,
    pub hash: String,
    pub size: u64,
}

/// A snapshot file as read, not yet decoded.
#[derive(Debug, Clone)]
pub struct StoredFile {
    pub bytes: Vec<u8>,
    /// SHA-256 (hex) of `bytes`.
    pub hash: String,
}

/// What a sync reported of a stored snapshot, kept beside it (`<key>.summary`) so that a sync
/// that changes nothing reports it again without decoding the file. It describes only the file
/// whose hash it names: beside any other file it is ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotSummary {
    pub snapshot_hash: String,
    pub content_hash: String,
    pub server: String,
    pub counts: Counts,
    pub unresolved_members: u64,
    /// Where change tracking stands: the state stored in the snapshot, or a newer one.
    pub state: Option<SyncState>,
    pub duplicates: DuplicateReport,
    /// The other snapshots `duplicates` was counted with: key → [`codec::header_identity`].
    pub siblings: BTreeMap<String, String>,
}

impl SnapshotSummary {
    /// The summary of a snapshot stored as `snapshot_hash`.
    pub fn describe(
        snapshot: &Snapshot,
        snapshot_hash: String,
        content_hash: String,
        duplicates: DuplicateReport,
        siblings: BTreeMap<String, String>,
    ) -> Self {
        Self {
            snapshot_hash,
            content_hash,
            server: snapshot.server.clone(),
            counts: snapshot.counts(),
            unresolved_members: snapshot.unresolved_members,
            state: snapshot.sync_state.clone(),
            duplicates,
            siblings,
        }
    }
}

/// Snapshot files in one folder, keyed by connection UID.
#[derive(Debug, Clone)]
pub struct LocalStore {
    dir: PathBuf,
}

impl LocalStore {
    /// Opens (and creates) the folder, removing temporary files a killed writer left behind.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|source| StoreError::CreateDir { path: dir.clone(), source })?;
        if let Ok(entries) = fs::read_dir(&dir) {
            for entry in entries.filter_map(Result::ok) {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.starts_with('.') && name.ends_with(".tmp") {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        Ok(Self { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file that holds (or would hold) the snapshot of `key`.
    pub fn path_of(&self, key: &str) -> Result<PathBuf, StoreError> {
        let valid = !key.is_empty()
            && !key.starts_with('.')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            return Err(StoreError::BadKey { key: key.to_owned() });
        }
        Ok(self.dir.join(format!("{key}.{EXTENSION}")))
    }

    /// Replaces the snapshot of `key` with `encoded`. Until the rename, the old file stays whole.
    pub fn write(&self, key: &str, encoded: &Encoded) -> Result<PathBuf, StoreError> {
        self.path_of(key)?;
        self.write_file(&format!("{key}.{EXTENSION}"), &encoded.bytes, Durability::Synced)
    }

    /// Replaces `name` in the folder: temporary file, fsync, rename, fsync of the folder. Without
    /// `Durability::Synced` no fsync: a reader still sees a whole file, but a crash may leave an
    /// old or empty one (fine for what is checked on reading and can be made again).
    fn write_file(&self, name: &str, bytes: &[u8], durability: Durability) -> Result<PathBuf, StoreError> {
        let target = self.dir.join(name);
        let temp = self.dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let failed = |source| StoreError::WriteSnapshot { path: target.clone(), source };
        let synced = durability == Durability::Synced;
        let result = (|| {
            let mut file = OpenOptions::new().write(true).create(true).truncate(true).open(&temp)?;
            file.write_all(bytes)?;
            if synced {
                file.sync_all()?;
            }
            drop(file);
            fs::rename(&temp, &target)?;
            if synced { File::open(&self.dir)?.sync_all() } else { Ok(()) }
        })();
        if result.is_err()
            && let Err(e) = fs::remove_file(&temp)
        {
            tracing::warn!(path = %temp.display(), error = %e, "cannot remove a temporary snapshot file; the next start removes it");
        }
        result.map_err(failed)?;
        Ok(target)
    }

    /// The snapshot of `key`, `None` when there is none. A damaged file is an error naming it.
    pub fn load(&self, key: &str) -> Result<Option<Stored>, StoreError> {
        self.load_file(self.path_of(key)?)
    }

    fn load_file(&self, path: PathBuf) -> Result<Option<Stored>, StoreError> {
        match read_file(&path)? {
            Some(file) => decode_file(&path, file).map(Some),
            None => Ok(None),
        }
    }

    /// The snapshot file of `key` as it is on disk, `None` when there is none.
    pub fn read(&self, key: &str) -> Result<Option<StoredFile>, StoreError> {
        read_file(&self.path_of(key)?)
    }

    /// Decodes a file [`Self::read`] gave; a damaged one is an error naming it.
    pub fn decode(&self, key: &str, file: StoredFile) -> Result<Stored, StoreError> {
        decode_file(&self.path_of(key)?, file)
    }

    /// The summary kept beside `file`, when there is one and it describes this very file.
    pub fn summary(&self, key: &str, file: &StoredFile) -> Option<SnapshotSummary> {
        let path = self.dir.join(format!("{key}.{SUMMARY_EXTENSION}"));
        let text = match fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read a snapshot summary; the snapshot is decoded instead");
                return None;
            }
        };
        match serde_json::from_slice::<SnapshotSummary>(&text) {
            Ok(summary) => (summary.snapshot_hash == file.hash).then_some(summary),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "a snapshot summary is not readable; the snapshot is decoded instead");
                None
            }
        }
    }

    /// Keeps `summary` beside the snapshot of `key` (replaced atomically, not synced to disk).
    pub fn write_summary(&self, key: &str, summary: &SnapshotSummary) -> Result<PathBuf, StoreError> {
        self.path_of(key)?;
        let name = format!("{key}.{SUMMARY_EXTENSION}");
        let bytes = serde_json::to_vec(summary)
            .map_err(|e| StoreError::WriteSnapshot { path: self.dir.join(&name), source: std::io::Error::other(e) })?;
        // A summary lost in a crash only makes the next sync decode the snapshot.
        self.write_file(&name, &bytes, Durability::Cache)
    }

    /// The [`codec::header_identity`] of each of `keys`' files, read from their headers alone;
    /// a file that is missing or has no snapshot header is left out.
    pub fn identities<'k>(&self, keys: impl IntoIterator<Item = &'k str>) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for key in keys {
            let mut header = [0u8; codec::HEADER_LEN];
            let read = self
                .path_of(key)
                .ok()
                .and_then(|p| File::open(p).ok())
                .and_then(|mut f| f.read_exact(&mut header).ok());
            if let Some(identity) = read.and_then(|()| codec::header_identity(&header)) {
                out.insert(key.to_owned(), identity);
            }
        }
        out
    }

    /// Moves a damaged snapshot aside (kept for inspection, never served) and returns where it went.
    pub fn set_aside(&self, key: &str) -> Result<PathBuf, StoreError> {
        let path = self.path_of(key)?;
        let aside = self.dir.join(format!("{key}.{EXTENSION}.corrupt"));
        fs::rename(&path, &aside).map_err(|source| StoreError::Purge { path, source })?;
        remove_if_present(&self.dir.join(format!("{key}.{SUMMARY_EXTENSION}")))?;
        Ok(aside)
    }

    /// Keeps a snapshot the deletion-safety guard held, beside the served one: what an approval
    /// applies. Written like a snapshot (atomically).
    pub fn write_held(&self, key: &str, encoded: &Encoded) -> Result<PathBuf, StoreError> {
        self.path_of(key)?;
        self.write_file(&format!("{key}.{HELD_EXTENSION}"), &encoded.bytes, Durability::Synced)
    }

    /// The held snapshot of `key`, `None` when there is none.
    pub fn load_held(&self, key: &str) -> Result<Option<Stored>, StoreError> {
        self.path_of(key)?;
        self.load_file(self.dir.join(format!("{key}.{HELD_EXTENSION}")))
    }

    /// Forgets the held snapshot of `key` (applied, or superseded).
    pub fn drop_held(&self, key: &str) -> Result<(), StoreError> {
        self.path_of(key)?;
        remove_if_present(&self.dir.join(format!("{key}.{HELD_EXTENSION}")))
    }

    /// Deletes everything stored for `key`.
    pub fn purge(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path_of(key)?;
        for p in [
            path.clone(),
            self.dir.join(format!("{key}.{EXTENSION}.corrupt")),
            self.dir.join(format!("{key}.{HELD_EXTENSION}")),
            self.dir.join(format!("{key}.{SUMMARY_EXTENSION}")),
        ] {
            remove_if_present(&p)?;
        }
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(|source| StoreError::Purge { path, source })
    }

    /// Every valid snapshot (warm start). A damaged one is set aside with a log line naming it
    /// and never served; the next sync of its connection starts from scratch.
    pub fn load_all(&self) -> Result<Vec<Stored>, StoreError> {
        self.load_keys(&self.keys()?)
    }

    /// Every valid snapshot of `keys`, as [`Self::load_all`] loads them.
    pub fn load_keys(&self, keys: &[String]) -> Result<Vec<Stored>, StoreError> {
        let mut out = Vec::new();
        for key in keys {
            match self.load(key) {
                Ok(Some(stored)) => out.push(stored),
                Ok(None) => {}
                Err(e @ StoreError::CorruptSnapshot { .. }) => self.set_aside_damaged(key, &e),
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Sets aside the snapshot of `key` that `error` found damaged, saying so in the log.
    pub fn set_aside_damaged(&self, key: &str, error: &StoreError) {
        match self.set_aside(key) {
            Ok(aside) => tracing::error!(error = %error, moved_to = %aside.display(), "snapshot set aside, not served"),
            Err(move_error) => {
                tracing::error!(error = %error, %move_error, "snapshot not served and could not be moved aside")
            }
        }
    }

    /// Keys of every stored snapshot.
    pub fn keys(&self) -> Result<Vec<String>, StoreError> {
        let entries =
            fs::read_dir(&self.dir).map_err(|source| StoreError::ReadSnapshot { path: self.dir.clone(), source })?;
        let mut keys: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                e.file_name().to_str().and_then(|n| n.strip_suffix(&format!(".{EXTENSION}")).map(str::to_owned))
            })
            .filter(|k| !k.starts_with('.'))
            .collect();
        keys.sort();
        Ok(keys)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// On disk before the call returns.
    Synced,
    /// Whole or absent, maybe lost in a crash.
    Cache,
}

fn read_file(path: &Path) -> Result<Option<StoredFile>, StoreError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(StoredFile { hash: codec::hash_of(&bytes), bytes })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StoreError::ReadSnapshot { path: path.to_owned(), source }),
    }
}

fn decode_file(path: &Path, file: StoredFile) -> Result<Stored, StoreError> {
    let snapshot =
        codec::decode(&file.bytes).map_err(|source| StoreError::CorruptSnapshot { path: path.to_owned(), source })?;
    Ok(Stored { snapshot, hash: file.hash, size: file.bytes.len() as u64 })
}

fn remove_if_present(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(StoreError::Purge { path: path.to_owned(), source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::snapshot::ConnectionRef;

    fn snapshot(server: &str) -> Snapshot {
        Snapshot {
            connection: ConnectionRef { namespace: "ns".into(), name: "corp".into(), uid: "uid-1".into() },
            domain: "corp.example.com".into(),
            search_base: "DC=corp".into(),
            taken_at: 1,
            server: server.into(),
            objects: vec![],
            memberships: Default::default(),
            unresolved_members: 0,
            foreign_members: Vec::new(),
            sync_state: None,
        }
    }

    #[test]
    fn write_load_replace_purge() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(dir.path().join("cache")).expect("open");
        assert!(store.load("uid-1").expect("load").is_none());
        let first = codec::encode(&snapshot("dc1")).expect("encode");
        store.write("uid-1", &first).expect("write");
        let second = codec::encode(&snapshot("dc2")).expect("encode");
        store.write("uid-1", &second).expect("replace");
        let loaded = store.load("uid-1").expect("load").expect("present");
        assert_eq!(loaded.snapshot.server, "dc2");
        assert_eq!(loaded.hash, second.hash);
        assert_eq!(store.keys().expect("keys"), ["uid-1"]);
        store.purge("uid-1").expect("purge");
        assert!(store.load("uid-1").expect("load").is_none());
        assert!(store.keys().expect("keys").is_empty());
    }

    #[test]
    fn a_held_snapshot_is_kept_beside_the_served_one_and_never_served() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(dir.path()).expect("open");
        let served = codec::encode(&snapshot("dc1")).expect("encode");
        let held = codec::encode(&snapshot("dc2")).expect("encode");
        store.write("uid-1", &served).expect("write");
        store.write_held("uid-1", &held).expect("write held");
        assert_eq!(store.load("uid-1").expect("load").map(|s| s.snapshot.server).as_deref(), Some("dc1"));
        assert_eq!(store.load_held("uid-1").expect("load held").map(|s| s.hash), Some(held.hash.clone()));
        assert_eq!(store.keys().expect("keys"), ["uid-1"], "a held file is not a served snapshot");
        store.drop_held("uid-1").expect("drop held");
        assert!(store.load_held("uid-1").expect("load held").is_none());
        store.drop_held("uid-1").expect("dropping nothing is fine");
        store.write_held("uid-1", &held).expect("write held");
        store.purge("uid-1").expect("purge");
        assert!(store.load_held("uid-1").expect("load held").is_none(), "a purge forgets the held snapshot too");
        assert!(store.write_held("../x", &held).is_err(), "keys are checked");
    }

    #[test]
    fn corrupt_files_are_errors_naming_the_file_and_can_be_set_aside() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(dir.path()).expect("open");
        fs::write(dir.path().join("uid-2.snap"), b"garbage").expect("write garbage");
        let err = store.load("uid-2").expect_err("corrupt");
        assert!(err.to_string().contains("uid-2.snap") && err.to_string().contains("wrong magic"), "{err}");
        let aside = store.set_aside("uid-2").expect("set aside");
        assert!(aside.exists());
        assert!(store.load("uid-2").expect("load").is_none());
    }

    #[test]
    fn load_all_serves_the_valid_and_sets_the_corrupt_aside() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(dir.path()).expect("open");
        store.write("good", &codec::encode(&snapshot("dc1")).expect("encode")).expect("write");
        fs::write(dir.path().join("bad.snap"), b"LDSYNCSN-but-broken").expect("write");
        let all = store.load_all().expect("load all");
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].snapshot.server, "dc1");
        assert!(dir.path().join("bad.snap.corrupt").exists());
        assert_eq!(store.keys().expect("keys"), ["good"]);
    }

    fn summary_of(file: &StoredFile) -> SnapshotSummary {
        let snapshot = codec::decode(&file.bytes).expect("decode");
        let content = codec::content_hash(&snapshot).expect("content hash");
        SnapshotSummary::describe(&snapshot, file.hash.clone(), content, DuplicateReport::default(), BTreeMap::new())
    }

    #[test]
    fn a_summary_describes_only_the_file_it_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(dir.path()).expect("open");
        store.write("uid-1", &codec::encode(&snapshot("dc1")).expect("encode")).expect("write");
        let first = store.read("uid-1").expect("read").expect("present");
        let summary = summary_of(&first);
        store.write_summary("uid-1", &summary).expect("write summary");
        assert_eq!(store.summary("uid-1", &first), Some(summary.clone()));
        assert_eq!(store.keys().expect("keys"), ["uid-1"], "a summary is not a snapshot");

        // The snapshot replaced (by an agent, or by hand): the old summary says nothing of it.
        store.write("uid-1", &codec::encode(&snapshot("dc2")).expect("encode")).expect("replace");
        let second = store.read("uid-1").expect("read").expect("present");
        assert_eq!(store.summary("uid-1", &second), None);

        fs::write(dir.path().join("uid-1.summary"), b"{not json").expect("damage");
        assert_eq!(store.summary("uid-1", &second), None, "a damaged summary is ignored");

        store.write_summary("uid-1", &summary_of(&second)).expect("write summary");
        store.set_aside("uid-1").expect("set aside");
        assert!(!dir.path().join("uid-1.summary").exists(), "a set-aside snapshot takes its summary along");
        store.write("uid-1", &codec::encode(&snapshot("dc1")).expect("encode")).expect("write");
        store.write_summary("uid-1", &summary).expect("write summary");
        store.purge("uid-1").expect("purge");
        assert!(!dir.path().join("uid-1.summary").exists(), "a purge removes the summary");
    }

    #[test]
    fn identities_come_from_headers_and_follow_the_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(dir.path()).expect("open");
        store.write("a", &codec::encode(&snapshot("dc1")).expect("encode")).expect("write");
        fs::write(dir.path().join("b.snap"), b"garbage").expect("write garbage");
        let before = store.identities(["a", "b", "missing"]);
        assert_eq!(before.keys().collect::<Vec<_>>(), ["a"], "only real snapshot headers count");
        store.write("a", &codec::encode(&snapshot("dc1")).expect("encode")).expect("same content");
        assert_eq!(store.identities(["a"]), before);
        store.write("a", &codec::encode(&snapshot("dc2")).expect("encode")).expect("other content");
        assert_ne!(store.identities(["a"]), before);
    }

    #[test]
    fn keys_cannot_escape_the_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(dir.path()).expect("open");
        for bad in ["", "../x", "a/b", ".hidden"] {
            assert!(matches!(store.load(bad), Err(StoreError::BadKey { .. })), "{bad:?}");
        }
    }
}
