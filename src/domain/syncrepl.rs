//! RFC 4533 content synchronisation, the pure part: the request control, the server's Sync
//! State, Sync Done and Sync Info values read without ldap3's parsers (which panic on a
//! malformed value), and a refresh's messages folded into what changed.

use ldap3::asn1::{PL, StructureTag, TagClass, parse_tag};
use rustc_hash::FxHashSet;

use super::ber;
use super::incremental::{ChangeSet, DeletionSource, uuid_text};

pub const SYNC_REQUEST_OID: &str = "1.3.6.1.4.1.4203.1.9.1.1";
pub const SYNC_STATE_OID: &str = "1.3.6.1.4.1.4203.1.9.1.2";
pub const SYNC_DONE_OID: &str = "1.3.6.1.4.1.4203.1.9.1.3";
pub const SYNC_INFO_OID: &str = "1.3.6.1.4.1.4203.1.9.1.4";
/// `e-syncRefreshRequired`: the server cannot refresh from this cookie.
pub const REFRESH_REQUIRED: u32 = 4096;

/// The value of a Sync Request control: `refreshOnly` (1) or `refreshAndPersist` (3), from
/// `cookie` when there is one.
pub fn request_value(persist: bool, cookie: Option<&[u8]>) -> Vec<u8> {
    let mut body = ber::tlv(0x0a, &[if persist { 3 } else { 1 }]);
    if let Some(cookie) = cookie {
        body.extend(ber::octets(cookie));
    }
    ber::tlv(0x30, &body)
}

/// What the server says of one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryState {
    Present,
    Add,
    Modify,
    Delete,
}

/// A Sync State control: the entry's state and its entryUUID (text form).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncState {
    pub state: EntryState,
    pub uuid: String,
    pub cookie: Option<Vec<u8>>,
}

/// A Sync Done control.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncDone {
    pub cookie: Option<Vec<u8>>,
    pub refresh_deletes: bool,
}

/// A Sync Info intermediate message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncInfo {
    NewCookie(Vec<u8>),
    /// The end of the delete phase (`refreshDelete`) or of the present phase (`refreshPresent`).
    PhaseEnd {
        cookie: Option<Vec<u8>>,
        deletes: bool,
        done: bool,
    },
    IdSet {
        cookie: Option<Vec<u8>>,
        refresh_deletes: bool,
        uuids: Vec<String>,
    },
}

/// `None` for anything that is not a well-formed value.
pub fn parse_state(value: &[u8]) -> Option<SyncState> {
    let mut parts = sequence(value)?.into_iter();
    let state = match universal_int(parts.next()?, 10)? {
        0 => EntryState::Present,
        1 => EntryState::Add,
        2 => EntryState::Modify,
        3 => EntryState::Delete,
        _ => return None,
    };
    let uuid = uuid_text(&universal_bytes(parts.next()?, 4)?)?;
    let cookie = match parts.next() {
        Some(tag) => Some(universal_bytes(tag, 4)?),
        None => None,
    };
    Some(SyncState { state, uuid, cookie })
}

pub fn parse_done(value: &[u8]) -> Option<SyncDone> {
    let (cookie, refresh_deletes, rest) = cookie_and_flag(sequence(value)?, false)?;
    rest.is_empty().then_some(SyncDone { cookie, refresh_deletes })
}

/// The value of an intermediate response named [`SYNC_INFO_OID`].
pub fn parse_info(value: &[u8]) -> Option<SyncInfo> {
    let (_, tag) = parse_tag(value).ok()?;
    if tag.class != TagClass::Context {
        return None;
    }
    match (tag.id, tag.payload) {
        (0, PL::P(cookie)) => Some(SyncInfo::NewCookie(cookie)),
        (id @ (1 | 2), PL::C(parts)) => {
            let (cookie, done, rest) = cookie_and_flag(parts, true)?;
            rest.is_empty().then_some(SyncInfo::PhaseEnd { cookie, deletes: id == 1, done })
        }
        (3, PL::C(parts)) => {
            let (cookie, refresh_deletes, mut rest) = cookie_and_flag(parts, false)?;
            let set = rest.pop()?;
            if !rest.is_empty() || set.class != TagClass::Universal || set.id != 17 {
                return None;
            }
            let PL::C(values) = set.payload else { return None };
            let uuids =
                values.into_iter().map(|v| universal_bytes(v, 4).and_then(|b| uuid_text(&b))).collect::<Option<_>>()?;
            Some(SyncInfo::IdSet { cookie, refresh_deletes, uuids })
        }
        _ => None,
    }
}

