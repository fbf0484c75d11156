//! Schedules from LdapSyncSchedule objects: cron expressions, times, zones and intervals parse or
//! are refused, and an accepted schedule's next time is later than the time asked about.
#![no_main]

use ldapsync::api::LdapSyncScheduleSpec;
use ldapsync::domain::schedule::parse_schedule;
use libfuzzer_sys::fuzz_target;

const ZONES: [&str; 4] = ["UTC", "Europe/Berlin", "America/St_Johns", "Australia/Lord_Howe"];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let value = serde_json::Value::String(text.to_owned());
    let zone = ZONES[usize::from(selector >> 4) % ZONES.len()];
    let kind = match selector % 6 {
        0 => serde_json::json!({"cron": value}),
        1 => serde_json::json!({"daily": {"at": value}}),
        2 => serde_json::json!({"interval": {"every": value}}),
        3 => serde_json::json!({"once": {"at": value}}),
        4 => serde_json::json!({"weekly": {"days": ["Mon", "Fri"], "at": value}}),
        _ => serde_json::json!({"monthly": {"day": 31, "at": value}}),
    };
    let mut spec = kind;
    spec["timeZone"] = serde_json::json!(zone);
    spec["jitter"] = serde_json::json!("1m");
    let Ok(spec) = serde_json::from_value::<LdapSyncScheduleSpec>(spec) else { return };
    if let Ok(schedule) = parse_schedule(&spec) {
        let after = jiff::Timestamp::from_second(1_790_000_000 + i64::from(selector) * 86_399).expect("time");
        if let Some(next) = schedule.next_after(after) {
            assert!(next > after, "{spec:?}: {next} is not after {after}");
        }
    }
});
