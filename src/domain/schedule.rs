//! Schedules: parsing an `LdapSyncSchedule` and computing its next run in its IANA time zone.
//!
//! Wall-clock rules (daily, weekly, monthly, cron) are evaluated on civil time in the schedule's
//! zone. A time that falls into a DST gap runs at the end of the gap (02:30 on a spring-forward
//! night runs at 03:30); a time that occurs twice (autumn) runs once, at its first occurrence.

use std::time::Duration;

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use crate::api::{LdapSyncScheduleSpec, Weekday};
use crate::domain::duration::parse_duration;

/// Why a schedule is invalid; `field` is the spec path at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ScheduleError {
    pub field: &'static str,
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> ScheduleError {
    ScheduleError { field, message: message.into() }
}

/// When a schedule fires.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// Every period, counted from the previous run.
    Interval(Duration),
    Daily(Time),
    /// Days as a bit set, bit 0 = Monday.
    Weekly(u8, Time),
    /// Day 1–31; past the month's end it runs on the last day.
    Monthly(i8, Time),
    Once(Timestamp),
    Manual,
    Cron(Box<Cron>),
}

/// A parsed, valid schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub rule: Rule,
    pub time_zone: TimeZone,
    pub jitter: Duration,
}

/// The schedule of a connection without `scheduleRef`: every 30 minutes, jitter up to a minute.
pub fn default_schedule() -> Schedule {
    Schedule {
        rule: Rule::Interval(Duration::from_secs(30 * 60)),
        time_zone: TimeZone::UTC,
        jitter: Duration::from_secs(60),
    }
}

const LARGEST_INTERVAL: Duration = Duration::from_secs(366 * 86400);

/// Validates and parses a schedule spec. Exactly one rule may be set; none means every 30 minutes.
pub fn parse_schedule(spec: &LdapSyncScheduleSpec) -> Result<Schedule, ScheduleError> {
    let time_zone = TimeZone::get(spec.time_zone.trim())
        .map_err(|_| invalid("spec.timeZone", format!("{:?} is not an IANA time zone", spec.time_zone)))?;
    let jitter = parse_duration(&spec.jitter).map_err(|e| invalid("spec.jitter", e.to_string()))?;
    if jitter > Duration::from_secs(12 * 3600) {
        return Err(invalid("spec.jitter", "must be at most 12h"));
    }
    let set: Vec<&'static str> = [
        ("spec.interval", spec.interval.is_some()),
        ("spec.daily", spec.daily.is_some()),
        ("spec.weekly", spec.weekly.is_some()),
        ("spec.monthly", spec.monthly.is_some()),
        ("spec.once", spec.once.is_some()),
        ("spec.manual", spec.manual.is_some()),
        ("spec.cron", spec.cron.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, present)| present.then_some(name))
    .collect();
    if set.len() > 1 {
        return Err(invalid("spec", format!("set exactly one schedule kind, found {}", set.join(", "))));
    }
    let rule = if let Some(interval) = &spec.interval {
        let every = parse_duration(&interval.every).map_err(|e| invalid("spec.interval.every", e.to_string()))?;
        if every < Duration::from_secs(60) || every > LARGEST_INTERVAL {
            return Err(invalid("spec.interval.every", "must be between 1m and 366d"));
        }
        Rule::Interval(every)
    } else if let Some(daily) = &spec.daily {
        Rule::Daily(parse_time_of_day("spec.daily.at", &daily.at)?)
    } else if let Some(weekly) = &spec.weekly {
        if weekly.days.is_empty() {
            return Err(invalid("spec.weekly.days", "name at least one day"));
        }
        let days = weekly.days.iter().fold(0u8, |bits, d| bits | 1 << weekday_index(*d));
        Rule::Weekly(days, parse_time_of_day("spec.weekly.at", &weekly.at)?)
    } else if let Some(monthly) = &spec.monthly {
        if !(1..=31).contains(&monthly.day) {
            return Err(invalid("spec.monthly.day", format!("{} is not a day 1-31", monthly.day)));
        }
        Rule::Monthly(monthly.day as i8, parse_time_of_day("spec.monthly.at", &monthly.at)?)
    } else if let Some(once) = &spec.once {
        Rule::Once(parse_instant("spec.once.at", &once.at, &time_zone)?)
    } else if spec.manual.is_some() {
        Rule::Manual
    } else if let Some(expr) = &spec.cron {
        let cron = Cron::parse(expr).map_err(|m| invalid("spec.cron", m))?;
        // A well-formed expression can still never match (`0 0 30 2 *`).
        let probe = Timestamp::UNIX_EPOCH.to_zoned(time_zone.clone());
        if cron.next_after(&probe.datetime(), 366 * 28).is_none() {
            return Err(invalid("spec.cron", format!("{expr:?} never matches a date")));
        }
        Rule::Cron(Box::new(cron))
    } else {
        Rule::Interval(Duration::from_secs(30 * 60))
    };
    Ok(Schedule { rule, time_zone, jitter })
}

