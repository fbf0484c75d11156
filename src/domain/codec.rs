//! Snapshot file format: a fixed header, then the zstd-compressed postcard encoding of the snapshot.
//!
//! ```text
//! offset size
//!  0      8   magic "LDSYNCSN"
//!  8      2   format version (big-endian), currently 1
//! 10      2   flags, 0
//! 12      8   uncompressed payload length (big-endian)
//! 20      8   compressed payload length (big-endian)
//! 28     32   SHA-256 of the compressed payload
//! 60      -   payload
//! ```
//! The same snapshot always encodes to the same bytes, so the SHA-256 of the file identifies it.

use crate::domain::reason::Reason;
use std::io::Read;

use sha2::{Digest, Sha256};

use super::snapshot::Snapshot;

pub const MAGIC: &[u8; 8] = b"LDSYNCSN";
pub const VERSION: u16 = 3;
/// Version 1 had no `foreign_members`, version 2 no SIDs and no change-tracking state; both are
/// still read (their content takes a full sync before deltas apply to it).
const VERSION_1: u16 = 1;
const VERSION_2: u16 = 2;
pub const HEADER_LEN: usize = 60;
/// Refuse to inflate beyond this: a corrupt length must not exhaust memory.
const MAX_PAYLOAD: u64 = 4 << 30;
const ZSTD_LEVEL: i32 = 1;
/// Most the decoder reserves before it has inflated anything.
const INITIAL_RESERVE: u64 = 256 << 20;

/// Why bytes are not a usable snapshot.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("not a snapshot: wrong magic")]
    BadMagic,
    #[error("snapshot format version {found} is not supported (this build reads version {VERSION})")]
    UnknownVersion { found: u16 },
    #[error("snapshot flags {flags:#06x} are not supported")]
    UnknownFlags { flags: u16 },
    #[error("snapshot is truncated: {have} bytes, expected {want}")]
    Truncated { have: u64, want: u64 },
    #[error("snapshot checksum mismatch: the file is corrupt")]
    BadChecksum,
    #[error("snapshot payload is corrupt: {0}")]
    Corrupt(String),
    #[error("cannot encode the snapshot: {0}")]
    Encode(String),
}

impl CodecError {
    /// Stable reason for logs and metrics.
    pub fn reason(&self) -> Reason {
        match self {
            Self::BadMagic => Reason::NotASnapshot,
            Self::UnknownVersion { .. } => Reason::UnsupportedSnapshotVersion,
            Self::UnknownFlags { .. } => Reason::UnsupportedSnapshotFlags,
            Self::Truncated { .. } => Reason::SnapshotTruncated,
            Self::BadChecksum => Reason::SnapshotChecksumMismatch,
            Self::Corrupt(_) => Reason::SnapshotCorrupt,
            Self::Encode(_) => Reason::StoreFailed,
        }
    }
}

/// An encoded snapshot and its identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub bytes: Vec<u8>,
    /// SHA-256 (hex) of `bytes`.
    pub hash: String,
}

pub fn encode(snapshot: &Snapshot) -> Result<Encoded, CodecError> {
    let fail = |e: &dyn std::fmt::Display| CodecError::Encode(e.to_string());
    // Serialise straight into the compressor, behind a header filled in afterwards: the
    // uncompressed encoding never exists in memory as a whole.
    let mut bytes = vec![0u8; HEADER_LEN];
    let mut encoder = zstd::stream::Encoder::new(&mut bytes, ZSTD_LEVEL).map_err(|e| fail(&e))?;
    // postcard writes field by field; batching keeps the compressor's per-call cost out of it.
    let mut counter = std::io::BufWriter::with_capacity(64 * 1024, CountingWriter { inner: &mut encoder, count: 0 });
    postcard::to_io(snapshot, &mut counter).map_err(|e| fail(&e))?;
    let counter = counter.into_inner().map_err(|e| fail(&e.error().to_string()))?;
    let raw_len = counter.count;
    encoder.finish().map_err(|e| fail(&e))?;
    let compressed_len = (bytes.len() - HEADER_LEN) as u64;
    let digest = Sha256::digest(&bytes[HEADER_LEN..]);
    bytes[..8].copy_from_slice(MAGIC);
    bytes[8..10].copy_from_slice(&VERSION.to_be_bytes());
    bytes[12..20].copy_from_slice(&raw_len.to_be_bytes());
    bytes[20..28].copy_from_slice(&compressed_len.to_be_bytes());
    bytes[28..60].copy_from_slice(&digest);
    let hash = hex(&Sha256::digest(&bytes));
    Ok(Encoded { bytes, hash })
}

