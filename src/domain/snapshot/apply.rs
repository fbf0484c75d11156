//! A delta applied to a snapshot: the objects it read again merged into the kept ones, which stay
//! in their order and are shared, not copied. The result equals what
//! [`SnapshotBuilder::finish`] makes of a full read of the same directory state (the model test
//! in `incremental` checks it on random change sequences).

use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use super::{
    ConnectionRef, DirObject, Memberships, ObjectKind, Snapshot, SnapshotBuilder, SnapshotError, dn, is_primary_group,
    sorted_foreign,
};

/// An object of the old snapshot that the new one does not hold.
const GONE: u32 = u32::MAX;

/// Where a snapshot was read: what a delta's result says besides its content.
pub struct Origin<'a> {
    pub connection: ConnectionRef,
    pub domain: &'a str,
    pub search_base: &'a str,
    pub server: &'a str,
    pub taken_at: i64,
}

impl SnapshotBuilder {
    /// `old` with every object whose id is in `reread` (changed, deleted, or read again for its
    /// members) replaced by what this builder read. A read object whose DN a kept object had
    /// takes its place. Memberships kept groups list come along (by DN where the member was
    /// read again), members of groups read again come from their entries, primary groups from
    /// the SIDs (unique in a domain). So every group whose listed members changed must have
    /// been read again.
    pub fn apply_to(
        self,
        old: &Snapshot,
        reread: &FxHashSet<&str>,
        origin: Origin<'_>,
    ) -> Result<Snapshot, SnapshotError> {
        let Self { chunks, count, by_dn, memberships: read_pairs, pending_members, .. } = self;
        let mut keys = OldKeys { old, scratch: String::new() };
        // The objects read, in DN order, each with the old position it goes before.
        let mut fresh: Vec<(&str, u32)> = by_dn.iter().map(|(key, &at)| (key.as_str(), at)).collect();
        fresh.sort_unstable();
        let mut before = Vec::with_capacity(fresh.len());
        let mut taken = FxHashSet::default();
        let mut from = 0;
        for &(key, _) in &fresh {
            let (at, same) = keys.lower_bound(from, key)?;
            if same {
                taken.insert(at);
            }
            before.push(at);
            from = at;
        }
        let mut read: Vec<Option<DirObject>> = chunks.into_iter().flatten().map(Some).collect();
        let mut objects: Vec<Arc<DirObject>> = Vec::with_capacity(old.objects.len() + fresh.len());
        let mut old_to_new = vec![GONE; old.objects.len()];
        let mut read_to_new = vec![GONE; count];
        let mut next = 0;
        let mut place_fresh_before = |at: usize, objects: &mut Vec<Arc<DirObject>>| {
            while next < fresh.len() && before[next] <= at {
                let index = fresh[next].1 as usize;
                read_to_new[index] = objects.len() as u32;
                objects.extend(read[index].take().map(Arc::new));
                next += 1;
            }
        };
        // SIDs of groups that left: the primary memberships they gave end with them.
        let mut left_sids: FxHashSet<&[u8]> = FxHashSet::default();
        for (at, object) in old.objects.iter().enumerate() {
            place_fresh_before(at, &mut objects);
            if taken.contains(&at) || reread.contains(object.id.as_str()) {
                if object.kind == ObjectKind::Group
                    && let Some(sid) = &object.sid
                {
                    left_sids.insert(sid);
                }
                continue;
            }
            old_to_new[at] = objects.len() as u32;
            objects.push(Arc::clone(object));
        }
        place_fresh_before(usize::MAX, &mut objects);
        drop(read);

        let mut groups_by_sid = GroupsBySid { objects: &objects, map: None };
        let read_group_sids: FxHashSet<&[u8]> = by_dn
            .values()
            .map(|&at| &objects[read_to_new[at as usize] as usize])
            .filter(|o| o.kind == ObjectKind::Group)
            .filter_map(|o| o.sid.as_deref())
            .collect();
        let mut pairs: Vec<(u32, u32)> = Vec::with_capacity(old.memberships.total() + read_pairs.len());
        let mut pending: Vec<(u32, &str)> = Vec::new();
        for (at, object) in old.objects.iter().enumerate() {
            let member = old_to_new[at];
            for &group in old.member_of(at) {
                let Some(&group_now) = old_to_new.get(group as usize) else { continue };
                let primary = is_primary_group(object, &old.objects[group as usize]);
                match (member, group_now, primary) {
                    (GONE, GONE, _) | (GONE, _, true) => {}
                    (GONE, _, false) => pending.push((group_now, object.dn.as_str())),
                    (_, GONE, false) => {}
                    // The group was read again: the SID tells where it is now, if still here.
                    (_, GONE, true) => {
                        if let Some(sid) = object.primary_group_sid.as_deref()
                            && let Some(now) = groups_by_sid.get(sid)
                        {
                            pairs.push((member, now));
                        }
                    }
                    _ => pairs.push((member, group_now)),
                }
            }
        }
        // A group that came (new, or back in the base) may be kept objects' primary group.
        if read_group_sids.iter().any(|sid| !left_sids.contains(sid)) {
            for (at, object) in old.objects.iter().enumerate() {
                let member = old_to_new[at];
                if member != GONE
                    && let Some(sid) = object.primary_group_sid.as_deref()
                    && read_group_sids.contains(sid)
                    && let Some(now) = groups_by_sid.get(sid)
                {
                    pairs.push((member, now));
                }
            }
        }
        for (member, group) in read_pairs {
            pairs.push((read_to_new[member as usize], read_to_new[group as usize]));
        }
        for (at, &now) in read_to_new.iter().enumerate() {
            if now == GONE {
                continue;
            }
            if let Some(sid) = objects[now as usize].primary_group_sid.as_deref()
                && let Some(group) = groups_by_sid.get(sid)
            {
                pairs.push((read_to_new[at], group));
            }
        }

        let old_foreign = old.foreign_members.iter().filter_map(|f| {
            let group = *old_to_new.get(f.group as usize)?;
            (group != GONE).then_some((group, f.dn.as_str()))
        });
        // Old members that went, and members no old object had: no kept object has their DN
        // (DNs are distinct), only an object read again may.
        let pending_old: Vec<(u32, &str)> = pending.into_iter().chain(old_foreign).collect();
        // Members of groups read again may be any object.
        let pending_read: Vec<(u32, &str)> =
            pending_members.iter().map(|(group, dn)| (read_to_new[*group as usize], dn.as_str())).collect();
        let mut by_new_dn =
            NewDns { by_dn: &by_dn, read_to_new: &read_to_new, old_to_new: &old_to_new, keys, all: None };
        if pending_read.len() > (old.objects.len() / 16).max(64) {
            by_new_dn.index_all()?;
        }
        let mut foreign = Vec::new();
        let mut key = String::new();
        for (pending, read_only) in [(pending_old, true), (pending_read, false)] {
            for (group, member) in pending {
                let found = match dn::normalize_into(member, &mut key) {
                    Ok(()) if read_only => by_new_dn.find_read(&key),
                    Ok(()) => by_new_dn.find(&key)?,
                    Err(_) => None,
                };
                match found {
                    Some(now) => pairs.push((now, group)),
                    None => foreign.push((group, member.to_owned())),
                }
            }
        }
        // The kept pairs come in order already: a run-detecting sort merges the rest in.
        pairs.sort();
        pairs.dedup();
        let memberships = Memberships::from_sorted_pairs(&pairs, objects.len());
        let unresolved_members = foreign.len() as u64;
        Ok(Snapshot {
            connection: origin.connection,
            domain: origin.domain.to_owned(),
            search_base: origin.search_base.to_owned(),
            taken_at: origin.taken_at,
            server: origin.server.to_owned(),
            objects,
            memberships,
            unresolved_members,
            foreign_members: sorted_foreign(foreign),
            sync_state: None,
        })
    }
}

