//! What the plugin shows of a connection: one line per gateway pod as a table, or the same
//! fields as JSON or YAML for scripts.

use jiff::Timestamp;
use kube::ResourceExt;
use serde::Serialize;

use super::CtlError;
use crate::api::{LdapConnection, NodeStatus};
use crate::domain::conditions::READY;

/// `-o table|json|yaml`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Output {
    #[default]
    Table,
    Json,
    Yaml,
}

impl std::str::FromStr for Output {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "table" | "wide" => Ok(Self::Table),
            "json" => Ok(Self::Json),
            "yaml" => Ok(Self::Yaml),
            other => Err(format!("unknown output {other:?}: use table, json or yaml")),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ConnectionView {
    pub(super) namespace: String,
    pub(super) name: String,
    pub(super) suspended: bool,
    /// `Ready`'s status and reason.
    pub(super) ready: Option<String>,
    pub(super) reason: Option<String>,
    pub(super) pods: Vec<PodView>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PodView {
    pub(super) pod: String,
    pub(super) phase: Option<String>,
    pub(super) server: Option<String>,
    /// The site whose DCs the pod asked first (its row), else the one the spec names.
    pub(super) site: Option<String>,
    /// How the last sync read the directory.
    pub(super) mode: &'static str,
    /// Seconds since the last successful sync.
    pub(super) age_seconds: Option<i64>,
    pub(super) users: Option<i64>,
    pub(super) contacts: Option<i64>,
    pub(super) groups: Option<i64>,
    pub(super) addresses: Option<i64>,
    pub(super) duplicates: Option<i64>,
    pub(super) reason: Option<String>,
    pub(super) message: Option<String>,
}

impl ConnectionView {
    pub(super) fn of(conn: &LdapConnection) -> Self {
        let ready = conn.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == READY));
        let site = conn.spec.servers.srv.as_ref().and_then(|s| s.site.clone());
        let now = Timestamp::now();
        let rows = conn.status.as_ref().map(|s| s.nodes.as_slice()).unwrap_or_default();
        Self {
            namespace: conn.namespace().unwrap_or_default(),
            name: conn.name_any(),
            suspended: conn.spec.suspend,
            ready: ready.map(|c| c.status.clone()),
            reason: ready.map(|c| c.reason.clone()),
            pods: rows.iter().map(|r| PodView::of(r, site.clone(), now)).collect(),
        }
    }
}

impl PodView {
    fn of(row: &NodeStatus, site: Option<String>, now: Timestamp) -> Self {
        let counts = row.counts.as_ref();
        Self {
            pod: row.pod.clone(),
            phase: row.phase.map(|p| format!("{p:?}")),
            server: row.server.clone(),
            site: row.site.clone().or(site),
            mode: "Full",
            age_seconds: row.last_success_time.as_ref().map(|t| now.duration_since(t.0).as_secs().max(0)),
            users: counts.map(|c| c.users),
            contacts: counts.map(|c| c.contacts),
            groups: counts.map(|c| c.groups),
            addresses: counts.map(|c| c.addresses),
            duplicates: row.duplicates.as_ref().map(|d| d.user_names + d.addresses),
            reason: row.reason.clone(),
            message: row.message.clone(),
        }
    }
}

