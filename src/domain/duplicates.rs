//! Duplicate user names and email addresses across the objects and connections one node caches.

use std::collections::BTreeMap;

use super::snapshot::{DirObject, Snapshot};

/// Most examples kept in a report.
pub const MAX_EXAMPLES: usize = 10;

/// Duplicates found in a set of snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
    let mut names: BTreeMap<String, Vec<Holder<'a>>> = BTreeMap::new();
    let mut addresses: BTreeMap<&'a str, Vec<Holder<'a>>> = BTreeMap::new();
    for snapshot in snapshots {
        let connection = snapshot.connection.name.as_str();
        for object in &snapshot.objects {
            let holder = Holder { connection, object };
            let mut own_names: Vec<String> = Vec::with_capacity(2);
            if let Some(n) = &object.account_name {
                own_names.push(n.to_lowercase());
            }
            if let Some(n) = &object.principal_name {
                own_names.push(n.to_lowercase());
            }
            own_names.sort_unstable();
            own_names.dedup();
            for n in own_names {
                names.entry(n).or_default().push(holder);
            }
            for a in &object.addresses {
                addresses.entry(a.as_str()).or_default().push(holder);
            }
        }
    }
    let mut report = DuplicateReport::default();
    let mut examples = Vec::new();
    for (address, holders) in &addresses {
        if holders.len() > 1 {
            report.addresses += 1;
            examples.push(format!("address {address}: {} and {}", holders[0], holders[1]));
        }
    }
    for (name, holders) in &names {
        if holders.len() > 1 {
            report.user_names += 1;
            examples.push(format!("user name {name}: {} and {}", holders[0], holders[1]));
        }
    }
    examples.truncate(MAX_EXAMPLES);
    report.examples = examples;
    report
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
            member_of: vec![],
        }
    }

    fn snap(name: &str, objects: Vec<DirObject>) -> Snapshot {
        Snapshot {
            connection: ConnectionRef { namespace: "ns".into(), name: name.into(), uid: name.into() },
            domain: "corp.example.com".into(),
            search_base: "DC=corp".into(),
            taken_at: 0,
            server: "dc1".into(),
            objects,
            unresolved_members: 0,
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
