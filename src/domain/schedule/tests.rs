use super::*;
use crate::api::{DailySchedule, IntervalSchedule, MonthlySchedule, OnceSchedule, WeeklySchedule};

fn spec(tz: &str) -> LdapSyncScheduleSpec {
    LdapSyncScheduleSpec { time_zone: tz.into(), jitter: "1m".into(), ..Default::default() }
}

fn ts(s: &str) -> Timestamp {
    s.parse().expect("test timestamp")
}

/// Runs strictly after `from`, chained `n` times.
fn runs(schedule: &Schedule, from: &str, n: usize) -> Vec<String> {
    let mut at = ts(from);
    let mut out = Vec::new();
    for _ in 0..n {
        match schedule.next_after(at) {
            Some(next) => {
                out.push(next.to_zoned(schedule.time_zone.clone()).strftime("%Y-%m-%dT%H:%M%:z").to_string());
                at = next;
            }
            None => break,
        }
    }
    out
}

#[test]
fn no_rule_means_every_thirty_minutes() {
    let s = parse_schedule(&spec("UTC")).expect("valid");
    assert_eq!(s.rule, Rule::Interval(Duration::from_secs(1800)));
    assert_eq!(runs(&s, "2026-01-01T00:10:00Z", 2), ["2026-01-01T00:40+00:00", "2026-01-01T01:10+00:00"]);
}

#[test]
fn daily_across_dst_gap_and_overlap() {
    let mut sp = spec("Europe/Berlin");
    sp.daily = Some(DailySchedule { at: "02:30".into() });
    let s = parse_schedule(&sp).expect("valid");
    // 2026-03-29 02:30 does not exist in Berlin: it runs at 03:30 CEST, once.
    assert_eq!(
        runs(&s, "2026-03-27T12:00:00Z", 4),
        ["2026-03-28T02:30+01:00", "2026-03-29T03:30+02:00", "2026-03-30T02:30+02:00", "2026-03-31T02:30+02:00"]
    );
    // 2026-10-25 02:30 happens twice: it runs once, at the first (CEST).
    assert_eq!(
        runs(&s, "2026-10-24T12:00:00Z", 3),
        ["2026-10-25T02:30+02:00", "2026-10-26T02:30+01:00", "2026-10-27T02:30+01:00"]
    );
}

#[test]
fn monthly_day_31_runs_on_the_last_day_of_shorter_months() {
    let mut sp = spec("UTC");
    sp.monthly = Some(MonthlySchedule { day: 31, at: "23:00".into() });
    let s = parse_schedule(&sp).expect("valid");
    assert_eq!(
        runs(&s, "2027-01-15T00:00:00Z", 5),
        [
            "2027-01-31T23:00+00:00",
            "2027-02-28T23:00+00:00",
            "2027-03-31T23:00+00:00",
            "2027-04-30T23:00+00:00",
            "2027-05-31T23:00+00:00"
        ]
    );
    // Leap year February.
    assert_eq!(runs(&s, "2028-02-01T00:00:00Z", 1), ["2028-02-29T23:00+00:00"]);
    let mut sp = spec("UTC");
    sp.monthly = Some(MonthlySchedule { day: 30, at: "00:00".into() });
    let s = parse_schedule(&sp).expect("valid");
    assert_eq!(runs(&s, "2027-02-27T00:00:00Z", 2), ["2027-02-28T00:00+00:00", "2027-03-30T00:00+00:00"]);
}

#[test]
fn weekly_picks_the_named_days_in_the_zone() {
    let mut sp = spec("America/New_York");
    sp.weekly = Some(WeeklySchedule { days: vec![Weekday::Monday, Weekday::Friday], at: "01:30".into() });
    let s = parse_schedule(&sp).expect("valid");
    // 2026-11-30 is a Monday.
    assert_eq!(
        runs(&s, "2026-11-30T07:00:00Z", 3),
        ["2026-12-04T01:30-05:00", "2026-12-07T01:30-05:00", "2026-12-11T01:30-05:00"]
    );
    // 2026-11-01 01:30 happens twice in New York (a Sunday); Weekly on Sunday runs once.
    let mut sp = spec("America/New_York");
    sp.weekly = Some(WeeklySchedule { days: vec![Weekday::Sunday], at: "01:30".into() });
    let s = parse_schedule(&sp).expect("valid");
    assert_eq!(runs(&s, "2026-10-31T00:00:00Z", 2), ["2026-11-01T01:30-04:00", "2026-11-08T01:30-05:00"]);
}

#[test]
fn once_fires_once_and_reads_local_times_in_the_zone() {
    let mut sp = spec("Europe/Berlin");
    sp.once = Some(OnceSchedule { at: "2026-12-24T18:00:00".into() });
    let s = parse_schedule(&sp).expect("valid");
    assert_eq!(runs(&s, "2026-12-01T00:00:00Z", 3), ["2026-12-24T18:00+01:00"]);
    sp.once = Some(OnceSchedule { at: "2026-12-24T18:00:00Z".into() });
    let s = parse_schedule(&sp).expect("valid");
    assert_eq!(runs(&s, "2026-12-01T00:00:00Z", 3), ["2026-12-24T19:00+01:00"]);
    assert!(s.next_after(ts("2026-12-25T00:00:00Z")).is_none());
}

#[test]
fn manual_never_fires_by_itself() {
    let mut sp = spec("UTC");
    sp.manual = Some(Default::default());
    let s = parse_schedule(&sp).expect("valid");
    assert!(s.next_after(ts("2026-01-01T00:00:00Z")).is_none());
}