/// `1h2m`, `3m`, `45s`: ages as kubectl prints them.
fn age(seconds: i64) -> String {
    match seconds {
        s if s >= 86_400 => format!("{}d{}h", s / 86_400, s % 86_400 / 3600),
        s if s >= 3600 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

fn cell<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

const COLUMNS: [&str; 13] = [
    "NAME",
    "POD",
    "PHASE",
    "SERVER",
    "SITE",
    "MODE",
    "AGE",
    "USERS",
    "CONTACTS",
    "GROUPS",
    "ADDRESSES",
    "DUPLICATES",
    "REASON",
];

fn table(views: &[ConnectionView]) -> String {
    let mut lines: Vec<Vec<String>> = vec![COLUMNS.iter().map(|c| (*c).to_owned()).collect()];
    for v in views {
        let name = if v.suspended { format!("{} (suspended)", v.name) } else { v.name.clone() };
        if v.pods.is_empty() {
            let mut line = vec![name.clone(), "-".into()];
            line.extend(std::iter::repeat_n("-".to_owned(), COLUMNS.len() - 3));
            line.push(cell(v.reason.as_ref()));
            lines.push(line);
        }
        for p in &v.pods {
            lines.push(vec![
                name.clone(),
                p.pod.clone(),
                cell(p.phase.as_ref()),
                cell(p.server.as_ref()),
                cell(p.site.as_ref()),
                p.mode.to_owned(),
                cell(p.age_seconds.map(age)),
                cell(p.users),
                cell(p.contacts),
                cell(p.groups),
                cell(p.addresses),
                cell(p.duplicates),
                cell(p.reason.as_ref()),
            ]);
        }
    }
    let widths: Vec<usize> =
        (0..COLUMNS.len()).map(|i| lines.iter().map(|l| l[i].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for line in lines {
        let padded: Vec<String> = line.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(padded.join("   ").trim_end());
        out.push('\n');
    }
    out
}

pub(super) fn render(views: &[ConnectionView], output: Output) -> Result<String, CtlError> {
    match output {
        Output::Table => Ok(table(views)),
        Output::Json => {
            serde_json::to_string_pretty(views).map(|s| s + "\n").map_err(|e| CtlError::Output(e.to_string()))
        }
        Output::Yaml => serde_yaml::to_string(views).map_err(|e| CtlError::Output(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection() -> LdapConnection {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "ldapsync.io/v1alpha1", "kind": "LdapConnection",
            "metadata": {"name": "corp", "namespace": "mail"},
            "spec": {"domain": "corp.test", "searchBase": "DC=corp,DC=test", "servers": {"srv": {"site": "hq"}},
                     "auth": {"kerberos": {"keytabSecretRef": {"name": "kt"}}}},
            "status": {
                "conditions": [{"type": "Ready", "status": "False", "reason": "NoDomainControllerReachable",
                                "message": "m", "lastTransitionTime": "2026-12-01T00:00:00Z"}],
                "nodes": [
                    {"pod": "gw-0", "phase": "Synced", "server": "dc1.corp.test:389", "lastSuccessTime": "2026-12-01T00:00:00Z",
                     "counts": {"users": 10, "contacts": 2, "groups": 3, "addresses": 14},
                     "duplicates": {"userNames": 1, "addresses": 0}},
                    {"pod": "gw-1", "phase": "Stale", "reason": "NoDomainControllerReachable"}
                ]
            }
        }))
        .expect("connection")
    }

    #[test]
    fn a_table_line_per_pod_with_dashes_for_what_is_unknown() {
        let text = render(&[ConnectionView::of(&connection())], Output::Table).expect("table");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("NAME") && lines[0].ends_with("REASON"), "{text}");
        let gw0: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(&gw0[..6], ["corp", "gw-0", "Synced", "dc1.corp.test:389", "hq", "Full"], "{text}");
        assert_eq!(&gw0[7..12], ["10", "2", "3", "14", "1"], "{text}");
        let gw1: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!((gw1[2], gw1[3], gw1[12]), ("Stale", "-", "NoDomainControllerReachable"), "{text}");
    }

    #[test]
    fn json_and_yaml_carry_the_same_fields() {
        let views = [ConnectionView::of(&connection())];
        let json: serde_json::Value =
            serde_json::from_str(&render(&views, Output::Json).expect("json")).expect("valid json");
        assert_eq!(json[0]["pods"][0]["users"], 10);
        assert_eq!(json[0]["reason"], "NoDomainControllerReachable");
        let yaml: serde_json::Value =
            serde_yaml::from_str(&render(&views, Output::Yaml).expect("yaml")).expect("valid yaml");
        assert_eq!(yaml, json);
    }

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!([age(5), age(125), age(3_725), age(90_000)], ["5s", "2m", "1h2m", "1d1h"]);
    }
}
