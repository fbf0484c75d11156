#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout, unreachable_pub)] // test code states its expectations
//! The controller at scale: 1,000 LdapConnections (100 domains × 10 bases, 5 % of them claiming a
//! base another connection already owns) reach steady state; then a fresh controller process does
//! a full resync of the unchanged objects. Reports the time and the API writes of each phase.
//!
//! Needs the test environment's apiserver (`scripts/bench-controller.sh` starts it) and the
//! release binary. Output: a Markdown table on stdout.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use ldapsync::api::LdapConnection;
use serde_json::json;

const NS: &str = "bench-controller";
const DOMAINS: usize = 100;
const BASES: usize = 10;
/// Every 20th connection copies the base of the one before it: 5 % conflicts.
const CONFLICT_EVERY: usize = 20;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run scripts/bench-controller.sh"))
}

struct Controller(Child, u16);

impl Controller {
    fn start(binary: &str, identity: &str) -> Self {
        let port =
            std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("port");
        let child = Command::new(binary)
            .args(["controller", "--namespace", NS, "--identity", identity, "--lease-duration", "5"])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("KUBECONFIG", env("LDAPSYNC_TEST_KUBECONFIG"))
            .env("LDAPSYNC_LOG", "warn")
            .spawn()
            .expect("start controller");
        Self(child, port)
    }

    fn metric_sum(&self, prefix: &str) -> f64 {
        let text = get_metrics(self.1).unwrap_or_default();
        text.lines().filter(|l| l.starts_with(prefix)).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
    }

    fn writes(&self) -> Vec<(String, f64)> {
        let text = get_metrics(self.1).unwrap_or_default();
        text.lines()
            .filter_map(|l| l.strip_prefix("ldapsync_controller_api_writes_total{kind=\""))
            .filter_map(|l| {
                let (kind, rest) = l.split_once("\"}")?;
                Some((kind.to_owned(), rest.trim().parse().ok()?))
            })
            .collect()
    }

    fn stop(&mut self) {
        // SIGTERM by PID: a graceful stop releases the Lease.
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let _ = self.0.wait();
    }
}

