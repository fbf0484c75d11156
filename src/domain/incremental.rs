//! Incremental sync, the pure part: where a directory's change tracking stood (kept with the
//! snapshot), whether the next sync may ask only for changes, and what a delta touched.
//!
//! A full read is the ground truth; a delta is trusted only from the same server, for the same
//! read plan, within the full-sync interval. Anything else reads everything again.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use rustc_hash::{FxHashMap, FxHashSet};

use super::dn;
use super::profile::ReadPlan;
use super::snapshot::{ObjectKind, Snapshot};

/// How a directory tells what changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeTracking {
    /// Active Directory: objects whose `uSNChanged` passed the watermark, deletions from
    /// tombstones (Show Deleted), on one DC (USNs are per DC).
    UsnChanged,
    /// RFC 4533 content synchronisation (OpenLDAP syncprov): a refresh from the cookie.
    Syncrepl,
}

impl ChangeTracking {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UsnChanged => "UsnChanged",
            Self::Syncrepl => "Syncrepl",
        }
    }
}

/// Where change tracking stood when a snapshot's content was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Watermark {
    /// The DC's `highestCommittedUSN` read before the content.
    Usn(u64),
    /// The server's sync cookie (opaque).
    Cookie(Vec<u8>),
}

/// The change-tracking state kept with a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncState {
    pub tracking: ChangeTracking,
    /// `host:port` the watermark belongs to.
    pub server: String,
    /// What the server says it is (AD `dsServiceName`): a DC restored or replaced under the
    /// same name has another history.
    pub server_identity: String,
    /// RFC 4533 servers: when the schema last changed (the `modifyTimestamp` of the subschema
    /// subentry; empty when none shows). Other definitions can change what a read returns. (AD
    /// schema changes show by USN in the schema's naming context instead.)
    pub schema: String,
    /// [`plan_fingerprint`] of the read that produced the content.
    pub plan: String,
    pub watermark: Watermark,
    /// Unix seconds of the last full read this content descends from.
    pub full_at: i64,
}

/// How a sync read the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SyncMode {
    Full,
    Incremental,
}

impl SyncMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "Full",
            Self::Incremental => "Incremental",
        }
    }
}

/// How a sync read the directory (the JSON summary, the row, the metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadSummary {
    pub mode: SyncMode,
    pub full_reason: Option<FullReason>,
    pub entries_read: u64,
    /// Objects a delta changed, added or removed.
    pub changes: u64,
    /// Where change tracking stands now; `None` when the server offers none.
    pub state: Option<SyncState>,
    /// How a delta learnt of deletions.
    pub deletions: Option<DeletionSource>,
}

/// An approved held snapshot is applied without a read.
impl Default for ReadSummary {
    fn default() -> Self {
        Self { mode: SyncMode::Full, full_reason: None, entries_read: 0, changes: 0, state: None, deletions: None }
    }
}

/// Why a sync read everything although incremental sync is on (bounded: metrics and rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FullReason {
    /// `spec.incremental.mode: Full`.
    Configured,
    /// No snapshot yet, or one written before change tracking.
    NoState,
    /// The spec reads other objects or attributes than the snapshot's read did.
    SpecChanged,
    /// The full-sync interval passed: a full read is the ground truth.
    Periodic,
    /// The server that tracked the changes is not the one answering now.
    ServerChanged,
    /// The server's schema changed since the content was read.
    SchemaChanged,
    /// The server refused or no longer knows the cookie or watermark.
    StateRefused,
    /// The server offers no change tracking this build uses.
    Unsupported,
}

impl FullReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Configured => "Configured",
            Self::NoState => "NoState",
            Self::SpecChanged => "SpecChanged",
            Self::Periodic => "Periodic",
            Self::ServerChanged => "ServerChanged",
            Self::SchemaChanged => "SchemaChanged",
            Self::StateRefused => "StateRefused",
            Self::Unsupported => "Unsupported",
        }
    }
}

