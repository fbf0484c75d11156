//! The in-memory index over every snapshot a pod holds: what the gateway's lookups read.
//! Built once per new snapshot set and swapped in whole; lookups never touch LDAP.

use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;

use super::address::lookup_key;
use super::dn;
use super::snapshot::{DirObject, ObjectKind, Snapshot};

/// Where an object lives: snapshot number and object number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Ref {
    snapshot: u32,
    object: u32,
}

/// A group as shown in lookups, borrowed from the index: an answer is serialised, not kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupRef<'a> {
    pub dn: &'a str,
    pub name: Option<&'a str>,
    pub address: Option<&'a str>,
}

/// The answer to an address lookup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AddressAnswer<'a> {
    pub address: String,
    pub kind: &'static str,
    pub dn: &'a str,
    pub display_name: Option<&'a str>,
    /// `namespace/name` of the connection.
    pub connection: &'a str,
    pub disabled: bool,
    /// Every group the object belongs to, directly or through nested groups.
    pub groups: Vec<GroupRef<'a>>,
    /// Other objects holding the same address (a duplicate), as `connection: dn`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub also_held_by: Vec<String>,
}

/// A member in a group listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberRef {
    pub kind: &'static str,
    pub dn: String,
    pub display_name: Option<String>,
    pub address: Option<String>,
}

/// One autocomplete suggestion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Suggestion {
    pub address: String,
    pub display_name: Option<String>,
    pub kind: &'static str,
}

/// Lookups over a set of snapshots.
#[derive(Debug, Default)]
pub struct Index {
    snapshots: Vec<Arc<Snapshot>>,
    /// `namespace/name` of each snapshot's connection, as answers show it.
    connection_names: Vec<String>,
    by_address: FxHashMap<Box<str>, Vec<Ref>>,
    /// The domains of every cached address (what the mail server may call its own).
    domains: FxHashSet<Box<str>>,
    by_dn: FxHashMap<String, Ref>,
    /// Direct members of each group, per snapshot.
    members: Vec<FxHashMap<u32, Vec<u32>>>,
    /// Memberships across snapshots of one domain: a group's members that another connection's
    /// snapshot holds, and the other way round.
    foreign_members: FxHashMap<Ref, Vec<Ref>>,
    foreign_groups: FxHashMap<Ref, Vec<Ref>>,
    /// DNs that more than one snapshot holds: the refs after the one in `by_dn`.
    dn_elsewhere: FxHashMap<String, Vec<Ref>>,
    /// (lowercased key, ref, address) sorted by key: addresses and display names.
    completions: Vec<(Box<str>, Ref, Box<str>)>,
}

/// Which of the objects sharing an address answers for it, best first: the object whose primary
/// address it is, then a user before a group before a contact before another mail-enabled
/// object (mail for a person reaches the person; a contact points elsewhere), then by connection (namespace, name) and DN: the order
/// the index reads objects in, which the stable sort keeps for ties.
fn shared_address_rank(object: &DirObject, address: &str) -> (bool, u8) {
    let primary = object.primary_address.as_deref().is_some_and(|p| lookup_key(p) == address);
    let kind = match object.kind {
        ObjectKind::User => 0,
        ObjectKind::Group => 1,
        ObjectKind::Contact => 2,
        ObjectKind::Recipient => 3,
    };
    (!primary, kind)
}

