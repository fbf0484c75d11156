//! Fault injection with real processes: an agent SIGKILLed at random points of its syncs a
//! hundred times, and the API server stopped and restarted under a running controller and agents.
//! These tests stop shared peers, so `scripts/test.sh` runs this binary alone, after the others
//! (`-E 'binary(fault_injection)'`, one test at a time).

mod support;

use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use ldapsync::api::{LdapConnection, NodePhase};
use ldapsync::store::local::LocalStore;
use serde_json::json;
use support::cluster::*;
use support::{LdapsyncProcess, client, env, eventually, install_crds, namespace, read_file};

fn slapd_connection() -> serde_json::Value {
    json!({
        "domain": "example.test",
        "searchBase": env("LDAPSYNC_TEST_SLAPD_BASE"),
        "directoryType": "Generic",
        "servers": {"static": ["127.0.0.2:389", "127.0.0.3:389"]},
        "tls": {"mode": "StartTLS", "ca": {"secretRef": {"name": "test-ca"}}},
        "auth": {"simple": {"bindDN": env("LDAPSYNC_TEST_SLAPD_BIND_DN"), "passwordSecretRef": {"name": "slapd-password"}}}
    })
}

async fn prepare(ns_name: &str, pods: &[&str]) -> (kube::Client, String, Api<LdapConnection>) {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, ns_name).await;
    secret(&client, &ns, "slapd-password", &[("password", env("LDAPSYNC_TEST_SLAPD_PASSWORD").as_bytes())]).await;
    secret(&client, &ns, "test-ca", &[("ca.crt", &read_file("LDAPSYNC_TEST_CA_FILE"))]).await;
    for pod in pods {
        gateway_pod(&client, &ns, pod).await;
    }
    let api = Api::namespaced(client.clone(), &ns);
    (client, ns, api)
}

async fn request_sync(api: &Api<LdapConnection>, value: &str) {
    let patch = json!({"metadata": {"annotations": {"ldapsync.io/sync-requested-at": value}}});
    api.patch("ldap", &PatchParams::default(), &Patch::Merge(patch)).await.expect("request a sync");
}

/// A pseudo-random delay in 0..max_ms (xorshift; the seed is printed for a replay).
fn delays(seed: u64, n: usize, max_ms: u64) -> Vec<u64> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % max_ms
        })
        .collect()
}

#[tokio::test]
async fn an_agent_killed_at_random_points_a_hundred_times_leaves_an_old_or_new_valid_cache() {
    let (_client, ns, api) = prepare("fault-sigkill", &["pod-a"]).await;
    let _controller = LdapsyncProcess::start(&ns, "fault-sigkill", &[]);
    create(&api, "ldap", slapd_connection()).await;
    let uid = api.get("ldap").await.expect("get").metadata.uid.expect("uid");
    wait_condition(&api, "ldap", "Accepted", "True", "Accepted").await;
    let store = tempfile::tempdir().expect("store");
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
    eprintln!("kill delays seed {seed}");
    let mut valid = 0;
    let mut hashes = std::collections::BTreeSet::new();
    for (i, delay) in delays(seed, 100, 400).into_iter().enumerate() {
        // Each round asks for a new sync, then kills the agent somewhere in its start, read or write.
        request_sync(&api, &format!("round-{i}")).await;
        let mut agent = LdapsyncProcess::agent(&ns, "pod-a", store.path(), &env("LDAPSYNC_TEST_DNS"));
        tokio::time::sleep(Duration::from_millis(delay)).await;
        agent.kill();
        let opened = LocalStore::open(store.path()).expect("the store opens after a kill");
        match opened.load(&uid) {
            Ok(Some(stored)) => {
                valid += 1;
                assert_eq!(stored.snapshot.connection.uid, uid);
                assert!(stored.snapshot.objects.len() > 5, "round {i}: a partial snapshot was stored");
                hashes.insert(stored.hash);
            }
            Ok(None) => assert_eq!(valid, 0, "round {i}: a stored snapshot disappeared"),
            Err(e) => panic!("round {i} (delay {delay} ms, seed {seed}): the cache is damaged: {e}"),
        }
    }
    assert!(valid > 50, "most rounds should find a stored snapshot ({valid}/100): the kills came too early");
    eprintln!("{valid}/100 rounds found a valid snapshot; {} distinct snapshots written", hashes.len());
    let leftovers: Vec<_> = std::fs::read_dir(store.path())
        .expect("store")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.ends_with(".snap"))
        .collect();
    // Temporary files of a killed write are removed when the store is next opened.
    assert!(leftovers.is_empty(), "files left behind: {leftovers:?}");
}

#[tokio::test]
async fn the_api_server_going_away_and_back_loses_no_row() {
    let pods = ["pod-a", "pod-b"];
    let (_client, ns, api) = prepare("fault-apiserver", &pods).await;
    let _controller = LdapsyncProcess::start(&ns, "fault-apiserver", &[]);
    let stores = tempfile::tempdir().expect("stores");
    let agents: Vec<_> = pods
        .iter()
        .map(|p| LdapsyncProcess::agent(&ns, p, &stores.path().join(p), &env("LDAPSYNC_TEST_DNS")))
        .collect();
    create(&api, "ldap", slapd_connection()).await;
    wait_condition(&api, "ldap", "Ready", "True", "Synced").await;

    support::test_env(&["stop", "kube"]);
    // Without the API, the agents keep answering from their caches.
    for agent in &agents {
        assert!(agent.get("/v1/addresses/u000001@example.test").is_some(), "{} stopped answering", agent.identity);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    support::test_env(&["start", "kube"]);

    // Everyone resumes: a new request is handled by both agents and the controller turns it Ready.
    let client = client().await;
    let api: Api<LdapConnection> = Api::namespaced(client, &ns);
    request_sync(&api, "after-the-outage").await;
    eventually(Duration::from_secs(90), "both pods to handle the request after the outage", || async {
        let status = api.get("ldap").await.ok()?.status?;
        let handled = status
            .nodes
            .iter()
            .filter(|r| {
                r.last_handled_sync_request.as_deref() == Some("after-the-outage") && r.phase == Some(NodePhase::Synced)
            })
            .count();
        (handled == pods.len()).then_some(())
    })
    .await;
    wait_condition(&api, "ldap", "Ready", "True", "Synced").await;
    let rows = api.get("ldap").await.expect("get").status.expect("status").nodes;
    let mut names: Vec<&str> = rows.iter().map(|r| r.pod.as_str()).collect();
    names.sort();
    assert_eq!(names, pods, "no row may be lost or duplicated");
}