/// Whether the next sync may be incremental, before any server is asked.
pub fn plan_next<'a>(
    state: Option<&'a SyncState>,
    plan_fingerprint: &str,
    full_interval_seconds: i64,
    configured_full: bool,
    now: i64,
) -> Result<&'a SyncState, FullReason> {
    if configured_full {
        return Err(FullReason::Configured);
    }
    let state = state.ok_or(FullReason::NoState)?;
    if state.plan != plan_fingerprint {
        return Err(FullReason::SpecChanged);
    }
    if full_interval_seconds > 0 && now.saturating_sub(state.full_at) >= full_interval_seconds {
        return Err(FullReason::Periodic);
    }
    Ok(state)
}

/// Identifies what a read asks for: the base, each query's kind, filter and attributes, and
/// the interpretation of attributes. A snapshot read under one plan cannot take deltas of another.
pub fn plan_fingerprint(search_base: &str, plan: &ReadPlan) -> String {
    let mut hash = Sha256::new();
    // Bumped when this build derives objects differently from the same entries.
    hash.update(b"ldapsync-plan-1\0");
    hash.update(search_base.as_bytes());
    hash.update(b"\0");
    for query in &plan.queries {
        hash.update(query.kind.as_str().as_bytes());
        hash.update(b"\0");
        hash.update(query.filter.as_bytes());
        hash.update(b"\0");
        for attribute in &query.attributes {
            hash.update(attribute.as_bytes());
            hash.update(b",");
        }
        hash.update(b"\0");
    }
    hash.update(format!("{:?}", plan.names).as_bytes());
    hash.finalize()[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// What a delta read: ids of objects that changed (to read again) and ids deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeSet {
    pub changed: Vec<String>,
    pub deleted: Vec<String>,
    /// Entries the server sent to say what changed (what the DC spent on the question).
    pub entries_read: u64,
    pub deletions: Option<DeletionSource>,
}

/// How a delta learnt of deletions: what the account may do decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletionSource {
    /// AD tombstones (Show Deleted), for accounts that may read them.
    Tombstones,
    /// AD: the ids of the read listed and compared with the cached ones (one small entry per
    /// object), for accounts that may not read tombstones.
    IdListing,
    /// RFC 4533: the delete phase or the present phase of the refresh.
    SyncRefresh,
}

impl DeletionSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tombstones => "Tombstones",
            Self::IdListing => "IdListing",
            Self::SyncRefresh => "SyncRefresh",
        }
    }
}

impl ChangeSet {
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.deleted.is_empty()
    }
}

/// What a delta must read besides the changed objects, so that memberships come out as a full
/// read would find them: a group lists its members by DN, and a member that was renamed, moved,
/// removed or added changes what the lists of unchanged groups resolve to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cascade {
    /// Ids of groups of the old snapshot to read again: the groups of objects whose DN changed
    /// or that are gone.
    pub groups: Vec<String>,
    /// DNs that objects have now and did not have before: groups listing them are read again.
    pub listed_dns: Vec<String>,
}

impl Cascade {
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty() && self.listed_dns.is_empty()
    }
}

/// An object a delta read again, as far as the cascade needs it.
#[derive(Debug, Clone, Copy)]
pub struct ReadAgain<'a> {
    pub id: &'a str,
    pub dn: &'a str,
    pub primary_group_sid: Option<&'a [u8]>,
}

