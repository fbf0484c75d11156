//! The snapshot: every cached object of one connection, its addresses and group memberships,
//! built from directory entries in a deterministic order.

use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::address::AddressSet;
use super::dn;
use super::incremental::SyncState;

/// What kind of directory object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ObjectKind {
    User,
    Contact,
    Group,
    /// An object of another mail-enabled class of `spec.mailObjectClasses` (a public folder, a
    /// dynamic distribution list). Last, so that snapshots written before it still decode.
    Recipient,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Contact => "contact",
            Self::Group => "group",
            Self::Recipient => "recipient",
        }
    }
}

/// One cached object. Its groups are kept beside it in [`Snapshot::memberships`]: they are
/// indices that shift when objects come or go, the object itself does not change, so a delta
/// shares every object it did not read again with the snapshot it applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirObject {
    pub kind: ObjectKind,
    /// The DN as the directory returned it.
    pub dn: String,
    /// objectGUID (as a GUID string) or entryUUID; the normalised DN when the directory has neither.
    pub id: String,
    /// sAMAccountName (AD) or the mapped user-name attribute.
    pub account_name: Option<String>,
    /// userPrincipalName (AD).
    pub principal_name: Option<String>,
    pub display_name: Option<String>,
    /// userAccountControl has ACCOUNTDISABLE (AD users only).
    pub disabled: bool,
    pub primary_address: Option<String>,
    /// Normalised, sorted, distinct.
    pub addresses: Vec<String>,
    /// AD objectSid of a group: what users' `primaryGroupID` points to.
    pub sid: Option<Vec<u8>>,
    /// AD: the SID of a user's primary group (a membership no `member` list shows).
    pub primary_group_sid: Option<Vec<u8>>,
}

/// Which connection a snapshot belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ConnectionRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// A complete, consistent picture of one connection's directory. Stored as [`stored`] says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub connection: ConnectionRef,
    pub domain: String,
    pub search_base: String,
    /// Unix seconds when the read finished.
    pub taken_at: i64,
    /// The server that served the read.
    pub server: String,
    /// Sorted by normalised DN.
    pub objects: Vec<Arc<DirObject>>,
    /// The direct groups of each object.
    pub memberships: Memberships,
    /// Group members that are not objects of this snapshot (outside the base, foreign principals).
    pub unresolved_members: u64,
    /// Those members by DN, with their group: another connection of the same domain served
    /// beside this one may hold them (the index links them).
    pub foreign_members: Vec<ForeignMember>,
    /// Where the directory's change tracking stood when this content was read: what the next
    /// incremental sync asks from. Not content: left out of the content hash.
    pub sync_state: Option<SyncState>,
}

/// The direct groups of every object of a snapshot, as indices into [`Snapshot::objects`], in one
/// table (no allocation per object).
#[derive(Debug, Clone, Default)]
pub struct Memberships {
    /// Object `i`'s groups are `groups[offsets[i]..offsets[i + 1]]`; empty when no object has any.
    offsets: Vec<usize>,
    groups: Vec<u32>,
}

impl Memberships {
    /// From each object's groups, in object order.
    pub fn from_lists<L: AsRef<[u32]>>(lists: impl IntoIterator<Item = L>) -> Self {
        let mut out = Self::default();
        for list in lists {
            out.push(list.as_ref());
        }
        out
    }

    /// Appends the next object's groups: sorted, each once.
    pub fn push(&mut self, groups: &[u32]) {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        let start = self.groups.len();
        self.groups.extend_from_slice(groups);
        let added = &mut self.groups[start..];
        if !added.is_sorted_by(|a, b| a < b) {
            added.sort_unstable();
            let mut kept = start;
            for at in start..self.groups.len() {
                if kept == start || self.groups[kept - 1] != self.groups[at] {
                    self.groups[kept] = self.groups[at];
                    kept += 1;
                }
            }
            self.groups.truncate(kept);
        }
        self.offsets.push(self.groups.len());
    }

    /// From (member, group) pairs, sorted and each once, of `objects` objects.
    fn from_sorted_pairs(pairs: &[(u32, u32)], objects: usize) -> Self {
        let mut offsets = Vec::with_capacity(objects + 1);
        let mut groups = Vec::with_capacity(pairs.len());
        offsets.push(0);
        let mut next = 0;
        for object in 0..objects as u32 {
            while let Some(&(member, group)) = pairs.get(next)
                && member == object
            {
                groups.push(group);
                next += 1;
            }
            offsets.push(groups.len());
        }
        Self { offsets, groups }
    }