#[test]
fn cron_table() {
    let cases: &[(&str, &str, &str, &[&str])] = &[
        ("*/15 * * * *", "UTC", "2026-01-01T00:07:00Z", &["00:15", "00:30", "00:45", "01:00"]),
        ("15 2 * * 1-5", "UTC", "2026-11-27T03:00:00Z", &["2026-11-30 02:15", "2026-12-01 02:15"]),
        ("0 0 1,15 * *", "UTC", "2026-01-01T00:00:00Z", &["2026-01-15 00:00", "2026-02-01 00:00"]),
        ("0 12 * feb sun", "UTC", "2026-01-01T00:00:00Z", &["2026-02-01 12:00", "2026-02-08 12:00"]),
        ("0 0 13 * 5", "UTC", "2026-01-01T00:00:00Z", &["2026-01-02 00:00", "2026-01-09 00:00", "2026-01-13 00:00"]),
        ("@hourly", "UTC", "2026-01-01T00:30:00Z", &["01:00", "02:00"]),
        ("0 0 * * 7", "UTC", "2026-11-30T00:00:00Z", &["2026-12-06 00:00"]),
        // Spring forward in Berlin: 02:xx does not exist; the 02:30 run happens once at 03:30.
        ("30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z", &["2026-03-29 03:30", "2026-03-30 02:30"]),
        // Fall back: the repeated 02:xx hour runs once per matching minute.
        ("30 * * * *", "Europe/Berlin", "2026-10-24T23:00:00Z", &["01:30", "02:30", "03:30"]),
    ];
    for (expr, tz, from, want) in cases {
        let mut sp = spec(tz);
        sp.cron = Some((*expr).into());
        let s = parse_schedule(&sp).unwrap_or_else(|e| panic!("{expr}: {e}"));
        let got = runs(&s, from, want.len());
        let got: Vec<String> = got
            .iter()
            .map(|r| if want[0].len() == 5 { r[11..16].to_owned() } else { format!("{} {}", &r[..10], &r[11..16]) })
            .collect();
        assert_eq!(&got, want, "{expr} in {tz} from {from}");
    }
}

#[test]
fn invalid_schedules_name_the_field() {
    let cases: Vec<(LdapSyncScheduleSpec, &str, &str)> = vec![
        (spec("Mars/Olympus"), "spec.timeZone", "IANA"),
        (LdapSyncScheduleSpec { jitter: "soon".into(), ..spec("UTC") }, "spec.jitter", "duration"),
        (LdapSyncScheduleSpec { jitter: "13h".into(), ..spec("UTC") }, "spec.jitter", "12h"),
        (
            LdapSyncScheduleSpec { interval: Some(IntervalSchedule { every: "30s".into() }), ..spec("UTC") },
            "spec.interval.every",
            "1m",
        ),
        (
            LdapSyncScheduleSpec { daily: Some(DailySchedule { at: "24:00".into() }), ..spec("UTC") },
            "spec.daily.at",
            "HH:MM",
        ),
        (
            LdapSyncScheduleSpec { weekly: Some(WeeklySchedule { days: vec![], at: "01:00".into() }), ..spec("UTC") },
            "spec.weekly.days",
            "at least one",
        ),
        (
            LdapSyncScheduleSpec { monthly: Some(MonthlySchedule { day: 32, at: "01:00".into() }), ..spec("UTC") },
            "spec.monthly.day",
            "1-31",
        ),
        (
            LdapSyncScheduleSpec { once: Some(OnceSchedule { at: "tomorrow".into() }), ..spec("UTC") },
            "spec.once.at",
            "timestamp",
        ),
        (LdapSyncScheduleSpec { cron: Some("* * * *".into()), ..spec("UTC") }, "spec.cron", "five"),
        (LdapSyncScheduleSpec { cron: Some("61 * * * *".into()), ..spec("UTC") }, "spec.cron", "0-59"),
        (LdapSyncScheduleSpec { cron: Some("*/0 * * * *".into()), ..spec("UTC") }, "spec.cron", "step"),
        (LdapSyncScheduleSpec { cron: Some("0 0 30 2 *".into()), ..spec("UTC") }, "spec.cron", "never"),
        (LdapSyncScheduleSpec { cron: Some("5-1 * * * *".into()), ..spec("UTC") }, "spec.cron", "backwards"),
        (
            LdapSyncScheduleSpec {
                daily: Some(DailySchedule { at: "01:00".into() }),
                cron: Some("* * * * *".into()),
                ..spec("UTC")
            },
            "spec",
            "exactly one",
        ),
    ];
    for (sp, field, needle) in cases {
        let err = parse_schedule(&sp).expect_err(&format!("{sp:?} must be invalid"));
        assert_eq!(err.field, field, "{err}");
        assert!(err.message.contains(needle), "{err} should mention {needle}");
    }
}

#[test]
fn jitter_is_deterministic_and_bounded() {
    let max = Duration::from_secs(60);
    let a = jitter_for("pod-a", "uid-1", max);
    assert_eq!(a, jitter_for("pod-a", "uid-1", max));
    assert!(a < max);
    let spread: std::collections::BTreeSet<_> =
        (0..20).map(|i| jitter_for(&format!("pod-{i}"), "uid-1", max)).collect();
    assert!(spread.len() > 15, "pods should spread: {spread:?}");
    assert_eq!(jitter_for("pod-a", "uid-1", Duration::ZERO), Duration::ZERO);
}