/// The cascade of a delta over `old`: `read_again` are the objects the delta read, `removed`
/// the ids it found deleted or no longer within the read. A user whose primary group changed
/// has its old primary group read again too: a snapshot cannot tell whether that group also
/// lists the user.
pub fn cascade<'a>(
    old: &Snapshot,
    read_again: impl IntoIterator<Item = ReadAgain<'a>>,
    removed: impl IntoIterator<Item = &'a str>,
) -> Cascade {
    let by_id: FxHashMap<&str, usize> = old.objects.iter().enumerate().map(|(i, o)| (o.id.as_str(), i)).collect();
    let mut groups: Vec<u32> = Vec::new();
    let mut listed_dns = Vec::new();
    let mut seen: FxHashSet<&str> = FxHashSet::default();
    for ReadAgain { id, dn: now_dn, primary_group_sid } in read_again {
        seen.insert(id);
        match by_id.get(id).map(|&i| (&old.objects[i], old.member_of(i))) {
            Some((before, groups_before)) if same_dn(&before.dn, now_dn) => {
                if before.primary_group_sid.as_deref() != primary_group_sid {
                    let primary = groups_before.iter().copied().filter(|&g| {
                        old.objects
                            .get(g as usize)
                            .is_some_and(|g| g.sid.is_some() && g.sid == before.primary_group_sid)
                    });
                    groups.extend(primary);
                }
            }
            Some((_, groups_before)) => {
                groups.extend(groups_before);
                listed_dns.push(now_dn.to_owned());
            }
            None => listed_dns.push(now_dn.to_owned()),
        }
    }
    for id in removed {
        seen.insert(id);
        if let Some(&i) = by_id.get(id) {
            groups.extend(old.member_of(i));
        }
    }
    groups.sort_unstable();
    groups.dedup();
    let groups = groups
        .into_iter()
        .filter_map(|g| old.objects.get(g as usize))
        .filter(|g| g.kind == ObjectKind::Group && !seen.contains(g.id.as_str()))
        .map(|g| g.id.clone())
        .collect();
    Cascade { groups, listed_dns }
}

