#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout, unreachable_pub)] // test code states its expectations
//! Fuzzing of the parsers that read outside input — DNs, schedules and cron, proxyAddresses,
//! keytabs, snapshot files — with proptest (cargo-fuzz needs a nightly toolchain, which this
//! machine lacks). Each target first replays its
//! checked-in corpus (`tests/corpus/`), then generates inputs: never a panic, and the invariants
//! below. `LDAPSYNC_FUZZ_SECONDS` keeps each target generating for that long (scripts/fuzz.sh);
//! without it every target runs one round, as a regular test.

use std::time::{Duration, Instant};

use ldapsync::api::{DailySchedule, LdapSyncScheduleSpec, MonthlySchedule, Weekday, WeeklySchedule};
use ldapsync::domain::address::{normalize_address, parse_proxy_address};
use ldapsync::domain::codec::{decode, encode};
use ldapsync::domain::dn::{Dn, normalize};
use ldapsync::domain::keytab::{keytab_principals, single_principal};
use ldapsync::domain::schedule::{Cron, parse_schedule};
use ldapsync::domain::snapshot::{ConnectionRef, DirObject, ForeignMember, Memberships, ObjectKind, Snapshot};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use sha2::{Digest, Sha256};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");

/// Runs `test` on `strategy` in rounds of 2,000 cases until the fuzz budget is spent.
fn fuzz<S: Strategy>(name: &str, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    fuzz_in_rounds_of(2_000, name, strategy, test);
}

/// [`fuzz`] with rounds of `cases` (smaller rounds for targets whose cases are expensive, so that
/// the single round of a regular test run stays short).
fn fuzz_in_rounds_of<S: Strategy>(
    cases: u32,
    name: &str,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    // Unset: one round (a regular test run). Set but not a number of seconds: a loud failure, not
    // a silent single round.
    let budget = std::env::var("LDAPSYNC_FUZZ_SECONDS").ok().map(|s| {
        Duration::from_secs(
            s.parse().unwrap_or_else(|_| panic!("LDAPSYNC_FUZZ_SECONDS={s:?} is not a number of seconds")),
        )
    });
    let started = Instant::now();
    let mut rounds = 0u64;
    loop {
        let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
        if let Err(e) = runner.run(&strategy, &test) {
            panic!("{name}: {e}");
        }
        rounds += 1;
        if budget.is_none_or(|b| started.elapsed() >= b) {
            break;
        }
    }
    eprintln!("{name}: {} cases in {:.0?}", rounds * u64::from(cases), started.elapsed());
}