/// [`encode`] and [`content_hash`] together, the hash on a second thread: both walk every object,
/// and this is the part of a sync where the directory server has nothing left to do.
pub fn encode_and_hash(snapshot: &Snapshot) -> Result<(Encoded, String), CodecError> {
    std::thread::scope(|scope| {
        let hashing = scope.spawn(|| content_hash(snapshot));
        let encoded = encode(snapshot)?;
        let hash = hashing.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
        Ok((encoded, hash))
    })
}

/// SHA-256 (hex) of what a snapshot says about the directory — objects, memberships, where they
/// come from — leaving out when it was read and from which server. Two reads of an unchanged
/// directory give the same value; it names a held snapshot for `ldapsync.io/approve-deletions`.
pub fn content_hash(snapshot: &Snapshot) -> Result<String, CodecError> {
    let content = (
        &snapshot.connection,
        &snapshot.domain,
        &snapshot.search_base,
        snapshot.stored_objects(),
        snapshot.unresolved_members,
        &snapshot.foreign_members,
    );
    let mut writer = std::io::BufWriter::with_capacity(64 * 1024, HashWriter(Sha256::new()));
    postcard::to_io(&content, &mut writer).map_err(|e| CodecError::Encode(e.to_string()))?;
    let HashWriter(hasher) = writer.into_inner().map_err(|e| CodecError::Encode(e.error().to_string()))?;
    Ok(hex(&hasher.finalize()))
}

struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        Digest::update(&mut self.0, buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct CountingWriter<W> {
    inner: W,
    count: u64,
}

impl<W: std::io::Write> std::io::Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// What identifies a snapshot file from its header alone (version, lengths and the payload's
/// checksum, in hex); `None` when `header` is not a snapshot header.
pub fn header_identity(header: &[u8]) -> Option<String> {
    (header.len() >= HEADER_LEN && &header[..MAGIC.len()] == MAGIC).then(|| hex(&header[MAGIC.len()..HEADER_LEN]))
}

pub fn decode(bytes: &[u8]) -> Result<Snapshot, CodecError> {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(CodecError::BadMagic);
    }
    if bytes.len() < HEADER_LEN {
        return Err(CodecError::Truncated { have: bytes.len() as u64, want: HEADER_LEN as u64 });
    }
    let version = u16::from_be_bytes([bytes[8], bytes[9]]);
    if ![VERSION, VERSION_2, VERSION_1].contains(&version) {
        return Err(CodecError::UnknownVersion { found: version });
    }
    let flags = u16::from_be_bytes([bytes[10], bytes[11]]);
    if flags != 0 {
        return Err(CodecError::UnknownFlags { flags });
    }
    let be64 = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[at..at + 8]);
        u64::from_be_bytes(b)
    };
    let (raw_len, compressed_len) = (be64(12), be64(20));
    let want = HEADER_LEN as u64 + compressed_len;
    if bytes.len() as u64 != want {
        return Err(CodecError::Truncated { have: bytes.len() as u64, want });
    }
    let payload = &bytes[HEADER_LEN..];
    if Sha256::digest(payload).as_slice() != &bytes[28..60] {
        return Err(CodecError::BadChecksum);
    }
    if raw_len > MAX_PAYLOAD {
        return Err(CodecError::Corrupt(format!("declared size {raw_len} is too large")));
    }
    // Inflate by streaming rather than reserving the declared size: a damaged or crafted header
    // must not make the reader allocate gigabytes before the payload proves them.
    let mut raw = Vec::with_capacity(raw_len.min(compressed_len.saturating_mul(16)).min(INITIAL_RESERVE) as usize);
    zstd::stream::read::Decoder::with_buffer(payload)
        .map_err(|e| CodecError::Corrupt(e.to_string()))?
        .take(raw_len + 1)
        .read_to_end(&mut raw)
        .map_err(|e| CodecError::Corrupt(e.to_string()))?;
    if raw.len() as u64 != raw_len {
        return Err(CodecError::Corrupt(format!("payload is {} bytes, header says {raw_len}", raw.len())));
    }
    let corrupt = |e: postcard::Error| CodecError::Corrupt(e.to_string());
    match version {
        VERSION_1 => postcard::from_bytes::<SnapshotV1>(&raw).map(Snapshot::from).map_err(corrupt),
        VERSION_2 => postcard::from_bytes::<SnapshotV2>(&raw).map(Snapshot::from).map_err(corrupt),
        _ => postcard::from_bytes(&raw).map_err(corrupt),
    }
}