    /// Object `object`'s direct groups, sorted.
    pub fn of(&self, object: usize) -> &[u32] {
        match (self.offsets.get(object), self.offsets.get(object + 1)) {
            (Some(&start), Some(&end)) => &self.groups[start..end],
            _ => &[],
        }
    }

    /// Memberships of every object together.
    pub fn total(&self) -> usize {
        self.groups.len()
    }

    /// Objects that have a row (trailing objects without groups may have none).
    fn rows(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }
}

/// Equal when every object has the same groups, however the rows were laid out.
impl PartialEq for Memberships {
    fn eq(&self, other: &Self) -> bool {
        (0..self.rows().max(other.rows())).all(|at| self.of(at) == other.of(at))
    }
}

impl Eq for Memberships {}

/// A group member that is not an object of its group's snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignMember {
    /// The group, an index into [`Snapshot::objects`].
    pub group: u32,
    /// The member's DN as the group lists it.
    pub dn: String,
}

/// Object counts of a snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub users: u64,
    pub contacts: u64,
    pub groups: u64,
    /// Objects of `spec.mailObjectClasses`.
    pub recipients: u64,
    pub addresses: u64,
}

impl Snapshot {
    pub fn counts(&self) -> Counts {
        let mut c = Counts::default();
        for o in &self.objects {
            match o.kind {
                ObjectKind::User => c.users += 1,
                ObjectKind::Contact => c.contacts += 1,
                ObjectKind::Group => c.groups += 1,
                ObjectKind::Recipient => c.recipients += 1,
            }
            c.addresses += o.addresses.len() as u64;
        }
        c
    }

    /// Every group `index` belongs to, directly or through nested groups; cycles are safe.
    pub fn transitive_groups(&self, index: usize) -> Vec<u32> {
        let mut out: Vec<u32> = Vec::new();
        let mut stack: Vec<u32> = self.member_of(index).to_vec();
        // Objects belong to few groups: a linear check of `out` beats a set sized to the snapshot.
        while let Some(g) = stack.pop() {
            let gi = g as usize;
            if gi >= self.objects.len() || gi == index || out.contains(&g) {
                continue;
            }
            out.push(g);
            stack.extend(self.member_of(gi).iter().copied());
        }
        out.sort_unstable();
        out
    }

    /// Object `index`'s direct groups, sorted.
    pub fn member_of(&self, index: usize) -> &[u32] {
        self.memberships.of(index)
    }
}

/// An entry as read from the directory: its DN and its attributes in the order the server sent
/// them (an entry has a handful, so a scan beats a map).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawEntry {
    pub dn: String,
    pub attributes: Vec<RawAttribute>,
}

/// One attribute of an entry. Values that are all UTF-8 are text; an attribute with any other
/// value (objectGUID, for one) keeps all its values as bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawAttribute {
    pub name: String,
    pub values: Vec<String>,
    pub binary: Vec<Vec<u8>>,
}

impl RawEntry {
    fn attribute(&self, name: &str) -> Option<&RawAttribute> {
        self.attributes.iter().find(|a| a.name.eq_ignore_ascii_case(name))
    }

    /// Text values of `name`, compared case-insensitively as LDAP attribute names are.
    pub fn values(&self, name: &str) -> &[String] {
        self.attribute(name).map_or(&[], |a| a.values.as_slice())
    }

    pub fn first(&self, name: &str) -> Option<&str> {
        self.values(name).first().map(String::as_str)
    }

    fn binary(&self, name: &str) -> Option<&[u8]> {
        self.attribute(name).and_then(|a| a.binary.first()).map(Vec::as_slice)
    }

    /// The first value of `name` as bytes, whether it arrived as bytes or (being valid UTF-8) as text.
    fn bytes(&self, name: &str) -> Option<&[u8]> {
        self.binary(name).or_else(|| self.first(name).map(str::as_bytes))
    }
}

