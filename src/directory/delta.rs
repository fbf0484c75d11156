//! Incremental reads: where a server's change tracking stands (taken before a full read), what
//! changed since (AD `uSNChanged` and tombstones, RFC 4533 refreshOnly), and the changed objects
//! read again through the read plan's own filters, so that a delta derives what a full read of the
//! same directory state derives.

use std::sync::Arc;

use ldap3::Scope;
use ldap3::controls::RawControl;
use rustc_hash::FxHashSet;

use super::DirectoryError;
use super::ldap::{LdapSession, SearchItem, SearchRequest};
use super::sync::{PreparedConnection, SyncError};
use crate::api::DirectoryType;
use crate::domain::dn::Dn;
use crate::domain::incremental::{
    ChangeSet, ChangeTracking, DeletionSource, FullReason, ReadAgain, SyncState, Watermark, cascade, guid_bytes,
    plan_fingerprint,
};
use crate::domain::lazy::Lazy;
use crate::domain::profile::{ObjectQuery, any_of};
use crate::domain::snapshot::{ObjectKind, Origin, RawEntry, Snapshot, SnapshotBuilder, format_guid};
use crate::domain::syncrepl::{self, Refresh, SyncDone};

/// AD's change notification control: a search that stays open and returns each change.
const NOTIFICATION_OID: &str = "1.2.840.113556.1.4.528";
/// AD's Show Deleted control: tombstones are returned.
const SHOW_DELETED_OID: &str = "1.2.840.113556.1.4.417";
/// Ids (or DNs) per `(|...)` filter of a read-again search.
const IDS_PER_FILTER: usize = 50;

/// Where a server's change tracking stands, as the start of a read sees it.
#[derive(Debug, Clone)]
pub struct TrackingPoint {
    pub tracking: ChangeTracking,
    pub server_identity: String,
    /// When the server's schema last changed, as [`SyncState::schema`].
    pub schema: String,
    /// Where the server stands; `None` when not asked for ([`Position::Skip`]).
    pub watermark: Option<Watermark>,
    /// AD: the naming context the USN searches start from.
    naming_context: String,
    /// AD: the schema's naming context, where a changed definition shows by its USN.
    schema_context: String,
}

/// Whether [`PreparedConnection::tracking_point`] learns where the server stands (a full read
/// starts from there) or skips it (a delta learns it from its own refresh).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Position {
    Now,
    Skip,
}

/// A delta read: the changes and the snapshot they give, or nothing when nothing changed.
pub struct DeltaRead {
    pub snapshot: Option<Snapshot>,
    pub state: SyncState,
    pub entries_read: u64,
    pub changes: u64,
    /// How deletions were found (`None` when a probe showed nothing changed).
    pub deletions: Option<DeletionSource>,
}

/// Why a delta could not be read from this server although it answers: read everything.
pub struct NeedFull(pub FullReason);

impl PreparedConnection {
    /// The change tracking this server offers for this connection, and where it stands now.
    /// `None` when it offers none this build uses (then every sync is a full read).
    pub(crate) async fn tracking_point(
        &self,
        session: &mut LdapSession,
        position: Position,
    ) -> Result<Option<TrackingPoint>, SyncError> {
        let root = session
            .read_entry(
                "",
                &[
                    "highestCommittedUSN",
                    "dsServiceName",
                    "namingContexts",
                    "schemaNamingContext",
                    "supportedControl",
                    "subschemaSubentry",
                ],
            )
            .await?
            .unwrap_or_default();
        match self.spec.directory_type {
            DirectoryType::ActiveDirectory => {
                let Some(usn) = root.first("highestCommittedUSN").and_then(|v| v.trim().parse::<u64>().ok()) else {
                    return Ok(None);
                };
                let Some(naming_context) = naming_context_of(&self.spec.search_base, root.values("namingContexts"))
                else {
                    return Ok(None);
                };
                Ok(Some(TrackingPoint {
                    tracking: ChangeTracking::UsnChanged,
                    server_identity: root.first("dsServiceName").unwrap_or_default().to_owned(),
                    // The schema's USNs tell its changes (Samba's aggregate keeps a 1970 stamp).
                    schema: String::new(),
                    watermark: Some(Watermark::Usn(usn)),
                    naming_context,
                    schema_context: root.first("schemaNamingContext").unwrap_or_default().to_owned(),
                }))
            }
            DirectoryType::Generic => {
                let offers = root.values("supportedControl").iter().any(|c| c == syncrepl::SYNC_REQUEST_OID);
                // The sync protocol names entries by entryUUID: the snapshot's ids must be those.
                if !offers || !self.plan.names.id.eq_ignore_ascii_case("entryUUID") {
                    return Ok(None);
                }
                let watermark = match position {
                    // A refresh that matches nothing: the server's cookie for "now", without
                    // sending entries (slapd still tests each one against the filter).
                    Position::Now => {
                        let mut refresh = Refresh::default();
                        let done = self.refresh(session, None, "(!(objectClass=*))", &mut refresh).await?;
                        let Some(cookie) = done.and_then(|d| d.cookie) else { return Ok(None) };
                        Some(Watermark::Cookie(cookie))
                    }
                    Position::Skip => None,
                };
                Ok(Some(TrackingPoint {
                    tracking: ChangeTracking::Syncrepl,
                    server_identity: String::new(),
                    schema: self.schema_stamp(session, &root).await?,
                    watermark,
                    naming_context: String::new(),
                    schema_context: String::new(),
                }))
            }
        }
    }