/// The old snapshot's normalised DNs, computed where a search looks.
struct OldKeys<'a> {
    old: &'a Snapshot,
    scratch: String,
}

impl OldKeys<'_> {
    fn key(&mut self, at: usize) -> Result<&str, SnapshotError> {
        let dn = &self.old.objects[at].dn;
        dn::normalize_into(dn, &mut self.scratch)
            .map_err(|e| SnapshotError::BadDn { dn: dn.clone(), reason: e.to_string() })?;
        Ok(&self.scratch)
    }

    /// The first position at or after `from` whose key is not below `key`, and whether it is `key`.
    fn lower_bound(&mut self, from: usize, key: &str) -> Result<(usize, bool), SnapshotError> {
        let (mut low, mut high) = (from, self.old.objects.len());
        while low < high {
            let mid = low + (high - low) / 2;
            if self.key(mid)? < key {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        let same = low < self.old.objects.len() && self.key(low)? == key;
        Ok((low, same))
    }
}

/// Groups of the new snapshot by SID, indexed on first use: most deltas need none.
struct GroupsBySid<'a> {
    objects: &'a [Arc<DirObject>],
    map: Option<FxHashMap<&'a [u8], u32>>,
}

impl<'a> GroupsBySid<'a> {
    fn get(&mut self, sid: &[u8]) -> Option<u32> {
        let objects = self.objects;
        let map = self.map.get_or_insert_with(|| {
            objects
                .iter()
                .enumerate()
                .filter(|(_, o)| o.kind == ObjectKind::Group)
                .filter_map(|(at, o)| Some((o.sid.as_deref()?, at as u32)))
                .collect()
        });
        map.get(sid).copied()
    }
}

/// Finds a normalised DN among the new snapshot's objects: those read by the builder's table,
/// kept ones by a search of the old order, or by a table of all when many are looked up.
struct NewDns<'a> {
    by_dn: &'a FxHashMap<String, u32>,
    read_to_new: &'a [u32],
    old_to_new: &'a [u32],
    keys: OldKeys<'a>,
    all: Option<FxHashMap<String, u32>>,
}

impl NewDns<'_> {
    fn index_all(&mut self) -> Result<(), SnapshotError> {
        let mut all = FxHashMap::default();
        all.reserve(self.old_to_new.len());
        for (at, &now) in self.old_to_new.iter().enumerate() {
            if now != GONE {
                all.insert(self.keys.key(at)?.to_owned(), now);
            }
        }
        self.all = Some(all);
        Ok(())
    }

    /// Among the objects read again only.
    fn find_read(&self, key: &str) -> Option<u32> {
        self.by_dn.get(key).map(|&at| self.read_to_new[at as usize])
    }

    fn find(&mut self, key: &str) -> Result<Option<u32>, SnapshotError> {
        if let Some(now) = self.find_read(key) {
            return Ok(Some(now));
        }
        if let Some(all) = &self.all {
            return Ok(all.get(key).copied());
        }
        let (at, same) = self.keys.lower_bound(0, key)?;
        Ok(Some(self.old_to_new.get(at).copied().unwrap_or(GONE)).filter(|&now| same && now != GONE))
    }
}