/// `SEQUENCE { cookie OCTET STRING OPTIONAL, flag BOOLEAN DEFAULT default, ... }`: the cookie,
/// the flag and what follows them.
fn cookie_and_flag(parts: Vec<StructureTag>, default: bool) -> Option<(Option<Vec<u8>>, bool, Vec<StructureTag>)> {
    let mut parts = parts.into_iter().peekable();
    let cookie = match parts.peek() {
        Some(t) if t.class == TagClass::Universal && t.id == 4 => Some(universal_bytes(parts.next()?, 4)?),
        _ => None,
    };
    let flag = match parts.peek() {
        Some(t) if t.class == TagClass::Universal && t.id == 1 => {
            let bytes = universal_bytes(parts.next()?, 1)?;
            match bytes.as_slice() {
                [b] => *b != 0,
                _ => return None,
            }
        }
        _ => default,
    };
    Some((cookie, flag, parts.collect()))
}

fn sequence(value: &[u8]) -> Option<Vec<StructureTag>> {
    let (rest, tag) = parse_tag(value).ok()?;
    match tag {
        StructureTag { class: TagClass::Universal, id: 16, payload: PL::C(parts) } if rest.is_empty() => Some(parts),
        _ => None,
    }
}

fn universal_bytes(tag: StructureTag, id: u64) -> Option<Vec<u8>> {
    match tag {
        StructureTag { class: TagClass::Universal, id: found, payload: PL::P(bytes) } if found == id => Some(bytes),
        _ => None,
    }
}

fn universal_int(tag: StructureTag, id: u64) -> Option<u64> {
    let bytes = universal_bytes(tag, id)?;
    if bytes.is_empty() || bytes.len() > 4 {
        return None;
    }
    Some(bytes.iter().fold(0u64, |n, b| n << 8 | u64::from(*b)))
}

/// A refresh's messages folded into what changed since the cookie.
#[derive(Debug, Default)]
pub struct Refresh {
    changed: Vec<String>,
    deleted: Vec<String>,
    present: FxHashSet<String>,
    /// Whether a present phase took place (entries not named present are gone).
    present_phase: bool,
    cookie: Option<Vec<u8>>,
    /// Search result entries the server sent.
    entries: u64,
}

impl Refresh {
    pub fn entry(&mut self, state: SyncState) {
        self.entries += 1;
        if let Some(cookie) = state.cookie {
            self.cookie = Some(cookie);
        }
        match state.state {
            EntryState::Add | EntryState::Modify => self.changed.push(state.uuid),
            EntryState::Delete => self.deleted.push(state.uuid),
            EntryState::Present => {
                self.present_phase = true;
                self.present.insert(state.uuid);
            }
        }
    }

    /// A Sync Info message (not an entry: it does not count as one read).
    pub fn info(&mut self, info: SyncInfo) {
        match info {
            SyncInfo::NewCookie(cookie) => self.cookie = Some(cookie),
            SyncInfo::PhaseEnd { cookie, deletes, .. } => {
                if !deletes {
                    self.present_phase = true;
                }
                self.cookie = cookie.or(self.cookie.take());
            }
            SyncInfo::IdSet { cookie, refresh_deletes, uuids } => {
                self.cookie = cookie.or(self.cookie.take());
                if refresh_deletes {
                    self.deleted.extend(uuids);
                } else {
                    self.present_phase = true;
                    self.present.extend(uuids);
                }
            }
        }
    }