/// Attribute names the builder reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeNames {
    pub id: String,
    pub account_name: String,
    pub principal_name: Option<String>,
    pub display_name: String,
    /// userAccountControl, for AD.
    pub account_control: Option<String>,
    /// Group membership attributes (`member`, `uniqueMember`).
    pub members: Vec<String>,
    /// AD's primary group: `objectSid` of users and groups and `primaryGroupID` of users, the RID
    /// of the group in the user's domain (a membership `member` does not list).
    pub primary_group: Option<PrimaryGroupNames>,
    /// Email attributes in order; `proxyAddresses` is parsed by type.
    pub email: Vec<String>,
}

impl AttributeNames {
    /// Active Directory's attributes, with the given email attributes.
    pub fn active_directory(email: Vec<String>) -> Self {
        Self {
            id: "objectGUID".into(),
            account_name: "sAMAccountName".into(),
            principal_name: Some("userPrincipalName".into()),
            display_name: "displayName".into(),
            account_control: Some("userAccountControl".into()),
            members: vec!["member".into()],
            primary_group: Some(PrimaryGroupNames { sid: "objectSid".into(), group_id: "primaryGroupID".into() }),
            email,
        }
    }
}

/// The attributes that carry AD's primary-group membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrimaryGroupNames {
    pub sid: String,
    pub group_id: String,
}

/// A binary SID (revision, sub-authority count, 48-bit authority, 32-bit little-endian
/// sub-authorities) with its last sub-authority replaced by `rid`: the SID of a user's primary
/// group from the user's own SID. `None` when `sid` is not a well-formed SID.
pub fn sid_with_rid(sid: &[u8], rid: u32) -> Option<Vec<u8>> {
    let count = usize::from(*sid.get(1)?);
    if sid.first() != Some(&1) || count == 0 || sid.len() != 8 + 4 * count {
        return None;
    }
    let mut out = sid[..sid.len() - 4].to_vec();
    out.extend_from_slice(&rid.to_le_bytes());
    Some(out)
}

/// A `member;range=START-END` attribute name, END `None` for `*` (the last range).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueRange {
    pub start: u32,
    pub end: Option<u32>,
}

/// Parses `name` as `<attr>;range=<start>-<end|*>` for attribute `attr`.
pub fn parse_range_attribute(name: &str, attr: &str) -> Option<ValueRange> {
    let (base, option) = name.split_once(';')?;
    if !base.eq_ignore_ascii_case(attr) {
        return None;
    }
    let range = option.get(..6).filter(|p| p.eq_ignore_ascii_case("range="))?;
    let (start, end) = option[range.len()..].split_once('-')?;
    let start = start.parse().ok()?;
    let end = if end == "*" { None } else { Some(end.parse().ok()?) };
    Some(ValueRange { start, end })
}

/// A group whose `member` values were cut off: ask for `<attr>;range=<next>-*` next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRange {
    pub group_dn: String,
    pub attr: String,
    pub next: u32,
}

/// Why an entry could not be taken into a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("the directory returned an entry with an unparsable DN {dn:?}: {reason}")]
    BadDn { dn: String, reason: String },
}

/// Objects per storage chunk of the builder.
const CHUNK: usize = 4096;

/// Builds a snapshot one entry at a time, so memory holds objects, not raw pages.
pub struct SnapshotBuilder {
    names: AttributeNames,
    /// Fixed-size chunks: no doubling slack and no copy of every object when the store grows.
    chunks: Vec<Vec<DirObject>>,
    count: usize,
    /// Normalised DN -> index into `objects`; the only copy of each key.
    by_dn: FxHashMap<String, u32>,
    /// (member, group) index pairs of members already read.
    memberships: Vec<(u32, u32)>,
    /// Member DNs not read yet (nested groups read later, or objects outside the sync), by group;
    /// resolved in `finish`.
    pending_members: Vec<(u32, String)>,
}

impl SnapshotBuilder {
    pub fn new(names: AttributeNames) -> Self {
        Self {
            names,
            chunks: Vec::new(),
            count: 0,
            by_dn: FxHashMap::default(),
            memberships: Vec::new(),
            pending_members: Vec::new(),
        }
    }

    /// Number of objects taken so far (progress reporting).
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The objects taken so far, in the order they were taken (without memberships yet).
    pub fn objects(&self) -> impl Iterator<Item = &DirObject> {
        self.chunks.iter().flatten()
    }