/// A version 1 payload: version 2 without `foreign_members`.
#[derive(serde::Deserialize)]
struct SnapshotV1 {
    connection: super::snapshot::ConnectionRef,
    domain: String,
    search_base: String,
    taken_at: i64,
    server: String,
    objects: Vec<DirObjectV2>,
    unresolved_members: u64,
}

/// A version 2 payload: a [`Snapshot`] without SIDs and change-tracking state.
#[derive(serde::Deserialize)]
struct SnapshotV2 {
    connection: super::snapshot::ConnectionRef,
    domain: String,
    search_base: String,
    taken_at: i64,
    server: String,
    objects: Vec<DirObjectV2>,
    unresolved_members: u64,
    foreign_members: Vec<super::snapshot::ForeignMember>,
}

/// An object of versions 1 and 2: no SIDs.
#[derive(serde::Deserialize)]
struct DirObjectV2 {
    kind: super::snapshot::ObjectKind,
    dn: String,
    id: String,
    account_name: Option<String>,
    principal_name: Option<String>,
    display_name: Option<String>,
    disabled: bool,
    primary_address: Option<String>,
    addresses: Vec<String>,
    member_of: Vec<u32>,
}

impl DirObjectV2 {
    /// The object and its direct groups.
    fn split(self) -> (super::snapshot::DirObject, Vec<u32>) {
        let Self {
            kind,
            dn,
            id,
            account_name,
            principal_name,
            display_name,
            disabled,
            primary_address,
            addresses,
            member_of,
        } = self;
        let object = super::snapshot::DirObject {
            kind,
            dn,
            id,
            account_name,
            principal_name,
            display_name,
            disabled,
            primary_address,
            addresses,
            sid: None,
            primary_group_sid: None,
        };
        (object, member_of)
    }
}

impl From<SnapshotV1> for Snapshot {
    fn from(v1: SnapshotV1) -> Self {
        let SnapshotV1 { connection, domain, search_base, taken_at, server, objects, unresolved_members } = v1;
        SnapshotV2 {
            connection,
            domain,
            search_base,
            taken_at,
            server,
            objects,
            unresolved_members,
            foreign_members: Vec::new(),
        }
        .into()
    }
}

impl From<SnapshotV2> for Snapshot {
    fn from(v2: SnapshotV2) -> Self {
        let SnapshotV2 {
            connection,
            domain,
            search_base,
            taken_at,
            server,
            objects,
            unresolved_members,
            foreign_members,
        } = v2;
        let mut memberships = super::snapshot::Memberships::default();
        let objects = objects
            .into_iter()
            .map(|object| {
                let (object, member_of) = object.split();
                memberships.push(&member_of);
                std::sync::Arc::new(object)
            })
            .collect();
        Snapshot {
            connection,
            domain,
            search_base,
            taken_at,
            server,
            objects,
            memberships,
            unresolved_members,
            foreign_members,
            sync_state: None,
        }
    }
}