impl Index {
    /// Builds the index; snapshots are ordered by connection so answers are deterministic.
    pub fn build(mut snapshots: Vec<Arc<Snapshot>>) -> Self {
        snapshots.sort_by(|a, b| {
            (&a.connection.namespace, &a.connection.name).cmp(&(&b.connection.namespace, &b.connection.name))
        });
        let mut index = Index { members: Vec::with_capacity(snapshots.len()), ..Default::default() };
        for (si, snapshot) in snapshots.iter().enumerate() {
            let mut members: FxHashMap<u32, Vec<u32>> = FxHashMap::default();
            for (oi, object) in snapshot.objects.iter().enumerate() {
                let r = Ref { snapshot: si as u32, object: oi as u32 };
                for group in snapshot.member_of(oi) {
                    members.entry(*group).or_default().push(oi as u32);
                }
                for address in &object.addresses {
                    // Snapshots written before domains were kept in A-labels may hold U-labels.
                    let key = lookup_key(address);
                    if let Some((_, domain)) = key.rsplit_once('@')
                        && !index.domains.contains(domain)
                    {
                        index.domains.insert(domain.into());
                    }
                    index.by_address.entry(key.as_ref().into()).or_default().push(r);
                    index.completions.push((address.as_str().into(), r, address.as_str().into()));
                }
                if let (Some(primary), Some(name)) = (&object.primary_address, &object.display_name) {
                    index.completions.push((name.to_lowercase().into(), r, primary.as_str().into()));
                }
                if let Ok(key) = dn::normalize(&object.dn) {
                    match index.by_dn.entry(key) {
                        std::collections::hash_map::Entry::Vacant(slot) => {
                            slot.insert(r);
                        }
                        // The same DN in another connection (another directory, or overlapping
                        // bases): lookups by DN answer the first; member links look at all.
                        std::collections::hash_map::Entry::Occupied(slot) => {
                            index.dn_elsewhere.entry(slot.key().clone()).or_default().push(r);
                        }
                    }
                }
            }
            index.members.push(members);
        }
        index.completions.sort_unstable_by(|a, b| (&a.0, &a.2).cmp(&(&b.0, &b.2)));
        index.link_foreign_members(&snapshots);
        for (address, refs) in index.by_address.iter_mut().filter(|(_, refs)| refs.len() > 1) {
            refs.sort_by_cached_key(|r| {
                let object = &snapshots[r.snapshot as usize].objects[r.object as usize];
                shared_address_rank(object, address)
            });
        }
        index.connection_names =
            snapshots.iter().map(|s| format!("{}/{}", s.connection.namespace, s.connection.name)).collect();
        index.snapshots = snapshots;
        index
    }

    /// Resolves each snapshot's members outside it against the other snapshots of its domain (a
    /// sibling connection of the same directory may hold them).
    fn link_foreign_members(&mut self, snapshots: &[Arc<Snapshot>]) {
        for (si, snapshot) in snapshots.iter().enumerate() {
            for foreign in &snapshot.foreign_members {
                let Ok(key) = dn::normalize(&foreign.dn) else { continue };
                let candidates =
                    self.by_dn.get(&key).into_iter().chain(self.dn_elsewhere.get(&key).into_iter().flatten());
                let found = candidates.copied().find(|m| {
                    m.snapshot as usize != si
                        && snapshots[m.snapshot as usize].domain.eq_ignore_ascii_case(&snapshot.domain)
                });
                let Some(member) = found else { continue };
                let group = Ref { snapshot: si as u32, object: foreign.group };
                self.foreign_members.entry(group).or_default().push(member);
                self.foreign_groups.entry(member).or_default().push(group);
            }
        }
    }

    /// Every group `start` belongs to, directly, through nested groups, as its primary group and
    /// across sibling snapshots of its domain; cycles are safe. Sorted.
    fn transitive_groups(&self, start: Ref) -> Vec<Ref> {
        let mut seen: FxHashSet<Ref> = FxHashSet::default();
        let mut stack = vec![start];
        while let Some(r) = stack.pop() {
            let local = self.snapshots[r.snapshot as usize]
                .member_of(r.object as usize)
                .iter()
                .map(|g| Ref { snapshot: r.snapshot, object: *g });
            let foreign = self.foreign_groups.get(&r).into_iter().flatten().copied();
            for g in local.chain(foreign) {
                if g != start && seen.insert(g) {
                    stack.push(g);
                }
            }
        }
        let mut out: Vec<Ref> = seen.into_iter().collect();
        out.sort_unstable();
        out
    }

    /// The snapshots this index was built from.
    pub fn snapshots(&self) -> &[Arc<Snapshot>] {
        &self.snapshots
    }

    fn object(&self, r: Ref) -> &DirObject {
        &self.snapshots[r.snapshot as usize].objects[r.object as usize]
    }

    fn connection(&self, r: Ref) -> &str {
        &self.connection_names[r.snapshot as usize]
    }

    /// Whether any object holds `address` (case-insensitive): the gateway's "is this ours?".
    pub fn has_address(&self, address: &str) -> bool {
        self.by_address.contains_key(lookup_key(address).as_ref())
    }