    /// Takes one entry of `kind`. For a group whose member list was cut into ranges, returns what
    /// to ask for next. An entry seen twice (overlapping filters) is kept once.
    pub fn add(&mut self, kind: ObjectKind, mut entry: RawEntry) -> Result<Vec<PendingRange>, SnapshotError> {
        let key = dn::normalize(&entry.dn)
            .map_err(|e| SnapshotError::BadDn { dn: entry.dn.clone(), reason: e.to_string() })?;
        // One hash of the key for the check and the insert.
        let slot = match self.by_dn.entry(key) {
            std::collections::hash_map::Entry::Occupied(_) => return Ok(Vec::new()),
            std::collections::hash_map::Entry::Vacant(slot) => slot,
        };
        let n = &self.names;
        let mut addresses = AddressSet::default();
        for attr in &n.email {
            let proxy = attr.eq_ignore_ascii_case("proxyAddresses");
            addresses.add_values(proxy, entry.values(attr).iter().map(String::as_str));
        }
        let (primary_address, addresses) = addresses.finish();
        let id = match entry.binary(&n.id) {
            Some(bytes) if bytes.len() == 16 => format_guid(bytes),
            Some(bytes) => bytes.iter().map(|b| format!("{b:02x}")).collect(),
            // A GUID whose bytes happen to be valid UTF-8 arrives as text.
            None => match entry.first(&n.id) {
                Some(text) if text.len() == 16 && n.id.eq_ignore_ascii_case("objectGUID") => {
                    format_guid(text.as_bytes())
                }
                Some(text) => text.to_owned(),
                None => slot.key().clone(),
            },
        };
        let index = self.count as u32;
        slot.insert(index);
        let disabled = kind == ObjectKind::User
            && n.account_control
                .as_deref()
                .and_then(|a| entry.first(a))
                .and_then(|v| v.trim().parse::<i64>().ok())
                .is_some_and(|uac| uac & 2 != 0);
        let (mut sid, mut primary_group_sid) = (None, None);
        if let Some(names) = &n.primary_group {
            let own = entry.bytes(&names.sid);
            match kind {
                ObjectKind::Group => sid = own.map(<[u8]>::to_vec),
                ObjectKind::User => {
                    let rid = entry.first(&names.group_id).and_then(|v| v.trim().parse::<u32>().ok());
                    primary_group_sid = own.zip(rid).and_then(|(own, rid)| sid_with_rid(own, rid));
                }
                ObjectKind::Contact | ObjectKind::Recipient => {}
            }
        }
        let mut pending = Vec::new();
        let mut members = Vec::new();
        if kind == ObjectKind::Group {
            for attr in &n.members {
                for found in entry.attributes.iter_mut().filter(|a| is_member_attribute(&a.name, attr)) {
                    if let Some(range) = parse_range_attribute(&found.name, attr).and_then(|r| r.end) {
                        pending.push(PendingRange { group_dn: entry.dn.clone(), attr: attr.clone(), next: range + 1 });
                    }
                    members.append(&mut found.values);
                }
            }
        }
        let object = DirObject {
            kind,
            id,
            account_name: entry.first(&n.account_name).map(str::to_owned),
            principal_name: n.principal_name.as_deref().and_then(|a| entry.first(a)).map(str::to_owned),
            display_name: entry.first(&n.display_name).map(str::to_owned),
            disabled,
            primary_address,
            addresses,
            sid,
            primary_group_sid,
            dn: entry.dn,
        };
        self.push(object);
        if kind == ObjectKind::Group {
            self.add_members(index, members);
        }
        Ok(pending)
    }

    fn push(&mut self, object: DirObject) {
        match self.chunks.last_mut() {
            Some(chunk) if chunk.len() < CHUNK => chunk.push(object),
            _ => {
                let mut chunk = Vec::with_capacity(CHUNK);
                chunk.push(object);
                self.chunks.push(chunk);
            }
        }
        self.count += 1;
    }

    fn add_members(&mut self, group: u32, members: Vec<String>) {
        let mut key = String::new();
        for member in members {
            match dn::normalize_into(&member, &mut key).ok().and_then(|()| self.by_dn.get(key.as_str()).copied()) {
                Some(m) => self.memberships.push((m, group)),
                None => self.pending_members.push((group, member)),
            }
        }
    }

