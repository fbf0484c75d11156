#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout, unreachable_pub)] // test code states its expectations
//! Every `/metrics` endpoint (controller, agent, `ldapsync serve`) scraped from a running process
//! and parsed as OpenMetrics text: valid lines, a type for every family, the names dashboards use.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use ldapsync::domain::codec;
use ldapsync::domain::snapshot::{ConnectionRef, Snapshot};
use support::*;

/// A family's type, and its samples by series (`name{labels}`).
#[derive(Debug, Default)]
struct Exposition {
    types: BTreeMap<String, String>,
    samples: BTreeMap<String, f64>,
}

fn valid_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Parses OpenMetrics text strictly enough to catch a broken renderer.
fn parse(text: &str) -> Result<Exposition, String> {
    let mut out = Exposition::default();
    let lines: Vec<&str> = text.lines().collect();
    if lines.last() != Some(&"# EOF") {
        return Err("the text does not end with # EOF".into());
    }
    for line in &lines[..lines.len() - 1] {
        if let Some(meta) = line.strip_prefix("# ") {
            let mut parts = meta.splitn(3, ' ');
            let (kind, name, rest) = (parts.next(), parts.next(), parts.next());
            match (kind, name) {
                (Some("TYPE"), Some(name)) if valid_name(name) => {
                    out.types.insert(name.to_owned(), rest.unwrap_or_default().to_owned());
                }
                (Some("HELP" | "UNIT"), Some(name)) if valid_name(name) => {}
                _ => return Err(format!("bad metadata line {line:?}")),
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').ok_or_else(|| format!("no value in {line:?}"))?;
        let value: f64 = value.parse().map_err(|_| format!("bad value in {line:?}"))?;
        let name = series.split('{').next().unwrap_or_default();
        if !valid_name(name) {
            return Err(format!("bad metric name in {line:?}"));
        }
        let labels = &series[name.len()..];
        if !labels.is_empty() {
            let inner = labels.strip_prefix('{').and_then(|l| l.strip_suffix('}'));
            let ok = inner.is_some_and(|inner| {
                inner.split("\",").all(|pair| pair.split_once("=\"").is_some_and(|(k, _)| valid_name(k)))
            });
            if !ok {
                return Err(format!("bad labels in {line:?}"));
            }
        }
        let family = out.types.keys().find(|f| {
            name == f.as_str()
                || name
                    .strip_prefix(f.as_str())
                    .is_some_and(|s| ["_total", "_bucket", "_sum", "_count", "_created"].contains(&s))
        });
        if family.is_none() {
            return Err(format!("{name} has no # TYPE line before it"));
        }
        out.samples.insert(series.to_owned(), value);
    }
    Ok(out)
}

async fn scrape(port: u16, what: &str) -> Exposition {
    let text =
        eventually(Duration::from_secs(30), &format!("{what} /metrics"), || async { http_get(port, "/metrics") }).await;
    parse(&text).unwrap_or_else(|e| panic!("{what}: {e}\n{text}"))
}

fn assert_series(e: &Exposition, what: &str, series: &[&str]) {
    for s in series {
        assert!(e.samples.contains_key(*s), "{what}: {s} missing from {:#?}", e.samples.keys());
    }
}

#[tokio::test]
async fn every_metrics_endpoint_parses_and_names_its_series() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "metrics").await;

    let controller = LdapsyncProcess::start(&ns, "metrics-controller", &[]);
    let e = scrape(controller.metrics_port, "controller").await;
    assert_eq!(e.types.get("ldapsync_controller_reconciles").map(String::as_str), Some("counter"));
    assert_eq!(e.types.get("ldapsync_controller_reconcile_duration_seconds").map(String::as_str), Some("histogram"));
    assert_series(
        &e,
        "controller",
        &[
            "ldapsync_controller_reconciles_total{result=\"ok\"}",
            "ldapsync_controller_reconcile_errors_total{category=\"api_read\"}",
            "ldapsync_controller_reconcile_duration_seconds_bucket{le=\"+Inf\"}",
            "ldapsync_controller_api_writes_total{kind=\"status\"}",
            "ldapsync_controller_connections{condition=\"Accepted\",status=\"True\"}",
            "ldapsync_controller_leader",
        ],
    );

    let stores = tempfile::tempdir().expect("store");
    let agent = LdapsyncProcess::agent(&ns, "metrics-pod", stores.path(), &env("LDAPSYNC_TEST_DNS"));
    let e = scrape(agent.metrics_port, "agent").await;
    assert_series(
        &e,
        "agent",
        &[
            "ldapsync_agent_syncs_total{result=\"synced\"}",
            "ldapsync_agent_sync_seconds_total",
            "ldapsync_agent_syncs_running",
            "ldapsync_agent_row_writes_total",
            "ldapsync_lookup_requests_total{endpoint=\"address\",outcome=\"found\"}",
            "ldapsync_socketmap_requests_total{map=\"recipient\",outcome=\"ok\"}",
        ],
    );

    // `serve` over a store holding one snapshot reports its age.
    let store = tempfile::tempdir().expect("serve store");
    let snapshot = Snapshot {
        connection: ConnectionRef { namespace: "mail".into(), name: "corp".into(), uid: "uid-corp".into() },
        domain: "example.test".into(),
        search_base: "dc=example,dc=test".into(),
        taken_at: 1,
        server: "dc1:389".into(),
        objects: vec![],
        memberships: Default::default(),
        unresolved_members: 0,
        foreign_members: Vec::new(),
        sync_state: None,
    };
    let encoded = codec::encode(&snapshot).expect("encode");
    std::fs::write(store.path().join("uid-corp.snap"), &encoded.bytes).expect("snapshot file");
    let port = free_port();
    let mut serve = std::process::Command::new(env!("CARGO_BIN_EXE_ldapsync"))
        .args(["serve", "--store", &store.path().display().to_string(), "--listen", &format!("127.0.0.1:{port}")])
        .spawn()
        .expect("start serve");
    let e = scrape(port, "serve").await;
    let _ = serve.kill();
    let _ = serve.wait();
    assert_eq!(e.types.get("ldapsync_snapshot_age_seconds").map(String::as_str), Some("gauge"));
    assert_series(&e, "serve", &["ldapsync_snapshot_age_seconds{connection=\"mail/corp\"}"]);
    assert!(e.samples.keys().all(|s| !s.starts_with("ldapsync_agent_")), "serve runs no syncs");
}

#[test]
fn the_parser_refuses_what_prometheus_would() {
    assert!(parse("x_total 1\n# EOF").is_err(), "a sample without a type");
    assert!(parse("# TYPE x counter\nx_total 1").is_err(), "no EOF");
    assert!(parse("# TYPE x counter\nx_total{a=b} 1\n# EOF").is_err(), "an unquoted label");
    assert!(parse("# TYPE x counter\nx_total one\n# EOF").is_err(), "not a number");
    assert!(parse("# TYPE x counter\nx_total{a=\"b\",c=\"d\"} 1\n# EOF").is_ok());
}
