//! Duplicate user names and email addresses across the objects and connections one node caches.

use std::borrow::Cow;

use rustc_hash::FxHashMap;

use super::snapshot::{DirObject, Snapshot};

/// Most examples kept in a report.
pub const MAX_EXAMPLES: usize = 10;

/// Duplicates found in a set of snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DuplicateReport {
    /// Distinct sAMAccountName / userPrincipalName values held by more than one object.
    pub user_names: u64,
    /// Distinct addresses held by more than one object.
    pub addresses: u64,
    /// Up to [`MAX_EXAMPLES`], addresses first, each naming the value and two of its holders.
    pub examples: Vec<String>,
}

impl DuplicateReport {
    pub fn total(&self) -> u64 {
        self.user_names + self.addresses
    }
}

/// Checks user names and addresses over every object of `snapshots`, each labelled with its
/// connection (`namespace/name`). Deterministic: the same input gives the same report.
pub fn find_duplicates<'a>(snapshots: impl IntoIterator<Item = &'a Snapshot>) -> DuplicateReport {
    let snapshots: Vec<&Snapshot> = snapshots.into_iter().collect();
    // Sized up front: growing a map of 100k entries rehashes it a dozen times.
    let objects = snapshots.iter().map(|s| s.objects.len()).sum();
    let address_count = snapshots.iter().flat_map(|s| &s.objects).map(|o| o.addresses.len()).sum();
    // First holder and (if any) second holder of each value; values are compared lowercased.
    let mut names: FxHashMap<Cow<'a, str>, Seen<'a>> = FxHashMap::with_capacity_and_hasher(objects, Default::default());
    let mut addresses: FxHashMap<&'a str, Seen<'a>> =
        FxHashMap::with_capacity_and_hasher(address_count, Default::default());
    for snapshot in snapshots {
        let connection = snapshot.connection.name.as_str();
        for object in &snapshot.objects {
            let holder = Holder { connection, object };
            let account = object.account_name.as_deref().map(lowercase);
            let principal = object.principal_name.as_deref().map(lowercase).filter(|p| Some(p) != account.as_ref());
            for n in account.into_iter().chain(principal) {
                names.entry(n).and_modify(|s| s.add(holder)).or_insert_with(|| Seen::new(holder));
            }
            for a in &object.addresses {
                addresses.entry(a.as_str()).and_modify(|s| s.add(holder)).or_insert_with(|| Seen::new(holder));
            }
        }
    }
    let mut dup_addresses: Vec<(&str, Seen<'a>)> = addresses.into_iter().filter(|(_, s)| s.second.is_some()).collect();
    let mut dup_names: Vec<(Cow<'a, str>, Seen<'a>)> = names.into_iter().filter(|(_, s)| s.second.is_some()).collect();
    dup_addresses.sort_unstable_by(|a, b| a.0.cmp(b.0));
    dup_names.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut examples = Vec::new();
    for (value, seen) in dup_addresses.iter().take(MAX_EXAMPLES) {
        examples.push(format!("address {value}: {seen}"));
    }
    for (value, seen) in dup_names.iter().take(MAX_EXAMPLES) {
        examples.push(format!("user name {value}: {seen}"));
    }
    examples.truncate(MAX_EXAMPLES);
    DuplicateReport { user_names: dup_names.len() as u64, addresses: dup_addresses.len() as u64, examples }
}

fn lowercase(s: &str) -> Cow<'_, str> {
    if s.chars().any(char::is_uppercase) { Cow::Owned(s.to_lowercase()) } else { Cow::Borrowed(s) }
}

#[derive(Clone, Copy)]
struct Seen<'a> {
    first: Holder<'a>,
    second: Option<Holder<'a>>,
}

impl<'a> Seen<'a> {
    fn new(first: Holder<'a>) -> Self {
        Self { first, second: None }
    }

    fn add(&mut self, holder: Holder<'a>) {
        if self.second.is_none() && !std::ptr::eq(self.first.object, holder.object) {
            self.second = Some(holder);
        }
    }
}