    /// When the schema `root` (a RootDSE) names last changed: OpenLDAP's `cn=Subschema` carries
    /// it as `modifyTimestamp` (the start of a slapd with a static configuration, the last schema
    /// change with `cn=config`). Empty when the server shows none.
    async fn schema_stamp(&self, session: &mut LdapSession, root: &RawEntry) -> Result<String, SyncError> {
        let Some(subschema) = root.first("subschemaSubentry").filter(|dn| !dn.is_empty()) else {
            return Ok(String::new());
        };
        match session.read_entry(subschema, &["modifyTimestamp"]).await {
            Ok(entry) => Ok(entry.and_then(|e| e.first("modifyTimestamp").map(str::to_owned)).unwrap_or_default()),
            // A server that keeps its schema from this account still syncs: without a stamp,
            // a schema change goes unseen until the periodic full sync.
            Err(DirectoryError::Search { code, detail, .. }) => {
                tracing::debug!(connection = %self.connection.name, code, %detail, "the schema's modifyTimestamp is not readable");
                Ok(String::new())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The state to keep with a snapshot read on `server` from `point`, when it has a position.
    pub(crate) fn state_at(&self, server: &str, point: TrackingPoint, full_at: i64) -> Option<SyncState> {
        Some(SyncState {
            tracking: point.tracking,
            server: server.to_owned(),
            server_identity: point.server_identity,
            schema: point.schema,
            plan: plan_fingerprint(&self.spec.search_base, &self.plan),
            watermark: point.watermark?,
            full_at,
        })
    }

    /// The changes since `state` applied to `served`, on a session to the server that tracked
    /// them. `Err(Ok(NeedFull))` when this server cannot give them (another DC behind the name,
    /// a refused cookie): the caller reads everything on the same session.
    pub(crate) async fn read_delta(
        &self,
        session: &mut LdapSession,
        served: &Lazy<Arc<Snapshot>>,
        state: &SyncState,
    ) -> Result<Result<DeltaRead, NeedFull>, SyncError> {
        // The refresh from the kept cookie tells where the server stands: no need to ask first.
        let Some(point) = self.tracking_point(session, Position::Skip).await? else {
            return Ok(Err(NeedFull(FullReason::Unsupported)));
        };
        if point.tracking != state.tracking || point.server_identity != state.server_identity {
            return Ok(Err(NeedFull(FullReason::ServerChanged)));
        }
        if point.schema != state.schema {
            return Ok(Err(NeedFull(FullReason::SchemaChanged)));
        }
        // The ids the snapshot holds; an unchanged directory never needs them.
        let held = || -> Result<FxHashSet<&str>, SyncError> {
            Ok(served.get()?.objects.iter().map(|o| o.id.as_str()).collect())
        };
        let (changes, watermark) = match (&state.watermark, &point.watermark) {
            (Watermark::Usn(since), Some(Watermark::Usn(now))) if now < since => {
                // A DC restored from a backup: its USNs ran back.
                return Ok(Err(NeedFull(FullReason::ServerChanged)));
            }
            (Watermark::Usn(since), Some(now @ Watermark::Usn(usn))) if usn == since => {
                (ChangeSet::default(), now.clone())
            }
            (Watermark::Usn(since), Some(now @ Watermark::Usn(_))) => {
                if self.schema_changed_since(session, &point.schema_context, *since).await? {
                    return Ok(Err(NeedFull(FullReason::SchemaChanged)));
                }
                (self.usn_changes(session, &point.naming_context, *since, &held()?).await?, now.clone())
            }
            (Watermark::Cookie(cookie), _) => {
                let mut refresh = Refresh::default();
                match self.refresh(session, Some(cookie), "(objectClass=*)", &mut refresh).await? {
                    None => return Ok(Err(NeedFull(FullReason::StateRefused))),
                    Some(done) => {
                        let (changes, next) = refresh.finish(done, held)?;
                        (changes, Watermark::Cookie(next.unwrap_or_else(|| cookie.clone())))
                    }
                }
            }
            _ => return Ok(Err(NeedFull(FullReason::ServerChanged))),
        };
        let next_state = SyncState { watermark, ..state.clone() };
        if changes.is_empty() {
            return Ok(Ok(DeltaRead {
                snapshot: None,
                state: next_state,
                entries_read: changes.entries_read,
                changes: 0,
                deletions: changes.deletions,
            }));
        }
        let ChangeSet { changed, deleted, mut entries_read, deletions } = changes;
        let served = served.get()?;
        let started = std::time::Instant::now();
        let mut builder = SnapshotBuilder::new(self.plan.names.clone());
        entries_read += self.read_again(session, &mut builder, &changed).await?;
        let found: FxHashSet<String> = builder.objects().map(|o| o.id.clone()).collect();
        let removed: Vec<&str> =
            changed.iter().chain(&deleted).map(String::as_str).filter(|id| !found.contains(*id)).collect();
        let again: Vec<ReadAgain<'_>> = builder
            .objects()
            .map(|o| ReadAgain { id: &o.id, dn: &o.dn, primary_group_sid: o.primary_group_sid.as_deref() })
            .collect();
        let more = cascade(served, again, removed.iter().copied());
        let mut also: Vec<String> = more.groups;
        if !more.listed_dns.is_empty() {
            let (listing, read) = self.groups_listing(session, &more.listed_dns).await?;
            entries_read += read;
            also.extend(listing.into_iter().filter(|id| !found.contains(id)));
        }
        also.sort_unstable();
        also.dedup();
        entries_read += self.read_again(session, &mut builder, &also).await?;
        let reread: FxHashSet<&str> = changed.iter().chain(&deleted).chain(&also).map(String::as_str).collect();
        let read_in = started.elapsed();
        let snapshot = builder.apply_to(
            served,
            &reread,
            Origin {
                connection: self.connection.clone(),
                domain: &self.spec.domain,
                search_base: &self.spec.search_base,
                server: session.server(),
                taken_at: crate::system::unix_now(),
            },
        )?;
        let changes = (changed.len() + deleted.len()) as u64;
        tracing::info!(
            connection = %self.connection.name,
            changes,
            read_again = reread.len(),
            read_ms = read_in.as_secs_f64() * 1e3,
            apply_ms = (started.elapsed() - read_in).as_secs_f64() * 1e3,
            "delta applied"
        );
        Ok(Ok(DeltaRead { snapshot: Some(snapshot), state: next_state, entries_read, changes, deletions }))
    }

    /// Keeps a search open on `session` that the server answers with each change under the
    /// base (AD change notification, RFC 4533 refreshAndPersist from the state's cookie), and
    /// calls `changed` for each. Returns when the server ends the search.
    pub async fn watch_changes(
        &self,
        session: &mut LdapSession,
        state: &SyncState,
        mut changed: impl FnMut(),
    ) -> Result<(), SyncError> {
        let id_attr = [self.plan.names.id.as_str()];
        let (control, filter, attrs): (RawControl, &str, &[&str]) = match (&state.tracking, &state.watermark) {
            (ChangeTracking::Syncrepl, Watermark::Cookie(cookie)) => (
                RawControl {
                    ctype: syncrepl::SYNC_REQUEST_OID.into(),
                    crit: true,
                    val: Some(syncrepl::request_value(true, Some(cookie))),
                },
                "(objectClass=*)",
                &["1.1"],
            ),
            // AD accepts only a presence filter with notifications.
            _ => (RawControl { ctype: NOTIFICATION_OID.into(), crit: true, val: None }, "(objectClass=*)", &id_attr),
        };
        let request = SearchRequest {
            base: &self.spec.search_base,
            scope: Scope::Subtree,
            filter,
            attrs,
            controls: vec![control],
            persistent: true,
        };
        let done = session
            .search(request, |item| match item {
                SearchItem::Entry(..) => changed(),
                // The end of a refresh phase says nothing new; a new cookie or an id set does.
                SearchItem::Intermediate { value, .. } => {
                    if !matches!(
                        value.as_deref().and_then(syncrepl::parse_info),
                        Some(syncrepl::SyncInfo::PhaseEnd { .. })
                    ) {
                        changed();
                    }
                }
            })
            .await?;
        match done.rc {
            0 => Ok(()),
            code => Err(DirectoryError::Search {
                server: session.server().to_owned(),
                base: self.spec.search_base.clone(),
                code,
                detail: format!("the server ended the change notification: {}", done.text),
            }
            .into()),
        }
    }

    /// Whether an attribute or class definition in the AD schema changed after USN `since`.
    async fn schema_changed_since(
        &self,
        session: &mut LdapSession,
        schema_context: &str,
        since: u64,
    ) -> Result<bool, SyncError> {
        if schema_context.is_empty() {
            return Ok(false);
        }
        let filter = format!("(uSNChanged>={})", since.saturating_add(1));
        let changed = session.search_paged(schema_context, &filter, &["1.1"], self.spec.page_size, |_| {}).await?;
        Ok(changed > 0)
    }

    /// Objects with a `uSNChanged` past `since` anywhere in the naming context (an object moved
    /// out of the base is found where it went), kept when they are in the base or cached; and
    /// the cached objects whose tombstones passed it.
    async fn usn_changes(
        &self,
        session: &mut LdapSession,
        naming_context: &str,
        since: u64,
        held: &FxHashSet<&str>,
    ) -> Result<ChangeSet, SyncError> {
        let base = Dn::parse(&self.spec.search_base).ok();
        let id_attr = self.plan.names.id.clone();
        let mut changes = ChangeSet::default();
        let filter = format!("(uSNChanged>={})", since.saturating_add(1));
        let attrs = [id_attr.as_str()];
        let mut changed = Vec::new();
        session
            .search_paged(naming_context, &filter, &attrs, self.spec.page_size, |entry| {
                changes.entries_read += 1;
                let Some(id) = object_id(&entry, &id_attr) else { return };
                let in_base = match (&base, Dn::parse(&entry.dn)) {
                    (Some(base), Ok(dn)) => dn.is_within(base),
                    _ => false,
                };
                if in_base || held.contains(id.as_str()) {
                    changed.push(id);
                }
            })
            .await?;
        let show_deleted = RawControl { ctype: SHOW_DELETED_OID.into(), crit: true, val: None };
        let mut deleted = Vec::new();
        if self.tombstones_visible(session, naming_context, &show_deleted).await? {
            changes.deletions = Some(DeletionSource::Tombstones);
            let tombstones = format!("(&(isDeleted=TRUE)(uSNChanged>={}))", since.saturating_add(1));
            changes.entries_read += session
                .search_paged_with(
                    naming_context,
                    &tombstones,
                    &attrs,
                    self.spec.page_size,
                    vec![show_deleted],
                    |entry| {
                        if let Some(id) = object_id(&entry, &id_attr).filter(|id| held.contains(id.as_str())) {
                            deleted.push(id);
                        }
                    },
                )
                .await?;
        } else {
            // An account that may not read tombstones (AD's default for all but administrators)
            // learns of deletions by comparing the ids of the read with the cached ones: one
            // small entry per object, no attributes.
            changes.deletions = Some(DeletionSource::IdListing);
            let mut present: FxHashSet<String> = FxHashSet::default();
            for query in &self.plan.queries {
                changes.entries_read += session
                    .search_paged(&self.spec.search_base, &query.filter, &attrs, self.spec.page_size, |entry| {
                        present.extend(object_id(&entry, &id_attr));
                    })
                    .await?;
            }
            deleted.extend(held.iter().filter(|id| !present.contains(**id)).map(|id| (*id).to_owned()));
        }
        changed.sort_unstable();
        changed.dedup();
        deleted.sort_unstable();
        deleted.dedup();
        changed.retain(|id| deleted.binary_search(id).is_err());
        changes.changed = changed;
        changes.deleted = deleted;
        Ok(changes)
    }

    /// Whether this account may read tombstones: AD lets everyone see the Deleted Objects
    /// container but only those with the right read its attributes (and list what it holds).
    async fn tombstones_visible(
        &self,
        session: &mut LdapSession,
        naming_context: &str,
        show_deleted: &RawControl,
    ) -> Result<bool, SyncError> {
        let container = format!("CN=Deleted Objects,{naming_context}");
        let id_attr = self.plan.names.id.as_str();
        let request = SearchRequest {
            base: &container,
            scope: Scope::Base,
            filter: "(objectClass=*)",
            attrs: &[id_attr],
            controls: vec![show_deleted.clone()],
            persistent: false,
        };
        let mut readable = false;
        match session
            .search(request, |item| {
                if let SearchItem::Entry(entry, _) = item {
                    readable |= object_id(&entry, id_attr).is_some();
                }
            })
            .await
        {
            Ok(_) => Ok(readable),
            Err(DirectoryError::Search { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// An RFC 4533 refreshOnly search of the base from `cookie`, folded into `refresh`; the
    /// Sync Done, or `None` when the server wants a full refresh (or refused the search).
    async fn refresh(
        &self,
        session: &mut LdapSession,
        cookie: Option<&[u8]>,
        filter: &str,
        refresh: &mut Refresh,
    ) -> Result<Option<SyncDone>, SyncError> {
        let control = RawControl {
            ctype: syncrepl::SYNC_REQUEST_OID.into(),
            crit: true,
            val: Some(syncrepl::request_value(false, cookie)),
        };
        let request = SearchRequest {
            base: &self.spec.search_base,
            scope: Scope::Subtree,
            filter,
            attrs: &["1.1"],
            controls: vec![control],
            persistent: false,
        };
        let mut malformed = false;
        let done = session
            .search(request, |item| match item {
                SearchItem::Entry(_, controls) => {
                    match controls.iter().find(|c| c.ctype == syncrepl::SYNC_STATE_OID).and_then(|c| c.val.as_deref()) {
                        Some(value) => match syncrepl::parse_state(value) {
                            Some(state) => refresh.entry(state),
                            None => malformed = true,
                        },
                        None => malformed = true,
                    }
                }
                SearchItem::Intermediate { name, value } => {
                    if name.as_deref() == Some(syncrepl::SYNC_INFO_OID) {
                        match value.as_deref().and_then(syncrepl::parse_info) {
                            Some(info) => refresh.info(info),
                            None => malformed = true,
                        }
                    }
                }
            })
            .await?;
        if malformed {
            return Err(DirectoryError::MalformedResponse {
                server: session.server().to_owned(),
                detail: "a content-synchronisation control that does not parse".into(),
            }
            .into());
        }
        if done.rc != 0 {
            tracing::info!(connection = %self.connection.name, code = done.rc, text = %done.text, "the server will not refresh from this cookie");
            return Ok(None);
        }
        let value = done.ctrls.iter().find(|c| c.1.ctype == syncrepl::SYNC_DONE_OID).and_then(|c| c.1.val.as_deref());
        match value {
            None => Ok(Some(SyncDone::default())),
            Some(value) => syncrepl::parse_done(value).map(Some).ok_or_else(|| {
                DirectoryError::MalformedResponse {
                    server: session.server().to_owned(),
                    detail: "a Sync Done control that does not parse".into(),
                }
                .into()
            }),
        }
    }

    /// Reads the objects with these ids again through every query of the plan, in its order,
    /// into `builder`. Returns the entries read.
    async fn read_again(
        &self,
        session: &mut LdapSession,
        builder: &mut SnapshotBuilder,
        ids: &[String],
    ) -> Result<u64, SyncError> {
        let id_attr = self.plan.names.id.as_str();
        let ad_guid = id_attr.eq_ignore_ascii_case("objectGUID");
        let mut queries = Vec::new();
        for chunk in ids.chunks(IDS_PER_FILTER) {
            let values: Vec<Vec<u8>> = chunk
                .iter()
                .map(|id| match guid_bytes(id).filter(|_| ad_guid) {
                    Some(bytes) => bytes.to_vec(),
                    None => id.as_bytes().to_vec(),
                })
                .collect();
            let only = any_of(&[id_attr], values.iter().map(Vec::as_slice));
            queries.extend(
                self.plan.queries.iter().map(|q| ObjectQuery { filter: format!("(&{}{only})", q.filter), ..q.clone() }),
            );
        }
        // The plan's order across chunks: a kind of an earlier query wins, as in a full read.
        queries.sort_by_key(|q| self.plan.queries.iter().position(|p| p.kind == q.kind));
        let before = builder.len();
        self.read_into(session, builder, &queries).await?;
        Ok((builder.len() - before) as u64)
    }

    /// Ids of the groups of the plan that list any of `dns` as a member.
    async fn groups_listing(&self, session: &mut LdapSession, dns: &[String]) -> Result<(Vec<String>, u64), SyncError> {
        let id_attr = self.plan.names.id.clone();
        let members: Vec<&str> = self.plan.names.members.iter().map(String::as_str).collect();
        let mut ids = Vec::new();
        let mut read = 0;
        for query in self.plan.queries.iter().filter(|q| q.kind == ObjectKind::Group) {
            for chunk in dns.chunks(IDS_PER_FILTER) {
                let listing = any_of(&members, chunk.iter().map(|d| d.as_bytes()));
                let filter = format!("(&{}{listing})", query.filter);
                read += session
                    .search_paged(&self.spec.search_base, &filter, &[id_attr.as_str()], self.spec.page_size, |entry| {
                        ids.extend(object_id(&entry, &id_attr));
                    })
                    .await?;
            }
        }
        Ok((ids, read))
    }
}

/// The id a snapshot gives an entry (objectGUID as a GUID string, entryUUID as text).
fn object_id(entry: &crate::domain::snapshot::RawEntry, id_attr: &str) -> Option<String> {
    let attribute = entry.attributes.iter().find(|a| a.name.eq_ignore_ascii_case(id_attr))?;
    match (attribute.binary.first(), attribute.values.first()) {
        (Some(bytes), _) if bytes.len() == 16 => Some(format_guid(bytes)),
        (_, Some(text)) if text.len() == 16 && id_attr.eq_ignore_ascii_case("objectGUID") => {
            Some(format_guid(text.as_bytes()))
        }
        (_, Some(text)) => Some(text.clone()),
        (Some(bytes), None) => Some(bytes.iter().map(|b| format!("{b:02x}")).collect()),
        (None, None) => None,
    }
}

/// The naming context holding `base`: the longest of `contexts` it lies within.
fn naming_context_of(base: &str, contexts: &[String]) -> Option<String> {
    let base = Dn::parse(base).ok()?;
    contexts
        .iter()
        .filter_map(|c| Some((Dn::parse(c).ok()?, c)))
        .filter(|(dn, _)| base.is_within(dn))
        .max_by_key(|(dn, _)| dn.len())
        .map(|(_, c)| c.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::snapshot::{RawAttribute, RawEntry};

    #[test]
    fn the_naming_context_is_the_closest_one_holding_the_base() {
        let contexts =
            ["DC=corp,DC=test".to_owned(), "DC=DomainDnsZones,DC=corp,DC=test".to_owned(), "DC=other".to_owned()];
        assert_eq!(naming_context_of("OU=Staff,DC=corp,DC=test", &contexts).as_deref(), Some("DC=corp,DC=test"));
        assert_eq!(naming_context_of("ou=x,dc=other", &contexts).as_deref(), Some("DC=other"));
        assert_eq!(naming_context_of("DC=nowhere", &contexts), None);
    }

    #[test]
    fn ids_read_as_the_snapshot_names_them() {
        let entry = |value: Vec<u8>| RawEntry {
            dn: "CN=x".into(),
            attributes: vec![RawAttribute { name: "objectGUID".into(), values: Vec::new(), binary: vec![value] }],
        };
        let guid: Vec<u8> = (1..=16).collect();
        assert_eq!(object_id(&entry(guid.clone()), "objectGUID"), Some(format_guid(&guid)));
        let uuid = RawEntry {
            dn: "cn=x".into(),
            attributes: vec![RawAttribute {
                name: "entryUUID".into(),
                values: vec!["9deb1390-826e".into()],
                binary: Vec::new(),
            }],
        };
        assert_eq!(object_id(&uuid, "entryuuid").as_deref(), Some("9deb1390-826e"));
        assert_eq!(object_id(&uuid, "objectGUID"), None);
    }
}