    /// The changes against the ids the snapshot holds, and the cookie to continue from. After
    /// a present phase every held id the server did not name is gone; only then is `held`
    /// called for them.
    pub fn finish<'a, I: IntoIterator<Item = &'a str>, E>(
        mut self,
        done: SyncDone,
        held: impl FnOnce() -> Result<I, E>,
    ) -> Result<(ChangeSet, Option<Vec<u8>>), E> {
        let cookie = done.cookie.or(self.cookie.take());
        if self.present_phase || !done.refresh_deletes && !self.present.is_empty() {
            let changed: FxHashSet<&str> = self.changed.iter().map(String::as_str).collect();
            let gone: Vec<String> = held()?
                .into_iter()
                .filter(|id| !self.present.contains(*id) && !changed.contains(id))
                .map(str::to_owned)
                .collect();
            self.deleted.extend(gone);
        }
        self.deleted.sort_unstable();
        self.deleted.dedup();
        self.changed.sort_unstable();
        self.changed.dedup();
        let changes = ChangeSet {
            changed: self.changed,
            deleted: self.deleted,
            entries_read: self.entries,
            deletions: Some(DeletionSource::SyncRefresh),
        };
        Ok((changes, cookie))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID_A: [u8; 16] = [0xaa; 16];
    const UUID_B: [u8; 16] = [0xbb; 16];

    fn state_value(state: u8, uuid: &[u8], cookie: Option<&[u8]>) -> Vec<u8> {
        let mut body = ber::tlv(0x0a, &[state]);
        body.extend(ber::octets(uuid));
        if let Some(c) = cookie {
            body.extend(ber::octets(c));
        }
        ber::tlv(0x30, &body)
    }

    fn text(uuid: &[u8]) -> String {
        uuid_text(uuid).expect("uuid")
    }

    #[test]
    fn values_as_slapd_sends_them() {
        let s = parse_state(&state_value(1, &UUID_A, Some(b"rid=000,csn=x"))).expect("state");
        assert_eq!(s.state, EntryState::Add);
        assert_eq!(s.uuid, "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa");
        assert_eq!(s.cookie.as_deref(), Some(&b"rid=000,csn=x"[..]));
        let done = ber::tlv(0x30, &[ber::octets(b"c1"), vec![0x01, 0x01, 0xff]].concat());
        assert_eq!(parse_done(&done), Some(SyncDone { cookie: Some(b"c1".to_vec()), refresh_deletes: true }));
        assert_eq!(parse_done(&ber::tlv(0x30, &[])), Some(SyncDone::default()));
        let mut set = ber::octets(&UUID_A);
        set.extend(ber::octets(&UUID_B));
        let mut id_set = vec![0x01, 0x01, 0xff];
        id_set.extend(ber::tlv(0x31, &set));
        let info = parse_info(&ber::tlv(0xa3, &id_set)).expect("syncIdSet");
        assert_eq!(
            info,
            SyncInfo::IdSet { cookie: None, refresh_deletes: true, uuids: vec![text(&UUID_A), text(&UUID_B)] }
        );
        assert_eq!(parse_info(&ber::tlv(0x80, b"new")), Some(SyncInfo::NewCookie(b"new".to_vec())));
        assert_eq!(
            parse_info(&ber::tlv(0xa2, &ber::octets(b"c2"))),
            Some(SyncInfo::PhaseEnd { cookie: Some(b"c2".to_vec()), deletes: false, done: true })
        );
    }

    #[test]
    fn malformed_values_are_refused_not_panicked_on() {
        let good = state_value(2, &UUID_A, None);
        for cut in 0..good.len() {
            assert_eq!(parse_state(&good[..cut]), None, "cut at {cut}");
        }
        for bad in [
            state_value(9, &UUID_A, None),
            state_value(1, &UUID_A[..15], None),
            ber::tlv(0x30, &ber::octets(b"x")),
            vec![0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
        ] {
            assert_eq!(parse_state(&bad), None, "{bad:02x?}");
        }
        assert_eq!(parse_done(&ber::tlv(0x30, &[0x01, 0x02, 0xff, 0xff])), None);
        assert_eq!(parse_info(&ber::tlv(0xa3, &ber::octets(b"c"))), None, "an id set needs its set");
        assert_eq!(parse_info(&ber::tlv(0xa5, &[])), None);
        assert_eq!(parse_info(&[]), None);
    }

    #[test]
    fn a_present_phase_deletes_what_it_does_not_name() {
        let mut refresh = Refresh::default();
        refresh.entry(SyncState { state: EntryState::Present, uuid: "a".into(), cookie: None });
        refresh.entry(SyncState { state: EntryState::Modify, uuid: "c".into(), cookie: None });
        refresh.info(SyncInfo::PhaseEnd { cookie: Some(b"k".to_vec()), deletes: false, done: true });
        let (changes, cookie) = refresh.finish(SyncDone::default(), held(&["a", "b", "c"])).expect("finish");
        assert_eq!(changes.changed, ["c"]);
        assert_eq!(changes.deleted, ["b"]);
        assert_eq!(cookie.as_deref(), Some(&b"k"[..]));
    }

    #[test]
    fn a_delete_phase_names_what_is_gone() {
        let mut refresh = Refresh::default();
        refresh.info(SyncInfo::IdSet { cookie: None, refresh_deletes: true, uuids: vec!["b".into()] });
        refresh.entry(SyncState { state: EntryState::Add, uuid: "d".into(), cookie: None });
        let done = SyncDone { cookie: Some(b"k2".to_vec()), refresh_deletes: true };
        let (changes, cookie) = refresh.finish(done, not_needed).expect("the held ids are not needed");
        assert_eq!((changes.changed, changes.deleted), (vec!["d".to_owned()], vec!["b".to_owned()]));
        assert_eq!(cookie.as_deref(), Some(&b"k2"[..]));
        let (nothing, _) = Refresh::default()
            .finish(SyncDone { cookie: None, refresh_deletes: true }, not_needed)
            .expect("an up-to-date cookie needs no held ids");
        assert!(nothing.is_empty(), "an up-to-date cookie changes nothing");
    }

    fn held<'a>(ids: &'a [&'a str]) -> impl FnOnce() -> Result<Vec<&'a str>, ()> {
        move || Ok(ids.to_vec())
    }

    /// Stands for a snapshot that must stay unloaded.
    fn not_needed() -> Result<Vec<&'static str>, ()> {
        Err(())
    }
}