pub fn hash_of(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::snapshot::{ConnectionRef, DirObject, ObjectKind};

    pub(crate) fn sample(n: u32) -> Snapshot {
        Snapshot {
            connection: ConnectionRef { namespace: "mail".into(), name: "corp".into(), uid: "u-1".into() },
            domain: "corp.example.com".into(),
            search_base: "DC=corp,DC=example,DC=com".into(),
            taken_at: 1_790_000_000,
            server: "dc1.corp.example.com:389".into(),
            objects: (0..n)
                .map(|i| DirObject {
                    kind: if i % 10 == 0 { ObjectKind::Group } else { ObjectKind::User },
                    dn: format!("CN=u{i},DC=corp,DC=example,DC=com"),
                    id: format!("{i:08x}-0000-0000-0000-000000000000"),
                    account_name: Some(format!("u{i}")),
                    principal_name: Some(format!("u{i}@corp.example.com")),
                    display_name: Some(format!("User {i}")),
                    disabled: i % 7 == 0,
                    primary_address: Some(format!("u{i}@corp.example.com")),
                    addresses: vec![format!("u{i}@corp.example.com")],
                    sid: None,
                    primary_group_sid: None,
                })
                .map(std::sync::Arc::new)
                .collect(),
            memberships: crate::domain::snapshot::Memberships::from_lists(
                (0..n).map(|i| if i % 10 == 0 { vec![] } else { vec![i / 10 * 10] }),
            ),
            unresolved_members: 3,
            foreign_members: vec![crate::domain::snapshot::ForeignMember {
                group: 0,
                dn: "CN=Elsewhere,DC=other".into(),
            }],
            sync_state: None,
        }
    }

    #[test]
    fn content_hash_ignores_when_and_where_a_snapshot_was_read() {
        let a = sample(20);
        let mut b = a.clone();
        b.taken_at += 3600;
        b.server = "another-dc:389".into();
        assert_eq!(content_hash(&a).expect("hash"), content_hash(&b).expect("hash"));
        assert_ne!(encode(&a).expect("encode").hash, encode(&b).expect("encode").hash);
        b.objects.pop();
        assert_ne!(content_hash(&a).expect("hash"), content_hash(&b).expect("hash"));
    }

    #[test]
    fn round_trip_is_exact_and_deterministic() {
        for n in [0, 1, 1000] {
            let s = sample(n);
            let a = encode(&s).expect("encode");
            let b = encode(&s.clone()).expect("encode again");
            assert_eq!(a, b, "same content, same bytes");
            assert_eq!(a.hash, hash_of(&a.bytes));
            assert_eq!(decode(&a.bytes).expect("decode"), s);
        }
    }

    #[test]
    fn damaged_files_are_refused_with_the_cause() {
        let good = encode(&sample(50)).expect("encode").bytes;
        let mut wrong_magic = good.clone();
        wrong_magic[0] = b'X';
        let mut future = good.clone();
        future[9] = 4;
        let mut flipped = good.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x40;
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("empty", vec![], "wrong magic"),
            ("json", b"{\"objects\":[]}".to_vec(), "wrong magic"),
            ("wrong magic", wrong_magic, "wrong magic"),
            ("future version", future, "version 4 is not supported"),
            ("header only", good[..40].to_vec(), "truncated"),
            ("cut payload", good[..good.len() - 5].to_vec(), "truncated"),
            ("flipped bit", flipped, "checksum mismatch"),
        ];
        for (name, bytes, want) in cases {
            let err = decode(&bytes).expect_err(name).to_string();
            assert!(err.contains(want), "{name}: {err}");
        }
    }

    /// A file of an older version around `raw`.
    fn legacy_file(version: u16, raw: &[u8]) -> Vec<u8> {
        let compressed = zstd::encode_all(raw, ZSTD_LEVEL).expect("compress");
        let mut bytes = MAGIC.to_vec();
        bytes.extend(version.to_be_bytes());
        bytes.extend(0u16.to_be_bytes());
        bytes.extend((raw.len() as u64).to_be_bytes());
        bytes.extend((compressed.len() as u64).to_be_bytes());
        bytes.extend(Sha256::digest(&compressed));
        bytes.extend(compressed);
        bytes
    }

    #[test]
    fn version_1_and_2_files_are_still_read() {
        let mut s = sample(5);
        let objects: Vec<_> = s
            .objects
            .iter()
            .enumerate()
            .map(|(at, o)| {
                let o = DirObject::clone(o);
                (
                    o.kind,
                    o.dn,
                    o.id,
                    o.account_name,
                    o.principal_name,
                    o.display_name,
                    o.disabled,
                    o.primary_address,
                    o.addresses,
                    s.member_of(at).to_vec(),
                )
            })
            .collect();
        let v2 = (
            &s.connection,
            &s.domain,
            &s.search_base,
            s.taken_at,
            &s.server,
            &objects,
            s.unresolved_members,
            &s.foreign_members,
        );
        let read = decode(&legacy_file(VERSION_2, &postcard::to_allocvec(&v2).expect("v2"))).expect("a version 2 file");
        assert_eq!(read, s);
        s.foreign_members.clear();
        let v1 = (&s.connection, &s.domain, &s.search_base, s.taken_at, &s.server, &objects, s.unresolved_members);
        let read = decode(&legacy_file(VERSION_1, &postcard::to_allocvec(&v1).expect("v1"))).expect("a version 1 file");
        assert_eq!(read, s);
    }

    #[test]
    fn change_tracking_state_is_stored_but_is_not_content() {
        use crate::domain::incremental::{ChangeTracking, SyncState, Watermark};
        let plain = sample(5);
        let mut tracked = plain.clone();
        tracked.sync_state = Some(SyncState {
            tracking: ChangeTracking::UsnChanged,
            server: "dc1:389".into(),
            server_identity: "CN=NTDS Settings,CN=DC1".into(),
            schema: "20261201000000.0Z".into(),
            plan: "abc".into(),
            watermark: Watermark::Usn(4711),
            full_at: 1_790_000_000,
        });
        let encoded = encode(&tracked).expect("encode");
        assert_eq!(decode(&encoded.bytes).expect("decode"), tracked);
        assert_ne!(encoded.hash, encode(&plain).expect("encode").hash);
        assert_eq!(content_hash(&tracked).expect("hash"), content_hash(&plain).expect("hash"));
    }

    /// The bytes of version 3 stay what they were when it was introduced: files on disk and
    /// approved content hashes must keep meaning the same content (zstd is pinned by Cargo.lock).
    #[test]
    fn version_3_bytes_are_stable() {
        use crate::domain::incremental::{ChangeTracking, SyncState, Watermark};
        let mut s = sample(300);
        std::sync::Arc::make_mut(&mut s.objects[1]).sid = Some(vec![1, 5, 0, 0, 0, 0, 0, 5, 21, 0, 0, 0]);
        std::sync::Arc::make_mut(&mut s.objects[2]).primary_group_sid = Some(vec![1, 5, 0, 0, 0, 0, 0, 5, 21, 0, 0, 1]);
        s.sync_state = Some(SyncState {
            tracking: ChangeTracking::Syncrepl,
            server: "ldap1:389".into(),
            server_identity: "rid=001".into(),
            schema: "20261201000000Z".into(),
            plan: "p".into(),
            watermark: Watermark::Cookie("rid=000,csn=1".into()),
            full_at: 1_790_000_000,
        });
        assert_eq!(
            encode(&s).expect("encode").hash,
            "5d42e6004f851759896954d5a237e7cd83c9c84cd77b184b475d4efc23f92a74"
        );
        assert_eq!(content_hash(&s).expect("hash"), "f7ad4531511a2dce8ceb92c93d26a7477693b40a55c5afe7c0ae47619affd40a");
    }

    #[test]
    fn every_truncation_fails_cleanly() {
        let good = encode(&sample(20)).expect("encode").bytes;
        for cut in 0..good.len() {
            assert!(decode(&good[..cut]).is_err(), "cut at {cut}");
        }
    }
}