fn same_dn(a: &str, b: &str) -> bool {
    match (dn::normalize(a), dn::normalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// An RFC 4533 entryUUID (16 bytes) in its text form, as the `entryUUID` attribute reads.
pub fn uuid_text(bytes: &[u8]) -> Option<String> {
    if bytes.len() != 16 {
        return None;
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Some(format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..]))
}

/// The 16 bytes of an objectGUID from its text form ([`super::snapshot::format_guid`]'s
/// inverse); `None` when `text` is not a GUID.
pub fn guid_bytes(text: &str) -> Option<[u8; 16]> {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || text.len() != 36 {
        return None;
    }
    let mut raw = [0u8; 16];
    for (i, byte) in raw.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    // The first three fields are little-endian on the wire.
    let order = [3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15];
    let mut out = [0u8; 16];
    for (wire, text_at) in order.iter().enumerate() {
        out[wire] = raw[*text_at];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::snapshot::format_guid;

    fn state(plan: &str, full_at: i64) -> SyncState {
        SyncState {
            tracking: ChangeTracking::Syncrepl,
            server: "ldap1:389".into(),
            server_identity: String::new(),
            schema: "20261201000000Z".into(),
            plan: plan.into(),
            watermark: Watermark::Cookie(b"rid=001,csn=1".to_vec()),
            full_at,
        }
    }

    #[test]
    fn a_delta_needs_state_of_the_same_plan_within_the_interval() {
        let s = state("p1", 1_000);
        assert_eq!(plan_next(None, "p1", 86_400, false, 2_000), Err(FullReason::NoState));
        assert_eq!(plan_next(Some(&s), "p1", 86_400, true, 2_000), Err(FullReason::Configured));
        assert_eq!(plan_next(Some(&s), "p2", 86_400, false, 2_000), Err(FullReason::SpecChanged));
        assert_eq!(plan_next(Some(&s), "p1", 86_400, false, 1_000 + 86_400), Err(FullReason::Periodic));
        assert_eq!(plan_next(Some(&s), "p1", 86_400, false, 1_000 + 86_399), Ok(&s));
        assert_eq!(plan_next(Some(&s), "p1", 0, false, i64::MAX), Ok(&s), "0 turns the periodic full sync off");
    }

    #[test]
    fn guids_round_trip_through_their_text_form() {
        let wire: Vec<u8> = (1..=16).collect();
        let text = format_guid(&wire);
        assert_eq!(guid_bytes(&text), Some(<[u8; 16]>::try_from(wire.as_slice()).expect("16")));
        for bad in ["", "not-a-guid", "0102030405060708090a0b0c0d0e0f10", "zz020304-0506-0708-090a-0b0c0d0e0f10"] {
            assert_eq!(guid_bytes(bad), None, "{bad}");
        }
        assert_eq!(uuid_text(&wire).as_deref(), Some("01020304-0506-0708-090a-0b0c0d0e0f10"));
        assert_eq!(uuid_text(&wire[..15]), None);
    }

    #[test]
    fn the_fingerprint_follows_what_is_read() {
        let spec: crate::api::LdapConnectionSpec = serde_json::from_value(serde_json::json!({
            "domain": "corp.test", "searchBase": "DC=corp,DC=test", "auth": {}
        }))
        .expect("spec");
        let plan = crate::domain::profile::read_plan(&spec).expect("plan");
        let one = plan_fingerprint("DC=corp,DC=test", &plan);
        assert_eq!(one, plan_fingerprint("DC=corp,DC=test", &plan));
        assert_ne!(one, plan_fingerprint("OU=Staff,DC=corp,DC=test", &plan));
        let mut other = plan.clone();
        other.queries[0].attributes.push("department".into());
        assert_ne!(one, plan_fingerprint("DC=corp,DC=test", &other));
    }

    /// A directory as tests change it: objects by id with the attributes the builder reads.
    #[derive(Clone)]
    struct Model {
        objects: Vec<ModelObject>,
        /// Deleting an object removes it from the groups that list it (AD's linked values,
        /// slapd's refint), or leaves dangling DNs behind (slapd without refint).
        referential_integrity: bool,
    }

    #[derive(Clone)]
    struct ModelObject {
        id: u32,
        kind: ObjectKind,
        dn: String,
        name: String,
        members: Vec<String>,
        primary_rid: Option<u32>,
    }

    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n.max(1) as u64) as usize
        }
    }

    fn sid(rid: u32) -> Vec<u8> {
        let mut out = vec![1, 4, 0, 0, 0, 0, 0, 5, 21, 0, 0, 0, 7, 0, 0, 0, 9, 0, 0, 0];
        out.extend(rid.to_le_bytes());
        out
    }

    impl ModelObject {
        fn entry(&self) -> crate::domain::snapshot::RawEntry {
            use crate::domain::snapshot::{RawAttribute, RawEntry};
            let text = |name: &str, values: Vec<String>| RawAttribute { name: name.into(), values, binary: Vec::new() };
            let bytes = |name: &str, value: Vec<u8>| RawAttribute {
                name: name.into(),
                values: Vec::new(),
                binary: vec![value],
            };
            let mut guid = [0u8; 16];
            guid[..4].copy_from_slice(&self.id.to_le_bytes());
            let mut attributes = vec![
                bytes("objectGUID", guid.to_vec()),
                bytes("objectSid", sid(1000 + self.id)),
                text("sAMAccountName", vec![self.name.clone()]),
                text("mail", vec![format!("{}@corp.test", self.name)]),
            ];
            if self.kind == ObjectKind::Group {
                attributes.push(text("member", self.members.clone()));
            }
            if let Some(rid) = self.primary_rid {
                attributes.push(text("primaryGroupID", vec![rid.to_string()]));
            }
            RawEntry { dn: self.dn.clone(), attributes }
        }
    }

    fn read(
        entries: impl IntoIterator<Item = (ObjectKind, crate::domain::snapshot::RawEntry)>,
        old: Option<(&Snapshot, &FxHashSet<&str>)>,
    ) -> Snapshot {
        use crate::domain::snapshot::{AttributeNames, ConnectionRef, Origin, SnapshotBuilder};
        let mut builder = SnapshotBuilder::new(AttributeNames::active_directory(vec!["mail".into()]));
        let mut entries: Vec<_> = entries.into_iter().collect();
        // The read plan's order: users, then groups.
        entries.sort_by_key(|(kind, _)| *kind);
        for (kind, entry) in entries {
            builder.add(kind, entry).expect("entry");
        }
        match old {
            Some((old, reread)) => builder
                .apply_to(
                    old,
                    reread,
                    Origin {
                        connection: ConnectionRef::default(),
                        domain: "corp.test",
                        search_base: "OU=In,DC=corp",
                        server: "dc1",
                        taken_at: 0,
                    },
                )
                .expect("applied"),
            None => builder.finish(ConnectionRef::default(), "corp.test", "OU=In,DC=corp", "dc1", 0),
        }
    }

    impl Model {
        fn in_base(&self) -> impl Iterator<Item = &ModelObject> {
            self.objects.iter().filter(|o| o.dn.ends_with(",OU=In,DC=corp"))
        }

        fn full(&self) -> Snapshot {
            read(self.in_base().map(|o| (o.kind, o.entry())), None)
        }

        /// One random change; returns the ids it touched (what a USN search or a syncrepl
        /// refresh reports) and whether each still exists.
        fn change(&mut self, rng: &mut Rng, next_id: &mut u32) -> Vec<u32> {
            let dns: Vec<String> = self.objects.iter().map(|o| o.dn.clone()).collect();
            let groups: Vec<usize> =
                (0..self.objects.len()).filter(|&i| self.objects[i].kind == ObjectKind::Group).collect();
            let pick = |rng: &mut Rng, n: usize| rng.below(n);
            let at = pick(rng, self.objects.len());
            match rng.below(9) {
                0 => {
                    *next_id += 1;
                    let kind = if rng.below(3) == 0 { ObjectKind::Group } else { ObjectKind::User };
                    let place = if rng.below(4) == 0 { "OU=Out" } else { "OU=In" };
                    self.objects.push(ModelObject {
                        id: *next_id,
                        kind,
                        dn: format!("CN=o{next_id},{place},DC=corp"),
                        name: format!("o{next_id}"),
                        members: Vec::new(),
                        primary_rid: (kind == ObjectKind::User && rng.below(2) == 0)
                            .then(|| 1000 + groups.first().map_or(0, |&g| self.objects[g].id)),
                    });
                    vec![*next_id]
                }
                1 => {
                    self.objects[at].name = format!("renamed{}", rng.below(1000));
                    vec![self.objects[at].id]
                }
                2 | 3 => {
                    // A rename or a move in or out of the base.
                    let place = if rng.below(2) == 0 { "OU=Out" } else { "OU=In" };
                    let cn = if rng.below(3) == 0 {
                        format!("x{}", rng.below(50))
                    } else {
                        format!("o{}", self.objects[at].id)
                    };
                    let new_dn = format!("CN={cn},{place},DC=corp");
                    if dns.contains(&new_dn) {
                        return Vec::new();
                    }
                    let old_dn = std::mem::replace(&mut self.objects[at].dn, new_dn.clone());
                    let mut touched = vec![self.objects[at].id];
                    if self.referential_integrity {
                        for g in &mut self.objects {
                            for m in &mut g.members {
                                if *m == old_dn {
                                    *m = new_dn.clone();
                                    touched.push(g.id);
                                }
                            }
                        }
                    }
                    touched
                }
                4 => {
                    let gone = self.objects.remove(at);
                    let mut touched = vec![gone.id];
                    if self.referential_integrity {
                        for g in &mut self.objects {
                            let before = g.members.len();
                            g.members.retain(|m| *m != gone.dn);
                            if g.members.len() != before {
                                touched.push(g.id);
                            }
                        }
                    }
                    touched
                }
                5 | 6 => {
                    let Some(&g) = groups.get(pick(rng, groups.len())) else { return Vec::new() };
                    // Listed by DN, sometimes spelt in another case, sometimes of nothing.
                    let member = match rng.below(5) {
                        0 => format!("CN=ghost{},OU=In,DC=corp", rng.below(5)),
                        1 => dns[pick(rng, dns.len())].to_uppercase(),
                        _ => dns[pick(rng, dns.len())].clone(),
                    };
                    if !self.objects[g].members.contains(&member) {
                        self.objects[g].members.push(member);
                    }
                    vec![self.objects[g].id]
                }
                7 => {
                    let Some(&g) = groups.get(pick(rng, groups.len())) else { return Vec::new() };
                    let n = self.objects[g].members.len();
                    if n > 0 {
                        self.objects[g].members.remove(pick(rng, n));
                    }
                    vec![self.objects[g].id]
                }
                _ => {
                    let Some(&g) = groups.get(pick(rng, groups.len())) else { return Vec::new() };
                    let rid = 1000 + self.objects[g].id;
                    let o = &mut self.objects[at];
                    if o.kind != ObjectKind::User {
                        return Vec::new();
                    }
                    o.primary_rid = Some(rid);
                    vec![o.id]
                }
            }
        }

        /// The delta a sync derives from the touched ids, read as the server would answer.
        fn delta(&self, old: &Snapshot, touched: &FxHashSet<u32>) -> Snapshot {
            let guid = |id: u32| {
                let mut g = [0u8; 16];
                g[..4].copy_from_slice(&id.to_le_bytes());
                crate::domain::snapshot::format_guid(&g)
            };
            let by_guid = |text: &str| self.in_base().find(|o| guid(o.id) == text);
            let mut read_ids: Vec<String> = touched.iter().map(|&id| guid(id)).collect();
            let found: Vec<&ModelObject> = read_ids.iter().filter_map(|id| by_guid(id)).collect();
            let removed: Vec<String> = read_ids.iter().filter(|id| by_guid(id).is_none()).cloned().collect();
            let found_ids: Vec<(String, Option<Vec<u8>>)> =
                found.iter().map(|o| (guid(o.id), o.primary_rid.map(sid))).collect();
            let again = found.iter().zip(&found_ids).map(|(o, (id, primary))| ReadAgain {
                id,
                dn: &o.dn,
                primary_group_sid: primary.as_deref(),
            });
            let more = cascade(old, again, removed.iter().map(String::as_str));
            let mut entries: Vec<&ModelObject> = found;
            for id in &more.groups {
                read_ids.push(id.clone());
                entries.extend(by_guid(id));
            }
            let listed: FxHashSet<String> = more.listed_dns.iter().map(|d| dn::normalize(d).expect("dn")).collect();
            for g in self.in_base().filter(|o| o.kind == ObjectKind::Group) {
                if g.members.iter().any(|m| listed.contains(&dn::normalize(m).expect("dn"))) {
                    read_ids.push(guid(g.id));
                    entries.push(g);
                }
            }
            let mut seen = FxHashSet::default();
            entries.retain(|o| seen.insert(o.id));
            let reread: FxHashSet<&str> = read_ids.iter().map(String::as_str).collect();
            read(entries.iter().map(|o| (o.kind, o.entry())), Some((old, &reread)))
        }
    }

    /// A directory of `size` objects; each group lists every `spread`-th object before it.
    fn initial(size: u32, spread: u32, referential_integrity: bool) -> Model {
        let mut model = Model { objects: Vec::new(), referential_integrity };
        for id in 1..=size {
            let kind = if id % 4 == 0 { ObjectKind::Group } else { ObjectKind::User };
            let place = if id % 5 == 0 { "OU=Out" } else { "OU=In" };
            model.objects.push(ModelObject {
                id,
                kind,
                dn: format!("CN=o{id},{place},DC=corp"),
                name: format!("o{id}"),
                members: (1..id)
                    .filter(|m| (m + id) % spread == 0)
                    .map(|m| format!("CN=o{m},{},DC=corp", if m % 5 == 0 { "OU=Out" } else { "OU=In" }))
                    .collect(),
                primary_rid: (kind == ObjectKind::User && id % 3 == 0).then_some(1004),
            });
        }
        model
    }

    fn deltas_give_the_full_read(seeds: std::ops::RangeInclusive<u64>, size: u32, spread: u32) {
        for seed in seeds {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let mut model = initial(size, spread, seed % 2 == 0);
            let mut next_id = size + 100;
            let mut served = model.full();
            for step in 0..25 {
                let mut touched = FxHashSet::default();
                for _ in 0..=rng.below(3) {
                    touched.extend(model.change(&mut rng, &mut next_id));
                }
                let incremental = model.delta(&served, &touched);
                let full = model.full();
                assert_eq!(incremental, full, "seed {seed}, step {step}: the delta differs from a full read");
                served = incremental;
            }
        }
    }

    #[test]
    fn random_changes_applied_as_deltas_give_the_full_read() {
        deltas_give_the_full_read(1..=300, 12, 3);
    }

    /// Big enough that a group read again lists more members than a delta looks up one by one.
    #[test]
    fn random_changes_to_a_larger_directory_give_the_full_read() {
        deltas_give_the_full_read(1..=8, 300, 3);
    }
}