/// (file name, bytes) of every file in a corpus folder.
fn corpus_files(folder: &str) -> Vec<(String, Vec<u8>)> {
    let path = format!("{CORPUS}/{folder}");
    std::fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .map(|entry| {
            let path = entry.expect("corpus entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
            (name, std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        })
        .collect()
}

fn corpus_lines(file: &str) -> Vec<String> {
    let path = format!("{CORPUS}/{file}");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")).lines().map(str::to_owned).collect()
}

fn check_dn(input: &str) -> Result<(), TestCaseError> {
    let parsed = Dn::parse(input);
    let normal = normalize(input);
    prop_assert_eq!(parsed.is_ok(), normal.is_ok(), "parse and normalize disagree on {:?}", input);
    if let (Ok(dn), Ok(n)) = (parsed, normal) {
        // The fast path for plain DNs gives exactly the full parser's normal form.
        prop_assert_eq!(&n, &dn.to_string(), "normalize and the parser's form differ for {:?}", input);
        // The normal form parses to the same DN and is a fixed point.
        let again = Dn::parse(&n).map_err(|e| TestCaseError::fail(format!("{n:?} from {input:?}: {e}")))?;
        prop_assert_eq!(&again, &dn, "{:?} -> {:?}", input, n);
        prop_assert_eq!(normalize(&n).ok(), Some(n.clone()));
        prop_assert!(dn.is_within(&dn));
    }
    Ok(())
}

#[test]
fn dn_parsing_and_normalisation() {
    for line in corpus_lines("dn.txt") {
        check_dn(&line).unwrap_or_else(|e| panic!("corpus {line:?}: {e}"));
    }
    // Anything at all, then DN-shaped text with escapes, quotes, hex and multi-valued RDNs.
    fuzz("dn/any", "\\PC{0,80}", |s| check_dn(&s));
    fuzz(
        "dn/shaped",
        "([a-zA-Z][a-zA-Z0-9-]{0,6}|[0-9](\\.[0-9]){1,3})=([^,+\\\\\"]{0,8}|\\\\[0-9a-fA-F]{2}|\\\\[,+\"\\\\<>; #=]|#[0-9a-f]{2,8}|\"[^\"]{0,6}\")([,+;] ?){0,1}{1,6}",
        |s| check_dn(&s),
    );
    // Case and spacing never change what a valid DN means.
    fuzz("dn/case", ("[A-Za-z]{1,8}", "[A-Za-z0-9 ]{1,10}", "[a-z]{1,8}"), |(ou, cn, dc)| {
        let a = format!("CN={cn},OU={ou},DC={dc}");
        let b = format!("cn={} ,  ou={},dc={}", cn.to_uppercase(), ou.to_lowercase(), dc.to_uppercase());
        match (normalize(&a), normalize(&b)) {
            (Ok(x), Ok(y)) => prop_assert_eq!(x, y),
            (x, y) => prop_assert_eq!(x.is_ok(), y.is_ok()),
        }
        Ok(())
    });
}

fn check_cron(expr: &str) -> Result<(), TestCaseError> {
    if let Ok(cron) = Cron::parse(expr) {
        let from = jiff::civil::date(2026, 11, 30).at(12, 0, 0, 0);
        if let Some(next) = cron.next_after(&from, 366 * 8) {
            prop_assert!(next > from, "{expr:?}: {next} is not after {from}");
            prop_assert_eq!(next.second(), 0);
        }
    }
    Ok(())
}

#[test]
fn cron_and_schedule_parsing() {
    for line in corpus_lines("cron.txt") {
        check_cron(&line).unwrap_or_else(|e| panic!("corpus {line:?}: {e}"));
    }
    fuzz("cron/any", "\\PC{0,40}", |s| check_cron(&s));
    fuzz("cron/shaped", "((\\*|[0-9]{1,2})(-[0-9]{1,2})?(/[0-9]{1,2})?(,[0-9]{1,2}){0,2} ){5}", |s| check_cron(&s));
    let zones = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "America/St_Johns"];
    let days = [Weekday::Monday, Weekday::Wednesday, Weekday::Sunday];
    let strategy = (0..zones.len(), 0..3u8, 0u8..24, 0u8..60, 1u8..=31, 0i64..(4 * 365 * 86400), 0..days.len());
    fuzz("schedule/next", strategy, |(zone, kind, hour, minute, day, offset, weekday)| {
        let at = format!("{hour:02}:{minute:02}");
        let mut spec =
            LdapSyncScheduleSpec { time_zone: zones[zone].into(), jitter: "0s".into(), ..Default::default() };
        let bound = match kind {
            0 => {
                spec.daily = Some(DailySchedule { at });
                2
            }
            1 => {
                spec.weekly = Some(WeeklySchedule { days: vec![days[weekday]], at });
                8
            }
            _ => {
                spec.monthly = Some(MonthlySchedule { day, at });
                63
            }
        };
        let schedule = parse_schedule(&spec).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let from =
            jiff::Timestamp::from_second(1_767_225_600 + offset).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let next = schedule.next_after(from).ok_or_else(|| TestCaseError::fail(format!("{spec:?} never fires")))?;
        prop_assert!(next > from);
        prop_assert!(next.duration_since(from).as_secs() <= bound * 86400, "{spec:?} from {from}: {next}");
        Ok(())
    });
    // Arbitrary specs (all text fields free) are accepted or refused, never a panic.
    fuzz("schedule/any", ("\\PC{0,12}", "\\PC{0,12}", "\\PC{0,12}", "\\PC{0,30}"), |(zone, jitter, at, cron)| {
        let spec =
            LdapSyncScheduleSpec { time_zone: zone, jitter, daily: Some(DailySchedule { at }), ..Default::default() };
        let _ = parse_schedule(&spec);
        let spec = LdapSyncScheduleSpec {
            cron: Some(cron),
            time_zone: "UTC".into(),
            jitter: "1m".into(),
            ..Default::default()
        };
        let _ = parse_schedule(&spec);
        Ok(())
    });
}

fn check_proxy(value: &str) -> Result<(), TestCaseError> {
    if let Some((primary, address)) = parse_proxy_address(value) {
        prop_assert!(value.starts_with("SMTP:") == primary, "{:?}", value);
        prop_assert_eq!(normalize_address(&address), Some(address.clone()), "normal form is stable");
        prop_assert!(address.contains('@') && !address.chars().any(char::is_whitespace));
        prop_assert_eq!(address.to_lowercase(), address);
    }
    Ok(())
}

#[test]
fn proxy_addresses_parsing() {
    for line in corpus_lines("proxy_addresses.txt") {
        check_proxy(&line).unwrap_or_else(|e| panic!("corpus {line:?}: {e}"));
    }
    fuzz("proxy/any", "\\PC{0,80}", |s| check_proxy(&s));
    fuzz("proxy/shaped", "(SMTP|smtp|SmTp|X500|SIP|x400)?:[a-zA-Z0-9.@ _-]{0,30}", |s| check_proxy(&s));
}

/// A keytab (format 0x0502) with one entry per (principal, realm, key length).
fn keytab(entries: &[(Vec<String>, String, usize)]) -> Vec<u8> {
    let mut out = vec![0x05, 0x02];
    for (components, realm, key_len) in entries {
        let mut rec = Vec::new();
        rec.extend((components.len() as u16).to_be_bytes());
        rec.extend((realm.len() as u16).to_be_bytes());
        rec.extend(realm.as_bytes());
        for c in components {
            rec.extend((c.len() as u16).to_be_bytes());
            rec.extend(c.as_bytes());
        }
        rec.extend(1u32.to_be_bytes());
        rec.extend(0u32.to_be_bytes());
        rec.push(1);
        rec.extend(18u16.to_be_bytes());
        rec.extend((*key_len as u16).to_be_bytes());
        rec.extend(std::iter::repeat_n(7u8, *key_len));
        out.extend((rec.len() as i32).to_be_bytes());
        out.extend(rec);
    }
    out
}

#[test]
fn keytab_parsing() {
    for (name, bytes) in corpus_files("keytab") {
        let result = single_principal(&bytes, None);
        assert_eq!(result.is_ok(), name == "one-principal.keytab" || name == "with-hole.keytab", "{name}: {result:?}");
    }
    fuzz("keytab/any", proptest::collection::vec(any::<u8>(), 0..300), |bytes| {
        let _ = keytab_principals(&bytes);
        let _ = single_principal(&bytes, Some("x@Y"));
        Ok(())
    });
    // Valid keytabs give back exactly their principals; any truncation is an error, not a panic.
    let entry = (proptest::collection::vec("[a-zA-Z0-9-]{1,12}", 1..3), "[A-Z.]{1,20}", 1usize..64);
    fuzz("keytab/valid", (proptest::collection::vec(entry, 1..4), any::<prop::sample::Index>()), |(entries, cut)| {
        let bytes = keytab(&entries);
        let found = keytab_principals(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut expected: Vec<String> = Vec::new();
        for (components, realm, _) in &entries {
            let p = format!("{}@{realm}", components.join("/"));
            if !expected.contains(&p) {
                expected.push(p);
            }
        }
        let names: Vec<String> = found.into_iter().map(|(p, _)| p).collect();
        prop_assert_eq!(&names, &expected);
        prop_assert_eq!(single_principal(&bytes, None).is_ok(), expected.len() == 1);
        // Cutting between records leaves a shorter valid keytab; anywhere else it is damaged.
        let mut boundaries = vec![2usize];
        let mut at = 2usize;
        while at + 4 <= bytes.len() {
            let len = i32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
            at += 4 + len;
            boundaries.push(at);
        }
        let cut = cut.index(bytes.len().max(1));
        if cut > 2 && !boundaries.contains(&cut) {
            prop_assert!(
                keytab_principals(&bytes[..cut]).is_err(),
                "a keytab cut at {} of {} parsed",
                cut,
                bytes.len()
            );
        }
        Ok(())
    });
}

/// An object and its direct groups.
fn dir_object() -> impl Strategy<Value = (DirObject, Vec<u32>)> {
    (
        prop_oneof![Just(ObjectKind::User), Just(ObjectKind::Contact), Just(ObjectKind::Group)],
        "\\PC{0,40}",
        "[0-9a-f-]{0,36}",
        proptest::option::of("\\PC{0,20}"),
        proptest::option::of("\\PC{0,30}"),
        any::<bool>(),
        proptest::collection::vec("[a-z0-9.]{1,10}@[a-z]{1,8}\\.test", 0..4),
        proptest::collection::vec(0u32..50, 0..5),
    )
        .prop_map(|(kind, dn, id, account_name, display_name, disabled, addresses, member_of)| {
            let object = DirObject {
                kind,
                sid: (kind == ObjectKind::Group).then(|| dn.as_bytes().to_vec()),
                dn,
                id,
                principal_name: account_name.as_ref().map(|a| format!("{a}@example.test")),
                account_name,
                display_name,
                disabled,
                primary_address: addresses.first().cloned(),
                primary_group_sid: (kind == ObjectKind::User).then(|| member_of.len().to_le_bytes().to_vec()),
                addresses,
            };
            (object, member_of)
        })
}

fn snapshot() -> impl Strategy<Value = Snapshot> {
    (proptest::collection::vec(dir_object(), 0..40), "\\PC{0,20}", any::<i64>(), any::<u64>()).prop_map(
        |(objects, server, taken_at, unresolved_members)| {
            let (objects, lists): (Vec<DirObject>, Vec<Vec<u32>>) = objects.into_iter().unzip();
            Snapshot {
                connection: ConnectionRef { namespace: "ns".into(), name: "c".into(), uid: "u".into() },
                domain: "example.test".into(),
                search_base: "dc=example,dc=test".into(),
                taken_at,
                server,
                foreign_members: objects
                    .iter()
                    .enumerate()
                    .filter(|(_, o)| o.kind == ObjectKind::Group)
                    .map(|(i, o)| ForeignMember { group: i as u32, dn: format!("CN=outside,{}", o.dn) })
                    .collect(),
                objects: objects.into_iter().map(std::sync::Arc::new).collect(),
                memberships: Memberships::from_lists(lists),
                unresolved_members,
                sync_state: None,
            }
        },
    )
}

/// A file with a well-formed header and a matching checksum around `payload` (zstd-compressed
/// postcard, or whatever bytes the target wants the decoder to meet behind the checksum).
fn sealed(raw_len: u64, payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(60 + payload.len());
    bytes.extend(b"LDSYNCSN");
    bytes.extend(1u16.to_be_bytes());
    bytes.extend(0u16.to_be_bytes());
    bytes.extend(raw_len.to_be_bytes());
    bytes.extend((payload.len() as u64).to_be_bytes());
    bytes.extend(Sha256::digest(payload));
    bytes.extend(payload);
    bytes
}

#[test]
fn snapshot_decoding() {
    // Corpus: the valid files decode, every damaged one is refused with its reason.
    for (name, bytes) in corpus_files("snapshot") {
        match (name.strip_prefix("valid-"), decode(&bytes)) {
            (Some(_), Ok(snapshot)) => {
                let again = encode(&snapshot).expect("encode").bytes;
                if bytes[8..10] == ldapsync::domain::codec::VERSION.to_be_bytes() {
                    assert_eq!(again, bytes, "{name}");
                } else {
                    // An older format: read, and written again in the current one.
                    assert_eq!(decode(&again).expect("decode"), snapshot, "{name}");
                }
            }
            (Some(_), Err(e)) => panic!("{name}: {e}"),
            (None, Ok(_)) => panic!("{name} was accepted"),
            (None, Err(e)) => {
                let reason = name.split('.').next().unwrap_or_default();
                assert_eq!(e.reason(), reason, "{name}: {e}");
            }
        }
    }
    fuzz_in_rounds_of(200, "snapshot/round-trip", snapshot(), |s| {
        let a = encode(&s).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let b = encode(&s).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&a.bytes, &b.bytes);
        prop_assert_eq!(decode(&a.bytes).map_err(|e| TestCaseError::fail(e.to_string()))?, s);
        Ok(())
    });
    fuzz("snapshot/any-bytes", proptest::collection::vec(any::<u8>(), 0..512), |bytes| {
        let _ = decode(&bytes);
        Ok(())
    });
    // One flipped byte anywhere, or a cut anywhere, is always refused.
    let damage = (snapshot(), any::<prop::sample::Index>(), 1u8..=255, any::<bool>());
    fuzz_in_rounds_of(200, "snapshot/damaged", damage, |(s, at, flip, cut)| {
        let mut bytes = encode(&s).map_err(|e| TestCaseError::fail(e.to_string()))?.bytes;
        let i = at.index(bytes.len());
        if cut {
            bytes.truncate(i);
        } else {
            bytes[i] ^= flip;
        }
        prop_assert!(decode(&bytes).is_err(), "damage at {} (cut {}) was accepted", i, cut);
        Ok(())
    });
    // Behind a valid checksum: a damaged encoding, compressed and sealed properly, must still
    // come back as an error or a snapshot — never a panic or an allocation of the declared size.
    let behind = (snapshot(), proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4), 0u64..8);
    fuzz_in_rounds_of(200, "snapshot/behind-checksum", behind, |(s, edits, size_skew)| {
        let mut raw = postcard::to_allocvec(&s).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for (at, value) in edits {
            let i = at.index(raw.len());
            raw[i] = value;
        }
        let compressed = zstd::bulk::compress(&raw, 1).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let declared = match size_skew {
            0 => u64::MAX,
            1 => 4 << 30,
            2 => raw.len() as u64 + 1,
            3 => (raw.len() as u64).saturating_sub(1),
            _ => raw.len() as u64,
        };
        let result = decode(&sealed(declared, &compressed));
        if declared != raw.len() as u64 {
            prop_assert!(result.is_err(), "declared {} for {} bytes was accepted", declared, raw.len());
        }
        Ok(())
    });
    // Arbitrary payload bytes behind a valid checksum.
    fuzz("snapshot/payload", (proptest::collection::vec(any::<u8>(), 0..256), 0u64..1024), |(payload, raw_len)| {
        let _ = decode(&sealed(raw_len, &payload));
        Ok(())
    });
}