impl std::fmt::Display for Seen<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.second {
            Some(second) => write!(f, "{} and {second}", self.first),
            None => write!(f, "{}", self.first),
        }
    }
}

#[derive(Clone, Copy)]
struct Holder<'a> {
    connection: &'a str,
    object: &'a DirObject,
}

impl std::fmt::Display for Holder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ({})", self.object.kind.as_str(), self.object.dn, self.connection)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::snapshot::{ConnectionRef, ObjectKind};

    fn obj(kind: ObjectKind, dn: &str, sam: Option<&str>, addresses: &[&str]) -> DirObject {
        DirObject {
            kind,
            dn: dn.into(),
            id: dn.into(),
            account_name: sam.map(Into::into),
            principal_name: sam.map(|s| format!("{s}@corp.example.com")),
            display_name: None,
            disabled: false,
            primary_address: addresses.first().map(|a| a.to_string()),
            addresses: addresses.iter().map(|a| a.to_string()).collect(),
            sid: None,
            primary_group_sid: None,
        }
    }

    fn snap(name: &str, objects: Vec<DirObject>) -> Snapshot {
        Snapshot {
            connection: ConnectionRef { namespace: "ns".into(), name: name.into(), uid: name.into() },
            domain: "corp.example.com".into(),
            search_base: "DC=corp".into(),
            taken_at: 0,
            server: "dc1".into(),
            objects: objects.into_iter().map(std::sync::Arc::new).collect(),
            memberships: Default::default(),
            unresolved_members: 0,
            foreign_members: Vec::new(),
            sync_state: None,
        }
    }

    #[test]
    fn duplicates_across_kinds_and_connections() {
        use ObjectKind::*;
        let a = snap(
            "staff",
            vec![
                obj(User, "CN=Frank,OU=Staff", Some("frank"), &["frank@corp.example.com", "helpdesk@corp.example.com"]),
                obj(Group, "CN=Helpdesk,OU=Groups", Some("Helpdesk"), &["helpdesk@corp.example.com"]),
                obj(User, "CN=Alice,OU=Staff", Some("alice"), &["alice@corp.example.com"]),
            ],
        );
        let b = snap(
            "contractors",
            vec![
                obj(User, "CN=Alice2,OU=Contractors", Some("ALICE"), &["alice2@corp.example.com"]),
                obj(Contact, "CN=Ext,OU=Contractors", None, &["alice@corp.example.com"]),
            ],
        );
        let r = find_duplicates([&a, &b]);
        assert_eq!((r.addresses, r.user_names), (2, 2), "{r:?}");
        assert_eq!(r.total(), 4);
        assert_eq!(
            r.examples[0],
            "address alice@corp.example.com: user CN=Alice,OU=Staff (staff) and contact CN=Ext,OU=Contractors (contractors)"
        );
        assert!(r.examples.iter().any(|e| e.starts_with("address helpdesk@corp.example.com: user CN=Frank")));
        assert!(r.examples.iter().any(|e| e.starts_with("user name alice: ")));
        assert!(r.examples.iter().any(|e| e.starts_with("user name alice@corp.example.com: ")));
    }

    #[test]
    fn an_object_repeating_its_own_values_is_no_duplicate_and_examples_are_capped() {
        use ObjectKind::*;
        let own = snap("x", vec![obj(User, "CN=A", Some("a"), &["a@x.example"])]);
        assert_eq!(find_duplicates([&own]), DuplicateReport::default());
        let many: Vec<DirObject> = (0..30)
            .flat_map(|i| {
                let addr = format!("d{i:02}@x.example");
                [
                    obj(User, &format!("CN=A{i}"), None, &[addr.as_str()]),
                    obj(Contact, &format!("CN=C{i}"), None, &[addr.as_str()]),
                ]
            })
            .collect();
        let r = find_duplicates([&snap("x", many)]);
        assert_eq!(r.addresses, 30);
        assert_eq!(r.examples.len(), MAX_EXAMPLES);
    }
}
