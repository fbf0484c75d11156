//! Fuzzing of the parsers that read outside input — DNs, schedules and cron, proxyAddresses,
//! keytabs — with proptest (cargo-fuzz needs a nightly toolchain, which this machine lacks; the
//! snapshot decoder has its own targets in codec_properties.rs). Each target first replays its
//! checked-in corpus (`tests/corpus/`), then generates inputs: never a panic, and the invariants
//! below. `LDAPSYNC_FUZZ_SECONDS` keeps each target generating for that long (scripts/fuzz.sh);
//! without it every target runs one round, as a regular test.

use std::time::{Duration, Instant};

use ldapsync::api::{DailySchedule, LdapSyncScheduleSpec, MonthlySchedule, Weekday, WeeklySchedule};
use ldapsync::domain::address::{normalize_address, parse_proxy_address};
use ldapsync::domain::dn::{Dn, normalize};
use ldapsync::domain::keytab::{keytab_principals, single_principal};
use ldapsync::domain::schedule::{Cron, parse_schedule};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/corpus");

/// Runs `test` on `strategy` in rounds of 2,000 cases until the fuzz budget is spent.
fn fuzz<S: Strategy>(name: &str, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let budget = std::env::var("LDAPSYNC_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).map(Duration::from_secs);
    let started = Instant::now();
    let mut rounds = 0u64;
    loop {
        let mut runner = TestRunner::new(Config { cases: 2_000, failure_persistence: None, ..Config::default() });
        if let Err(e) = runner.run(&strategy, &test) {
            panic!("{name}: {e}");
        }
        rounds += 1;
        if budget.is_none_or(|b| started.elapsed() >= b) {
            break;
        }
    }
    eprintln!("{name}: {} cases in {:.0?}", rounds * 2_000, started.elapsed());
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
    for entry in std::fs::read_dir(format!("{CORPUS}/keytab")).expect("keytab corpus") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("read");
        let result = single_principal(&bytes, None);
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
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