fn get_metrics(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(s, "GET /metrics HTTP/1.0\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

fn connection(i: usize) -> LdapConnection {
    let d = i / BASES;
    let b = if i % CONFLICT_EVERY == CONFLICT_EVERY - 1 { i % BASES - 1 } else { i % BASES };
    serde_json::from_value(json!({
        "apiVersion": "ldapsync.io/v1alpha1", "kind": "LdapConnection",
        "metadata": {"name": format!("conn-{i:04}")},
        "spec": {
            "domain": format!("d{d}.example.test"),
            "searchBase": format!("OU=Unit{b},DC=d{d},DC=example,DC=test"),
            "auth": {"simple": {"bindDN": format!("svc@d{d}.example.test"), "passwordSecretRef": {"name": format!("pw-{d}")}}}
        }
    }))
    .expect("connection")
}

/// Connections whose status reflects their current generation with an Accepted condition.
async fn settled(api: &Api<LdapConnection>) -> (usize, usize) {
    let list = api.list(&ListParams::default()).await.expect("list");
    let settled = list
        .items
        .iter()
        .filter(|c| {
            c.status.as_ref().is_some_and(|s| {
                s.observed_generation == c.metadata.generation && s.conditions.iter().any(|c| c.type_ == "Accepted")
            })
        })
        .count();
    let conflicts = list
        .items
        .iter()
        .filter(|c| {
            c.status
                .as_ref()
                .is_some_and(|s| s.conditions.iter().any(|c| c.reason == "SearchBaseConflict" && c.type_ == "Accepted"))
        })
        .count();
    (settled, conflicts)
}

/// Waits until every connection settled and the write counter stood still for a second.
async fn steady(
    api: &Api<LdapConnection>,
    controller: &Controller,
    total: usize,
    started: Instant,
) -> (Duration, usize) {
    let mut last_writes = -1.0;
    let mut last_change = started.elapsed();
    loop {
        let (done, conflicts) = settled(api).await;
        let writes = controller.metric_sum("ldapsync_controller_api_writes_total{");
        if writes != last_writes {
            last_writes = writes;
            last_change = started.elapsed();
        }
        if done == total && started.elapsed() - last_change > Duration::from_secs(1) {
            return (last_change, conflicts);
        }
        assert!(started.elapsed() < Duration::from_secs(600), "no steady state after 10 minutes ({done}/{total})");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Drops the finalizers of every connection, so that the namespace can go without a controller.
async fn release_all(api: &Api<LdapConnection>) {
    let Ok(list) = api.list(&ListParams::default()).await else { return };
    futures::stream::iter(list.items)
        .for_each_concurrent(32, |c| {
            let api = api.clone();
            async move {
                let patch = Patch::Merge(json!({"metadata": {"finalizers": null}}));
                let _ = api.patch(&c.name_any(), &PatchParams::default(), &patch).await;
            }
        })
        .await;
}

#[tokio::main]
async fn main() {
    let binary = std::env::var("LDAPSYNC_BENCH_BINARY").unwrap_or_else(|_| "target/release/ldapsync".into());
    let kubeconfig = kube::config::Kubeconfig::read_from(env("LDAPSYNC_TEST_KUBECONFIG")).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.expect("config");
    let client = Client::try_from(config).expect("client");
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(client.clone());
    for crd in ldapsync::api::crds() {
        crds.patch(&crd.name_any(), &PatchParams::apply("bench").force(), &Patch::Apply(&crd)).await.expect("CRD");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let api: Api<LdapConnection> = Api::namespaced(client.clone(), NS);
    release_all(&api).await;
    let _ = namespaces.delete(NS, &DeleteParams::default()).await;
    while namespaces.get_opt(NS).await.expect("get ns").is_some() {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    namespaces
        .create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": NS}})).expect("ns"))
        .await
        .expect("create ns");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NS);
    for d in 0..DOMAINS {
        let s: Secret = serde_json::from_value(
            json!({"metadata": {"name": format!("pw-{d}")}, "stringData": {"password": "bench"}}),
        )
        .expect("secret");
        secrets.create(&PostParams::default(), &s).await.expect("create secret");
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    for p in ["gateway-0", "gateway-1"] {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": p, "labels": {"ldapsync.io/gateway": "true"}},
            "spec": {"automountServiceAccountToken": false, "containers": [{"name": "gateway", "image": "gateway"}]}
        }))
        .expect("pod");
        pods.create(&PostParams::default(), &pod).await.expect("create pod");
    }
    let total = DOMAINS * BASES;
    futures::stream::iter(0..total)
        .map(|i| {
            let api = api.clone();
            async move { api.create(&PostParams::default(), &connection(i)).await.map(|_| ()) }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .expect("create connections");

    let started = Instant::now();
    let mut first = Controller::start(&binary, "bench-1");
    let (first_time, conflicts) = steady(&api, &first, total, started).await;
    let first_writes = first.writes();
    first.stop();

    let started = Instant::now();
    let mut second = Controller::start(&binary, "bench-2");
    // The resync is complete when every connection was reconciled once more.
    while second.metric_sum("ldapsync_controller_reconciles_total{") < total as f64 {
        assert!(started.elapsed() < Duration::from_secs(600), "resync did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let resync_time = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let second_writes = second.writes();
    second.stop();

    let sum = |w: &[(String, f64)]| w.iter().map(|(_, n)| n).sum::<f64>();
    let detail = |w: &[(String, f64)]| {
        w.iter().filter(|(_, n)| *n > 0.0).map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")
    };
    println!("| phase | connections | conflicts | time to steady state | API writes | by kind |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| first start | {total} | {conflicts} | {:.2} s | {} | {} |",
        first_time.as_secs_f64(),
        sum(&first_writes),
        detail(&first_writes)
    );
    println!(
        "| fresh controller, nothing changed | {total} | {conflicts} | {:.2} s (all reconciled) | {} | {} |",
        resync_time.as_secs_f64(),
        sum(&second_writes),
        detail(&second_writes)
    );
    assert_eq!(conflicts, total / CONFLICT_EVERY, "expected 5 % conflicts");
    assert_eq!(sum(&second_writes), 0.0, "a resync with nothing changed must not write");
    release_all(&api).await;
    let _ = namespaces.delete(NS, &DeleteParams::default()).await;
}