    /// The primary address of the object holding `address` (case-insensitive), or the address as
    /// cached when the object has no primary one.
    pub fn primary_address_of(&self, address: &str) -> Option<&str> {
        let (stored, refs) = self.by_address.get_key_value(lookup_key(address).as_ref())?;
        Some(self.object(*refs.first()?).primary_address.as_deref().unwrap_or(stored))
    }

    /// Whether any cached address is in `domain` (case-insensitive).
    pub fn has_domain(&self, domain: &str) -> bool {
        self.domains.contains(lookup_key(domain).as_ref())
    }

    /// The object holding `address` (case-insensitive) with its transitive groups.
    pub fn lookup_address(&self, address: &str) -> Option<AddressAnswer<'_>> {
        let key = lookup_key(address).into_owned();
        let refs = self.by_address.get(key.as_str())?;
        let first = *refs.first()?;
        let object = self.object(first);
        let groups = self
            .transitive_groups(first)
            .into_iter()
            .map(|g| {
                let group = self.object(g);
                GroupRef {
                    dn: &group.dn,
                    name: group.account_name.as_deref().or(group.display_name.as_deref()),
                    address: group.primary_address.as_deref(),
                }
            })
            .collect();
        Some(AddressAnswer {
            address: key,
            kind: object.kind.as_str(),
            dn: &object.dn,
            display_name: object.display_name.as_deref(),
            connection: self.connection(first),
            disabled: object.disabled,
            groups,
            also_held_by: refs[1..]
                .iter()
                .map(|r| format!("{}: {}", self.connection(*r), self.object(*r).dn))
                .collect(),
        })
    }

    /// Members of the group named by its address or DN; `None` when there is no such group.
    pub fn group_members(&self, address_or_dn: &str, transitive: bool) -> Option<Vec<MemberRef>> {
        let group = if address_or_dn.contains('@') && !address_or_dn.contains('=') {
            let refs = self.by_address.get(lookup_key(address_or_dn).as_ref())?;
            *refs.iter().find(|r| self.object(**r).kind == ObjectKind::Group)?
        } else {
            let r = *self.by_dn.get(&dn::normalize(address_or_dn).ok()?)?;
            if self.object(r).kind != ObjectKind::Group {
                return None;
            }
            r
        };
        let mut out: Vec<Ref> = Vec::new();
        let mut seen: FxHashSet<Ref> = FxHashSet::from_iter([group]);
        let mut stack = vec![group];
        while let Some(g) = stack.pop() {
            let local = self.members[g.snapshot as usize]
                .get(&g.object)
                .into_iter()
                .flatten()
                .map(|m| Ref { snapshot: g.snapshot, object: *m });
            let foreign = self.foreign_members.get(&g).into_iter().flatten().copied();
            for m in local.chain(foreign) {
                if !seen.insert(m) {
                    continue;
                }
                out.push(m);
                if transitive && self.object(m).kind == ObjectKind::Group {
                    stack.push(m);
                }
            }
        }
        out.sort_unstable();
        Some(
            out.into_iter()
                .map(|m| {
                    let o = self.object(m);
                    MemberRef {
                        kind: o.kind.as_str(),
                        dn: o.dn.clone(),
                        display_name: o.display_name.clone(),
                        address: o.primary_address.clone(),
                    }
                })
                .collect(),
        )
    }

    /// Up to `limit` addresses whose address or display name starts with `prefix` (case-insensitive).
    pub fn autocomplete(&self, prefix: &str, limit: usize) -> Vec<Suggestion> {
        let prefix = prefix.trim().to_lowercase();
        if prefix.is_empty() || limit == 0 {
            return Vec::new();
        }
        let start = self.completions.partition_point(|(k, _, _)| k.as_ref() < prefix.as_str());
        let mut out: Vec<Suggestion> = Vec::with_capacity(limit);
        for (key, r, address) in &self.completions[start..] {
            if !key.starts_with(prefix.as_str()) || out.len() >= limit {
                break;
            }
            if out.iter().any(|s| s.address == address.as_ref()) {
                continue;
            }
            let o = self.object(*r);
            out.push(Suggestion {
                address: address.to_string(),
                display_name: o.display_name.clone(),
                kind: o.kind.as_str(),
            });
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::snapshot::tests::{ad_names, entry};
    use crate::domain::snapshot::{ConnectionRef, SnapshotBuilder};

    fn snapshot(name: &str, entries: Vec<(ObjectKind, crate::domain::snapshot::RawEntry)>) -> Arc<Snapshot> {
        let mut b = SnapshotBuilder::new(ad_names());
        for (k, e) in entries {
            b.add(k, e).expect("entry");
        }
        let connection = ConnectionRef { namespace: "mail".into(), name: name.into(), uid: name.into() };
        Arc::new(b.finish(connection, "corp.example.com", "DC=corp", "dc1", 0))
    }

    pub(crate) fn sample() -> Index {
        use ObjectKind::*;
        let a = snapshot(
            "staff",
            vec![
                (
                    User,
                    entry(
                        "CN=Alice,DC=corp",
                        &[
                            ("displayName", &["Alice Liddell"]),
                            ("proxyAddresses", &["SMTP:alice@corp.example.com", "smtp:al@corp.example.com"]),
                        ],
                    ),
                ),
                (
                    User,
                    entry(
                        "CN=Bob,DC=corp",
                        &[
                            ("displayName", &["Bob Builder"]),
                            ("mail", &["bob@corp.example.com"]),
                            ("userAccountControl", &["514"]),
                        ],
                    ),
                ),
                (
                    Group,
                    entry(
                        "CN=Sales,DC=corp",
                        &[
                            ("sAMAccountName", &["Sales"]),
                            ("mail", &["sales@corp.example.com"]),
                            ("member", &["CN=Alice,DC=corp"]),
                        ],
                    ),
                ),
                (
                    Group,
                    entry(
                        "CN=All,DC=corp",
                        &[("mail", &["all@corp.example.com"]), ("member", &["CN=Sales,DC=corp", "CN=Bob,DC=corp"])],
                    ),
                ),
            ],
        );
        let b = snapshot(
            "partners",
            vec![(
                Contact,
                entry("CN=Ext,DC=corp", &[("displayName", &["Alan External"]), ("mail", &["alice@corp.example.com"])]),
            )],
        );
        Index::build(vec![a, b])
    }

    #[test]
    fn address_lookup_with_transitive_groups_and_duplicates() {
        let index = sample();
        // The contact's connection sorts first, but the address is the user's primary one: the
        // user answers, whichever connection is named first.
        let alice = index.lookup_address("Alice@Corp.Example.com").expect("found");
        assert_eq!((alice.kind, alice.dn, alice.connection), ("user", "CN=Alice,DC=corp", "mail/staff"));
        assert_eq!(alice.also_held_by, ["mail/partners: CN=Ext,DC=corp"]);
        let al = index.lookup_address("al@corp.example.com").expect("found");
        let groups: Vec<&str> = al.groups.iter().map(|g| g.dn).collect();
        assert_eq!(groups, ["CN=All,DC=corp", "CN=Sales,DC=corp"]);
        assert_eq!(al.groups[1].address, Some("sales@corp.example.com"));
        assert!(index.lookup_address("bob@corp.example.com").expect("bob").disabled);
        assert_eq!(index.lookup_address("nobody@corp.example.com"), None);
        assert!(index.has_address("AL@corp.example.com") && !index.has_address("nobody@corp.example.com"));
    }

    #[test]
    fn a_shared_address_is_answered_by_its_primary_holder_then_by_kind() {
        use ObjectKind::*;
        let entries = |kind, dn: &str, mail: &'static str| (kind, entry(dn, &[("mail", &[mail][..])]));
        // Both hold it as their primary address: the user beats the contact and the group.
        let a = snapshot("a", vec![entries(Contact, "CN=C,DC=a", "x@corp.example.com")]);
        let b = snapshot("b", vec![entries(Group, "CN=G,DC=b", "x@corp.example.com")]);
        let c = snapshot("c", vec![entries(User, "CN=U,DC=c", "x@corp.example.com")]);
        let index = Index::build(vec![a, b, c]);
        let x = index.lookup_address("x@corp.example.com").expect("found");
        assert_eq!((x.kind, x.connection), ("user", "mail/c"));
        assert_eq!(x.also_held_by, ["mail/b: CN=G,DC=b", "mail/a: CN=C,DC=a"]);
    }

    #[test]
    fn nested_groups_resolve_across_connections_of_one_domain() {
        use ObjectKind::*;
        let groups = snapshot(
            "groups",
            vec![
                (
                    Group,
                    entry(
                        "CN=Sales,OU=Groups,DC=corp",
                        &[("mail", &["sales@corp.example.com"]), ("member", &["CN=Alice,OU=Staff,DC=corp"])],
                    ),
                ),
                (
                    Group,
                    entry(
                        "CN=All,OU=Groups,DC=corp",
                        &[("mail", &["all@corp.example.com"]), ("member", &["CN=Sales,OU=Groups,DC=corp"])],
                    ),
                ),
            ],
        );
        assert_eq!(groups.foreign_members.len(), 1, "alice is outside the groups' connection");
        let staff = snapshot(
            "staff",
            vec![(User, entry("CN=Alice,OU=Staff,DC=corp", &[("mail", &["alice@corp.example.com"])]))],
        );
        let mut elsewhere =
            (*snapshot("lab", vec![(User, entry("CN=Alice,OU=Staff,DC=corp", &[("mail", &["a@lab.example"])]))]))
                .clone();
        elsewhere.domain = "lab.example".into();
        let index = Index::build(vec![groups, staff, Arc::new(elsewhere)]);
        let alice = index.lookup_address("alice@corp.example.com").expect("alice");
        let names: Vec<&str> = alice.groups.iter().map(|g| g.dn).collect();
        assert_eq!(names, ["CN=All,OU=Groups,DC=corp", "CN=Sales,OU=Groups,DC=corp"]);
        let members = index.group_members("all@corp.example.com", true).expect("All");
        let dns: Vec<&str> = members.iter().map(|m| m.dn.as_str()).collect();
        assert_eq!(dns, ["CN=Sales,OU=Groups,DC=corp", "CN=Alice,OU=Staff,DC=corp"]);
        // Another domain's object with the same DN is no member.
        assert!(index.lookup_address("a@lab.example").expect("lab").groups.is_empty());
    }

    #[test]
    fn internationalised_domains_match_in_either_form() {
        let s = snapshot("idn", vec![(ObjectKind::User, entry("CN=J,DC=corp", &[("mail", &["Jörg@Bücher.Example"])]))]);
        let index = Index::build(vec![s]);
        for asked in ["jörg@bücher.example", "JÖRG@xn--bcher-kva.example", "jörg@bu\u{308}cher.example"] {
            assert!(index.has_address(asked), "{asked}");
        }
        assert!(index.has_domain("Bücher.Example") && index.has_domain("xn--bcher-kva.example"));
    }

    #[test]
    fn primary_addresses_and_domains() {
        let index = sample();
        assert_eq!(index.primary_address_of("AL@corp.example.com"), Some("alice@corp.example.com"));
        assert_eq!(index.primary_address_of("nobody@corp.example.com"), None);
        assert!(index.has_domain("Corp.Example.com") && !index.has_domain("example.com"));
    }

    #[test]
    fn group_members_direct_and_transitive() {
        let index = sample();
        let direct: Vec<String> =
            index.group_members("all@corp.example.com", false).expect("group").into_iter().map(|m| m.dn).collect();
        assert_eq!(direct, ["CN=Bob,DC=corp", "CN=Sales,DC=corp"]);
        let all: Vec<String> =
            index.group_members("cn=all,dc=CORP", true).expect("group").into_iter().map(|m| m.dn).collect();
        assert_eq!(all, ["CN=Alice,DC=corp", "CN=Bob,DC=corp", "CN=Sales,DC=corp"]);
        assert_eq!(index.group_members("bob@corp.example.com", true), None, "a user is no group");
        assert_eq!(index.group_members("CN=Nope,DC=corp", true), None);
    }

    #[test]
    fn autocomplete_by_address_and_name() {
        let index = sample();
        let got: Vec<String> = index.autocomplete("AL", 10).into_iter().map(|s| s.address).collect();
        assert_eq!(got, ["al@corp.example.com", "alice@corp.example.com", "all@corp.example.com"]);
        assert_eq!(index.autocomplete("bob b", 10).len(), 1, "display names complete too");
        assert_eq!(index.autocomplete("a", 2).len(), 2);
        assert!(index.autocomplete("", 10).is_empty());
    }
}