fn weekday_index(day: Weekday) -> u8 {
    match day {
        Weekday::Monday => 0,
        Weekday::Tuesday => 1,
        Weekday::Wednesday => 2,
        Weekday::Thursday => 3,
        Weekday::Friday => 4,
        Weekday::Saturday => 5,
        Weekday::Sunday => 6,
    }
}

fn parse_time_of_day(field: &'static str, value: &str) -> Result<Time, ScheduleError> {
    let bad = || invalid(field, format!("{value:?} is not a time of day HH:MM"));
    let (h, m) = value.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let hour: i8 = h.parse().map_err(|_| bad())?;
    let minute: i8 = m.parse().map_err(|_| bad())?;
    Time::new(hour, minute, 0, 0).map_err(|_| bad())
}

/// RFC 3339 with an offset, or a local date-time read in the schedule's zone.
fn parse_instant(field: &'static str, value: &str, tz: &TimeZone) -> Result<Timestamp, ScheduleError> {
    if let Ok(ts) = value.parse::<Timestamp>() {
        return Ok(ts);
    }
    let civil: DateTime = value.parse().map_err(|_| {
        invalid(field, format!("{value:?} is not a timestamp like 2026-12-24T18:00:00+01:00 or 2026-12-24T18:00:00"))
    })?;
    tz.to_ambiguous_zoned(civil)
        .compatible()
        .map(|z| z.timestamp())
        .map_err(|e| invalid(field, format!("{value:?} cannot be placed in the time zone: {e}")))
}

impl Schedule {
    /// The next run strictly after `after` (the previous run, or the time the rule was first seen),
    /// before jitter. `None` when the rule never fires again (manual, a past `once`).
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let zoned = after.to_zoned(self.time_zone.clone());
        let local = zoned.datetime();
        match &self.rule {
            Rule::Interval(every) => after.checked_add(*every).ok(),
            Rule::Manual => None,
            Rule::Once(at) => (*at > after).then_some(*at),
            Rule::Daily(time) => {
                (0..=2).find_map(|d| self.at(local.date().checked_add(d.days()).ok()?, *time).filter(|t| *t > after))
            }
            Rule::Weekly(days, time) => (0..=8).find_map(|d| {
                let date = local.date().checked_add(d.days()).ok()?;
                let bit = 1u8 << (date.weekday().to_monday_zero_offset() as u8);
                if days & bit == 0 {
                    return None;
                }
                self.at(date, *time).filter(|t| *t > after)
            }),
            Rule::Monthly(day, time) => (0..=2).find_map(|m| {
                let first = local.date().first_of_month().checked_add(m.months()).ok()?;
                let date = first.with().day((*day).min(first.days_in_month())).build().ok()?;
                self.at(date, *time).filter(|t| *t > after)
            }),
            Rule::Cron(cron) => {
                // Start from the civil minute after `after`; a civil time that maps back to or
                // before `after` (the repeated hour in autumn) is skipped.
                let mut from = local;
                for _ in 0..4 {
                    let civil = cron.next_after(&from, 366 * 28)?;
                    let ts = self.time_zone.to_ambiguous_zoned(civil).compatible().ok()?.timestamp();
                    if ts > after {
                        return Some(ts);
                    }
                    from = civil;
                }
                None
            }
        }
    }

    fn at(&self, date: Date, time: Time) -> Option<Timestamp> {
        let civil = date.to_datetime(time);
        self.time_zone.to_ambiguous_zoned(civil).compatible().ok().map(|z| z.timestamp())
    }
}

/// A deterministic delay in `[0, max)` for one pod and connection, so pods spread their syncs
/// but a restarted pod keeps its slot.
pub fn jitter_for(pod: &str, connection_uid: &str, max: Duration) -> Duration {
    use sha2::{Digest, Sha256};
    let millis = max.as_millis() as u64;
    if millis == 0 {
        return Duration::ZERO;
    }
    let digest = Sha256::new().chain_update(pod.as_bytes()).chain_update([0]).chain_update(connection_uid).finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    Duration::from_millis(u64::from_le_bytes(first) % millis)
}

