//! `LdapSyncSchedule`: when the gateway pods sync the connections that reference it.

// kube-derive takes one `printcolumn(...)` per column, which this lint misreads as repeated attributes.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An LdapSyncSchedule says when connections that reference it are synced. Exactly one of
/// `interval`, `daily`, `weekly`, `monthly`, `once`, `manual` or `cron` is set; with none, the
/// schedule runs every 30 minutes. A sync can always be requested by hand with the annotation
/// `ldapsync.io/sync-requested-at` on the connection.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "ldapsync.io",
    version = "v1alpha1",
    kind = "LdapSyncSchedule",
    plural = "ldapsyncschedules",
    shortname = "ldapsched",
    category = "ldapsync",
    namespaced,
    status = "LdapSyncScheduleStatus",
    derive = "PartialEq",
    derive = "Default",
    printcolumn(name = "Valid", type_ = "string", json_path = ".status.conditions[?(@.type==\"Valid\")].status"),
    printcolumn(name = "Time Zone", type_ = "string", json_path = ".spec.timeZone"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct LdapSyncScheduleSpec {
    /// Every N minutes, hours or days, counted from the first sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<IntervalSchedule>,
    /// Every day at a time of day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily: Option<DailySchedule>,
    /// On some days of the week at a time of day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekly: Option<WeeklySchedule>,
    /// On one day of the month at a time of day. Day 29–31 runs on the last day of shorter months.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly: Option<MonthlySchedule>,
    /// Once, at a point in time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub once: Option<OnceSchedule>,
    /// Never by itself: only when requested with the `ldapsync.io/sync-requested-at` annotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manual: Option<ManualSchedule>,
    /// A five-field cron expression (minute hour day-of-month month day-of-week), e.g. `15 2 * * 1-5`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 9, max = 256))]
    pub cron: Option<String>,
    /// IANA time zone of the times above, e.g. `Europe/Berlin`. Default `UTC`.
    #[serde(default = "default_time_zone")]
    #[schemars(length(min = 1, max = 64))]
    pub time_zone: String,
    /// Largest random delay added per pod (deterministic for a pod), so that the pods of a gateway
    /// do not all query the directory in the same second. Default `1m`.
    #[serde(default = "default_jitter")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    pub jitter: String,
}

/// Every N units.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntervalSchedule {
    /// Period as `<N>m`, `<N>h` or `<N>d`, e.g. `30m`, `4h`, `1d`. Default `30m`; at least `1m`.
    #[serde(default = "default_interval")]
    #[schemars(regex(pattern = r"^[1-9][0-9]{0,5}(m|h|d)$"))]
    pub every: String,
}

/// Every day.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DailySchedule {
    /// Time of day, `HH:MM` (24 h).
    #[schemars(regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub at: String,
}

/// Some days of the week.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WeeklySchedule {
    /// Days of the week.
    #[schemars(length(min = 1, max = 7))]
    pub days: Vec<Weekday>,
    /// Time of day, `HH:MM` (24 h).
    #[schemars(regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub at: String,
}

/// A day of the week.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema)]
pub enum Weekday {
    /// Monday.
    Monday,
    /// Tuesday.
    Tuesday,
    /// Wednesday.
    Wednesday,
    /// Thursday.
    Thursday,
    /// Friday.
    Friday,
    /// Saturday.
    Saturday,
    /// Sunday.
    Sunday,
}

/// One day of every month.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonthlySchedule {
    /// Day of the month, 1–31. A day past the month's end runs on its last day.
    #[schemars(range(min = 1, max = 31))]
    pub day: u8,
    /// Time of day, `HH:MM` (24 h).
    #[schemars(regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub at: String,
}

/// A single run.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OnceSchedule {
    /// RFC 3339 timestamp, e.g. `2026-12-24T18:00:00+01:00`, or a local time
    /// `2026-12-24T18:00:00` in the schedule's time zone.
    #[schemars(length(min = 19, max = 40))]
    pub at: String,
}

/// Manual-only marker (no fields).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct ManualSchedule {}

/// Observed state of a schedule, written by the controller.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LdapSyncScheduleStatus {
    /// The generation the controller last validated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Valid`: whether the schedule parses, with the reason naming the field when it does not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

fn default_time_zone() -> String {
    "UTC".to_owned()
}

fn default_jitter() -> String {
    "1m".to_owned()
}

fn default_interval() -> String {
    "30m".to_owned()
}