    /// Adds member values fetched by a ranged read. Returns the next range to ask for, if any.
    pub fn add_range(&mut self, pending: &PendingRange, entry: RawEntry) -> Option<PendingRange> {
        let key = dn::normalize(&pending.group_dn).ok()?;
        let index = *self.by_dn.get(&key)?;
        let mut next = None;
        for attribute in entry.attributes {
            if let Some(range) = parse_range_attribute(&attribute.name, &pending.attr) {
                self.add_members(index, attribute.values);
                next = range.end.map(|end| PendingRange { next: end + 1, ..pending.clone() });
            }
        }
        next
    }

    /// Resolves member DNs to objects, sorts objects by normalised DN and returns the snapshot.
    pub fn finish(
        self,
        connection: ConnectionRef,
        domain: &str,
        search_base: &str,
        server: &str,
        taken_at: i64,
    ) -> Snapshot {
        let Self { chunks, count, by_dn, mut memberships, pending_members, .. } = self;
        let mut key = String::new();
        let mut foreign = Vec::new();
        for (group, member) in pending_members {
            match dn::normalize_into(&member, &mut key).ok().and_then(|()| by_dn.get(key.as_str()).copied()) {
                Some(m) => memberships.push((m, group)),
                None => foreign.push((group, member)),
            }
        }
        // A primary group outside the sync (another base, a filtered group) is no member value
        // that went unresolved: it is simply not cached.
        let group_sids: FxHashMap<&[u8], u32> = chunks
            .iter()
            .flatten()
            .enumerate()
            .filter_map(|(at, o)| Some((o.sid.as_deref().filter(|_| o.kind == ObjectKind::Group)?, at as u32)))
            .collect();
        for (at, object) in chunks.iter().flatten().enumerate() {
            if let Some(group) = object.primary_group_sid.as_deref().and_then(|sid| group_sids.get(sid)) {
                memberships.push((at as u32, *group));
            }
        }
        drop(group_sids);
        let mut order: Vec<(String, u32)> = by_dn.into_iter().collect();
        order.sort_unstable();
        // target[read] = position in DN order.
        let mut target = vec![0u32; order.len()];
        for (new, (_, old)) in order.iter().enumerate() {
            target[*old as usize] = new as u32;
        }
        drop(order);
        let mut objects: Vec<Arc<DirObject>> = Vec::with_capacity(count);
        for chunk in chunks {
            objects.extend(chunk.into_iter().map(Arc::new));
        }
        for pair in &mut memberships {
            *pair = (target[pair.0 as usize], target[pair.1 as usize]);
        }
        memberships.sort_unstable();
        memberships.dedup();
        let memberships = Memberships::from_sorted_pairs(&memberships, count);
        let unresolved_members = foreign.len() as u64;
        let foreign_members = sorted_foreign(foreign.into_iter().map(|(group, dn)| (target[group as usize], dn)));
        // Permuted in place: moving pointers, not objects.
        for i in 0..objects.len() {
            while target[i] as usize != i {
                let j = target[i] as usize;
                objects.swap(i, j);
                target.swap(i, j);
            }
        }
        Snapshot {
            connection,
            domain: domain.to_owned(),
            search_base: search_base.to_owned(),
            taken_at,
            server: server.to_owned(),
            objects,
            memberships,
            unresolved_members,
            foreign_members,
            sync_state: None,
        }
    }
}

/// Foreign members in their stored order: by group, then DN.
fn sorted_foreign(members: impl IntoIterator<Item = (u32, String)>) -> Vec<ForeignMember> {
    let mut out: Vec<ForeignMember> = members.into_iter().map(|(group, dn)| ForeignMember { group, dn }).collect();
    out.sort_unstable_by(|a, b| (a.group, &a.dn).cmp(&(b.group, &b.dn)));
    out
}

/// Whether `group` is `member`'s AD primary group (a membership derived from SIDs, not listed).
fn is_primary_group(member: &DirObject, group: &DirObject) -> bool {
    member.primary_group_sid.is_some() && member.primary_group_sid == group.sid
}

fn is_member_attribute(name: &str, attr: &str) -> bool {
    name.eq_ignore_ascii_case(attr) || parse_range_attribute(name, attr).is_some()
}

/// objectGUID bytes as the usual GUID string (first three fields little-endian).
pub fn format_guid(b: &[u8]) -> String {
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
    )
}

#[cfg(test)]
pub(crate) mod tests;

mod apply;
mod stored;

pub use apply::Origin;
pub use stored::StoredObjects;
