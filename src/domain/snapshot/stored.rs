//! How a snapshot is stored (format version 3, see [`crate::domain::codec`]): each object with
//! its direct groups among its fields, in this order. Memory keeps the groups in one table
//! beside the objects; these types turn one form into the other, object by object, so neither
//! side ever holds a second copy of every object.

use std::sync::Arc;

use serde::de::{SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{ConnectionRef, DirObject, ForeignMember, Memberships, ObjectKind, Snapshot};
use crate::domain::incremental::SyncState;

#[derive(Serialize)]
struct StoredObjectRef<'a> {
    kind: ObjectKind,
    dn: &'a str,
    id: &'a str,
    account_name: &'a Option<String>,
    principal_name: &'a Option<String>,
    display_name: &'a Option<String>,
    disabled: bool,
    primary_address: &'a Option<String>,
    addresses: &'a [String],
    member_of: &'a [u32],
    sid: &'a Option<Vec<u8>>,
    primary_group_sid: &'a Option<Vec<u8>>,
}

#[derive(Deserialize)]
struct StoredObject {
    kind: ObjectKind,
    dn: String,
    id: String,
    account_name: Option<String>,
    principal_name: Option<String>,
    display_name: Option<String>,
    disabled: bool,
    primary_address: Option<String>,
    addresses: Vec<String>,
    member_of: Vec<u32>,
    sid: Option<Vec<u8>>,
    primary_group_sid: Option<Vec<u8>>,
}

/// A snapshot's objects in their stored form: what the content hash covers.
pub struct StoredObjects<'a>(&'a Snapshot);

impl Serialize for StoredObjects<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let snapshot = self.0;
        serializer.collect_seq(snapshot.objects.iter().enumerate().map(|(at, o)| StoredObjectRef {
            kind: o.kind,
            dn: &o.dn,
            id: &o.id,
            account_name: &o.account_name,
            principal_name: &o.principal_name,
            display_name: &o.display_name,
            disabled: o.disabled,
            primary_address: &o.primary_address,
            addresses: &o.addresses,
            member_of: snapshot.member_of(at),
            sid: &o.sid,
            primary_group_sid: &o.primary_group_sid,
        }))
    }
}

impl Snapshot {
    pub fn stored_objects(&self) -> StoredObjects<'_> {
        StoredObjects(self)
    }
}

#[derive(Serialize)]
struct StoredSnapshotRef<'a> {
    connection: &'a ConnectionRef,
    domain: &'a str,
    search_base: &'a str,
    taken_at: i64,
    server: &'a str,
    objects: StoredObjects<'a>,
    unresolved_members: u64,
    foreign_members: &'a [ForeignMember],
    sync_state: &'a Option<SyncState>,
}

impl Serialize for Snapshot {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        StoredSnapshotRef {
            connection: &self.connection,
            domain: &self.domain,
            search_base: &self.search_base,
            taken_at: self.taken_at,
            server: &self.server,
            objects: self.stored_objects(),
            unresolved_members: self.unresolved_members,
            foreign_members: &self.foreign_members,
            sync_state: &self.sync_state,
        }
        .serialize(serializer)
    }
}

/// Objects and their memberships, split as they are read.
struct LoadedObjects {
    objects: Vec<Arc<DirObject>>,
    memberships: Memberships,
}

impl LoadedObjects {
    /// Takes one object of a stored form.
    fn push(&mut self, object: DirObject, member_of: &[u32]) {
        self.objects.push(Arc::new(object));
        self.memberships.push(member_of);
    }
}

/// Reserved before the objects prove their count: a crafted length must not allocate gigabytes.
const MOST_RESERVED: usize = 1 << 16;

impl<'de> Deserialize<'de> for LoadedObjects {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Objects;
        impl<'de> Visitor<'de> for Objects {
            type Value = LoadedObjects;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a sequence of objects")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<LoadedObjects, A::Error> {
                let reserve = seq.size_hint().unwrap_or(0).min(MOST_RESERVED);
                let mut out =
                    LoadedObjects { objects: Vec::with_capacity(reserve), memberships: Memberships::default() };
                while let Some(stored) = seq.next_element::<StoredObject>()? {
                    let StoredObject {
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
                        sid,
                        primary_group_sid,
                    } = stored;
                    let object = DirObject {
                        kind,
                        dn,
                        id,
                        account_name,
                        principal_name,
                        display_name,
                        disabled,
                        primary_address,
                        addresses,
                        sid,
                        primary_group_sid,
                    };
                    out.push(object, &member_of);
                }
                Ok(out)
            }
        }
        deserializer.deserialize_seq(Objects)
    }
}

#[derive(Deserialize)]
struct StoredSnapshot {
    connection: ConnectionRef,
    domain: String,
    search_base: String,
    taken_at: i64,
    server: String,
    objects: LoadedObjects,
    unresolved_members: u64,
    foreign_members: Vec<ForeignMember>,
    sync_state: Option<SyncState>,
}

impl<'de> Deserialize<'de> for Snapshot {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let StoredSnapshot {
            connection,
            domain,
            search_base,
            taken_at,
            server,
            objects,
            unresolved_members,
            foreign_members,
            sync_state,
        } = StoredSnapshot::deserialize(deserializer)?;
        Ok(Snapshot {
            connection,
            domain,
            search_base,
            taken_at,
            server,
            objects: objects.objects,
            memberships: objects.memberships,
            unresolved_members,
            foreign_members,
            sync_state,
        })
    }
}