/// A five-field cron expression: minute hour day-of-month month day-of-week, with `*`, lists,
/// ranges, steps, month and day names, and the `@hourly`/`@daily`/`@weekly`/`@monthly`/`@yearly`
/// shorthands. When both day fields are restricted a day matches either (as in Vixie cron).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    days_of_month: u32,
    months: u16,
    /// Bit 0 = Sunday.
    days_of_week: u8,
    dom_restricted: bool,
    dow_restricted: bool,
}

const MONTH_NAMES: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const DAY_NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

impl Cron {
    pub fn parse(expr: &str) -> Result<Self, String> {
        let expanded = match expr.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "{expr:?} has {} fields; cron needs five: minute hour day month weekday",
                fields.len()
            ));
        }
        let minutes = parse_field(fields[0], "minute", 0, 59, &[])?;
        let hours = parse_field(fields[1], "hour", 0, 23, &[])?;
        let days_of_month = parse_field(fields[2], "day-of-month", 1, 31, &[])?;
        let months = parse_field(fields[3], "month", 1, 12, &MONTH_NAMES)?;
        let mut dow = parse_field(fields[4], "day-of-week", 0, 7, &DAY_NAMES)?;
        if dow & (1 << 7) != 0 {
            dow = (dow | 1) & !(1 << 7); // 7 is Sunday too
        }
        Ok(Self {
            minutes,
            hours: hours as u32,
            days_of_month: days_of_month as u32,
            months: months as u16,
            days_of_week: dow as u8,
            dom_restricted: !fields[2].starts_with('*'),
            dow_restricted: !fields[4].starts_with('*'),
        })
    }

    fn day_matches(&self, date: Date) -> bool {
        let dom = self.days_of_month & (1 << date.day()) != 0;
        let dow = self.days_of_week & (1 << date.weekday().to_sunday_zero_offset()) != 0;
        match (self.dom_restricted, self.dow_restricted) {
            (true, true) => dom || dow,
            (true, false) => dom,
            (false, true) => dow,
            (false, false) => true,
        }
    }

    /// The first matching civil minute strictly after `from`, looking at most `max_days` ahead.
    pub fn next_after(&self, from: &DateTime, max_days: i64) -> Option<DateTime> {
        let start = from.date().to_datetime(Time::new(from.hour(), from.minute(), 0, 0).ok()?);
        let mut t = start.checked_add(1.minute()).ok()?;
        let limit = start.date().checked_add(max_days.days()).ok()?;
        while t.date() <= limit {
            if self.months & (1 << t.month()) == 0 {
                t = t.date().first_of_month().checked_add(1.month()).ok()?.to_datetime(Time::midnight());
                continue;
            }
            if !self.day_matches(t.date()) {
                t = t.date().checked_add(1.day()).ok()?.to_datetime(Time::midnight());
                continue;
            }
            if self.hours & (1 << t.hour()) == 0 {
                t = t.date().to_datetime(Time::new(t.hour(), 0, 0, 0).ok()?).checked_add(1.hour()).ok()?;
                continue;
            }
            if self.minutes & (1 << t.minute()) == 0 {
                t = t.checked_add(1.minute()).ok()?;
                continue;
            }
            return Some(t);
        }
        None
    }
}

/// One cron field as a bit set of the allowed values.
fn parse_field(field: &str, what: &str, min: u8, max: u8, names: &[&str]) -> Result<u64, String> {
    let value = |s: &str| -> Result<u8, String> {
        let lower = s.to_ascii_lowercase();
        if let Some(i) = names.iter().position(|n| *n == lower) {
            return Ok(i as u8 + if what == "month" { 1 } else { 0 });
        }
        let n: u8 = s.parse().map_err(|_| format!("{what} field: {s:?} is not a number"))?;
        if n < min || n > max {
            return Err(format!("{what} field: {n} is outside {min}-{max}"));
        }
        Ok(n)
    };
    let mut bits = 0u64;
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u8 = s.parse().map_err(|_| format!("{what} field: step {s:?} is not a number"))?;
                if step == 0 {
                    return Err(format!("{what} field: step must be at least 1"));
                }
                (r, step)
            }
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?)
        } else {
            let v = value(range)?;
            // `5/15` means from 5 to the end in steps of 15.
            (v, if step > 1 { max } else { v })
        };
        if lo > hi {
            return Err(format!("{what} field: range {range:?} runs backwards"));
        }
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v = match v.checked_add(step) {
                Some(n) => n,
                None => break,
            };
        }
    }
    if bits == 0 {
        return Err(format!("{what} field is empty"));
    }
    Ok(bits)
}

#[cfg(test)]
mod tests;
