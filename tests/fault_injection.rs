#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout, unreachable_pub)] // test code states its expectations
//! Fault injection with real processes: an agent SIGKILLed at random points of its syncs a
//! hundred times, a real slapd stopped in the middle of a paged search, and the API server stopped
//! and restarted under a running controller and agents.
//! These tests stop shared peers, so `scripts/test.sh` runs this binary alone, after the others
//! (`-E 'binary(fault_injection)'`, one test at a time).

mod support;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
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

/// Starts a stopped test peer again when dropped, so a failing test leaves the environment whole.
struct RestartOnDrop(&'static str);

impl Drop for RestartOnDrop {
    fn drop(&mut self) {
        let pidfile = format!("{}/{}.pid", env("LDAPSYNC_TEST_STATE"), self.0);
        if !Path::new(&pidfile).exists() {
            support::test_env(&["start", self.0]);
        }
    }
}

/// What one `ldapsync sync` run printed, with the peer stopped at its first progress line.
struct InterruptedSync {
    succeeded: bool,
    stdout: String,
    stderr: String,
    /// Objects read when the peer was stopped.
    stopped_at: Option<u64>,
}

/// Runs `ldapsync sync` on a 100k-user directory and, as soon as it reports progress (10k objects
/// read from the first server), stops `peer` with `test-env.sh <how> <peer>`.
fn sync_stopping_peer_mid_search(
    manifest: &Path,
    secrets: &Path,
    store: &Path,
    how: &str,
    peer: &str,
) -> InterruptedSync {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ldapsync"))
        .args(["sync", "-f"])
        .arg(manifest)
        .arg("--store")
        .arg(store)
        .arg("--secrets-dir")
        .arg(secrets)
        .env("LDAPSYNC_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ldapsync sync");
    let stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || std::io::read_to_string(stdout).expect("read the output of ldapsync sync"));
    let mut stderr = String::new();
    let mut stopped_at = None;
    for line in std::io::BufReader::new(child.stderr.take().expect("stderr")).lines() {
        let line = line.expect("stderr line");
        if stopped_at.is_none() && line.contains("sync progress") {
            let objects = line.split("objects=").nth(1).and_then(|s| s.split_whitespace().next()?.parse().ok());
            stopped_at = Some(objects.unwrap_or_else(|| panic!("no object count in {line:?}")));
            support::test_env(&[how, peer]);
        }
        stderr.push_str(&line);
        stderr.push('\n');
    }
    let status = child.wait().expect("wait for ldapsync sync");
    InterruptedSync { succeeded: status.success(), stdout: reader.join().expect("stdout reader"), stderr, stopped_at }
}

fn volume_manifest(dir: &Path, servers: &[&str]) -> PathBuf {
    let base = env("LDAPSYNC_TEST_VOLUME_BASE");
    let servers: Vec<String> = servers.iter().map(|s| format!("'{s}'")).collect();
    let yaml = format!(
        "apiVersion: ldapsync.io/v1alpha1\nkind: LdapConnection\nmetadata: {{name: volume, namespace: mail, uid: volume-uid}}\nspec:\n  domain: volume.test\n  searchBase: {base}\n  directoryType: Generic\n  servers: {{static: [{}]}}\n  tls: {{mode: StartTLS, ca: {{secretRef: {{name: test-ca}}}}}}\n  auth: {{simple: {{bindDN: 'cn=admin,{base}', passwordSecretRef: {{name: slapd-password}}}}}}\n  emailAttributes: [mail]\n  pageSize: 500\n  timeouts: {{operation: 60s}}\n",
        servers.join(", ")
    );
    let path = dir.join("volume.yaml");
    std::fs::write(&path, yaml).expect("manifest");
    path
}

#[test]
fn a_dc_stopped_in_the_middle_of_a_paged_search_fails_over_or_keeps_the_old_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secrets = dir.path().join("secrets");
    for (name, key, bytes) in [
        ("slapd-password", "password", env("LDAPSYNC_TEST_SLAPD_PASSWORD").into_bytes()),
        ("test-ca", "ca.crt", read_file("LDAPSYNC_TEST_CA_FILE")),
    ] {
        std::fs::create_dir_all(secrets.join(name)).expect("secret dir");
        std::fs::write(secrets.join(name).join(key), bytes).expect("secret file");
    }
    let store = dir.path().join("store");
    let users: u64 = env("LDAPSYNC_TEST_VOLUME_USERS").parse().expect("a number");
    let replica = env("LDAPSYNC_TEST_VOLUME2_URL").trim_start_matches("ldap://").to_owned();
    let primary = env("LDAPSYNC_TEST_VOLUME_URL").trim_start_matches("ldap://").to_owned();
    let _restart = RestartOnDrop("slapd-volume-2");

    // The replica serves first and is shut down (SIGTERM) mid-search: the read starts over on the
    // next server and the stored snapshot is complete.
    let manifest = volume_manifest(dir.path(), &[&replica, &primary]);
    let run = sync_stopping_peer_mid_search(&manifest, &secrets, &store, "stop", "slapd-volume-2");
    assert!(run.succeeded, "the sync should fail over: {}", run.stderr);
    let stopped_at = run.stopped_at.expect("the sync reported progress before it ended");
    assert!(stopped_at < users, "the replica was stopped after {stopped_at} objects, not mid-search");
    eprintln!("replica stopped after {stopped_at} objects; the sync failed over");
    assert!(run.stderr.contains(&replica), "the log names the server that went away: {}", run.stderr);
    let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("a JSON report");
    assert_eq!(report["server"].as_str().map(|s| s.contains(&primary)), Some(true), "{report}");
    assert_eq!((report["users"].as_u64(), report["groups"].as_u64()), (Some(users), Some(1000)), "{report}");
    assert_eq!(report["addresses"].as_u64(), Some(users + 1000));
    let stored = std::fs::read(store.join("volume-uid.snap")).expect("the snapshot file");
    let snapshot = ldapsync::domain::codec::decode(&stored).expect("a valid snapshot");
    assert_eq!(snapshot.objects.len() as u64, users + 1000, "complete, not the replica's partial read");
    support::test_env(&["start", "slapd-volume-2"]);

    // Only the replica is listed, and it dies (SIGKILL) mid-search: the sync fails naming the
    // cause, and the snapshot stored before is kept byte for byte.
    let manifest = volume_manifest(dir.path(), &[&replica]);
    let run = sync_stopping_peer_mid_search(&manifest, &secrets, &store, "kill", "slapd-volume-2");
    assert!(!run.succeeded, "a sync whose only server died mid-search must fail: {}", run.stdout);
    assert!(run.stopped_at.is_some_and(|n| n < users), "stopped mid-search: {:?}", run.stopped_at);
    let error = run.stderr.lines().find(|l| l.starts_with("error [")).unwrap_or_else(|| panic!("{}", run.stderr));
    assert!(error.starts_with("error [ConnectionLost]") && error.contains(&replica), "{error}");
    eprintln!("replica killed after {:?} objects: {error}", run.stopped_at);
    assert_eq!(std::fs::read(store.join("volume-uid.snap")).expect("the old snapshot"), stored, "old cache kept");
    let mut files: Vec<String> = std::fs::read_dir(&store)
        .expect("store")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into())
        .collect();
    files.sort();
    assert_eq!(
        files,
        ["volume-uid.snap", "volume-uid.summary"],
        "no partial file next to the snapshot and its summary"
    );
}
