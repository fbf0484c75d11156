#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout, unreachable_pub)] // test code states its expectations
//! `ldapsync agent` processes standing in for gateway pods, with the controller, against the real
//! apiserver, Samba AD, slapd and dnsmasq: independent syncs and rows, manual triggers, a DC going
//! away and coming back, schedule changes, the deletion-safety hold and its approval, and purge.

mod support;

use std::time::Duration;

use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use ldapsync::api::{LdapConnection, LdapSyncSchedule, NodePhase, NodeStatus};
use serde_json::{Value, json};
use support::cluster::*;
use support::{Forwarder, LdapsyncProcess, client, env, eventually, install_crds, namespace, read_file};

const SLOW: Duration = Duration::from_secs(60);

async fn rows(api: &Api<LdapConnection>, name: &str) -> Vec<NodeStatus> {
    api.get_opt(name).await.ok().flatten().and_then(|c| c.status).map(|s| s.nodes).unwrap_or_default()
}

/// Waits until every pod's row satisfies `check`; returns the rows.
async fn wait_rows(
    api: &Api<LdapConnection>,
    name: &str,
    pods: &[&str],
    what: &str,
    check: impl Fn(&NodeStatus) -> bool,
) -> Vec<NodeStatus> {
    let mut last = Vec::new();
    let result = tokio::time::timeout(SLOW, async {
        loop {
            let now = rows(api, name).await;
            if pods.iter().all(|p| now.iter().any(|r| r.pod == *p && check(r))) {
                return now;
            }
            last = now;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    result.unwrap_or_else(|_| {
        let seen: Vec<_> = last.iter().map(|r| (&r.pod, r.phase, &r.reason, &r.message)).collect();
        panic!("timed out waiting for {what} on {pods:?}; rows: {seen:?}")
    })
}

/// Secrets for Samba (password, CA) and slapd, and three gateway pods with their agents.
async fn gateway(ns: &str, pods: &[&str], dns: &str) -> (Vec<LdapsyncProcess>, tempfile::TempDir) {
    let client = client().await;
    secret(&client, ns, "sync-password", &[("password", env("LDAPSYNC_TEST_AD_PASSWORD").as_bytes())]).await;
    secret(&client, ns, "slapd-password", &[("password", env("LDAPSYNC_TEST_SLAPD_PASSWORD").as_bytes())]).await;
    secret(&client, ns, "test-ca", &[("ca.crt", &read_file("LDAPSYNC_TEST_CA_FILE"))]).await;
    let stores = tempfile::tempdir().expect("store folders");
    let mut agents = Vec::new();
    for pod in pods {
        gateway_pod(&client, ns, pod).await;
        let store = stores.path().join(pod);
        std::fs::create_dir_all(&store).expect("store folder");
        agents.push(LdapsyncProcess::agent(ns, pod, &store, dns));
    }
    (agents, stores)
}

fn ad_connection(server: &str) -> Value {
    json!({
        "domain": env("LDAPSYNC_TEST_AD_DOMAIN"),
        "searchBase": env("LDAPSYNC_TEST_AD_BASE"),
        "servers": {"static": [server]},
        "tls": {"mode": "StartTLS", "ca": {"secretRef": {"name": "test-ca"}}},
        "auth": {"simple": {"bindDN": env("LDAPSYNC_TEST_AD_BIND_DN"), "passwordSecretRef": {"name": "sync-password"}}},
        "contacts": {"enabled": true},
        "timeouts": {"connect": "2s", "operation": "5s"}
    })
}

/// The agent's planned next sync of `namespace/name` (Unix seconds), from its metrics.
fn next_sync(agent: &LdapsyncProcess, namespace: &str, name: &str) -> Option<i64> {
    let series = format!("ldapsync_agent_next_sync_timestamp_seconds{{connection=\"{namespace}/{name}\"}} ");
    agent.get("/metrics")?.lines().find_map(|l| l.strip_prefix(&series)).and_then(|v| v.trim().parse().ok())
}

/// OpenLDAP (slapd-1 and its replica) as a generic directory; `extra` adds or replaces fields.
fn slapd_connection(extra: Value) -> Value {
    let mut spec = json!({
        "domain": "example.test",
        "searchBase": env("LDAPSYNC_TEST_SLAPD_BASE"),
        "directoryType": "Generic",
        "tls": {"mode": "StartTLS", "ca": {"secretRef": {"name": "test-ca"}}},
        "auth": {"simple": {"bindDN": env("LDAPSYNC_TEST_SLAPD_BIND_DN"), "passwordSecretRef": {"name": "slapd-password"}}}
    });
    if let (Some(spec), Value::Object(extra)) = (spec.as_object_mut(), extra) {
        spec.extend(extra);
    }
    spec
}

fn address_of(agent: &LdapsyncProcess, address: &str) -> Option<Value> {
    agent.get(&format!("/v1/addresses/{address}")).and_then(|b| serde_json::from_str(&b).ok())
}

#[tokio::test]
async fn three_pods_sync_on_their_own_survive_an_outage_and_purge_on_delete() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "agent-three").await;
    let pods = ["pod-a", "pod-b", "pod-c"];
    let (agents, stores) = gateway(&ns, &pods, &env("LDAPSYNC_TEST_AD_DNS")).await;
    let _controller = LdapsyncProcess::start(&ns, "agent-three", &[]);
    let port = support::free_port();
    let dc = Forwarder::start(port, &format!("{}:389", env("LDAPSYNC_TEST_AD_ADDR"))).await;
    let api: Api<LdapConnection> = Api::namespaced(client.clone(), &ns);
    let server = format!("{}:{port}", env("LDAPSYNC_TEST_AD_HOST"));
    create(&api, "corp", ad_connection(&server)).await;

    let synced = wait_rows(&api, "corp", &pods, "Synced", |r| r.phase == Some(NodePhase::Synced)).await;
    for row in &synced {
        assert!(row.server.as_deref().is_some_and(|s| s.starts_with(&server)), "{row:?}");
        assert!(row.counts.as_ref().is_some_and(|c| c.users > 3 && c.contacts > 0), "{row:?}");
        assert!(row.snapshot_hash.as_ref().is_some_and(|h| h.len() == 64), "{row:?}");
        assert!(row.content_hash.as_ref().is_some_and(|h| h.len() == 64), "{row:?}");
        assert_eq!(row.observed_generation, Some(1));
    }
    // Each pod wrote its own row; the same directory gives the same content everywhere (the file
    // hashes differ when the pods read in different seconds).
    let hashes: std::collections::BTreeSet<_> = synced.iter().filter_map(|r| r.content_hash.clone()).collect();
    assert_eq!(hashes.len(), 1, "{hashes:?}");
    wait_condition(&api, "corp", "Ready", "True", "Synced").await;
    let summary = api.get("corp").await.expect("get").status.and_then(|s| s.summary).expect("summary");
    assert_eq!(summary.nodes_synced.as_deref(), Some("3/3"));
    let alice = format!("alice@{}", env("LDAPSYNC_TEST_AD_DOMAIN"));
    for agent in &agents {
        let answer = address_of(agent, &alice).unwrap_or_else(|| panic!("{} does not know {alice}", agent.identity));
        assert!(answer.to_string().contains("Alice"), "{answer}");
    }

    // A manual request: every pod syncs once and echoes it.
    let before: Vec<_> = synced.iter().map(|r| (r.pod.clone(), r.last_attempt_time.clone())).collect();
    // Status times have whole seconds: let the clock leave the first syncs' second, so that the
    // new attempts show.
    let latest = before.iter().filter_map(|(_, t)| t.as_ref().map(|t| t.0)).max().expect("attempt times");
    while jiff::Timestamp::now().as_second() <= latest.as_second() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    annotate(&api, "corp", "ldapsync.io/sync-requested-at", "2026-11-30T10:00:00Z").await;
    let handled = wait_rows(&api, "corp", &pods, "the request handled", |r| {
        r.last_handled_sync_request.as_deref() == Some("2026-11-30T10:00:00Z") && r.phase == Some(NodePhase::Synced)
    })
    .await;
    for (pod, attempt) in before {
        let row = handled.iter().find(|r| r.pod == pod).expect("row");
        assert_ne!(row.last_attempt_time, attempt, "{pod} did not sync again");
    }

    // The DC goes away: every pod keeps serving its cache and says Stale.
    dc.stop();
    annotate(&api, "corp", "ldapsync.io/sync-requested-at", "2026-11-30T10:05:00Z").await;
    let stale = wait_rows(&api, "corp", &pods, "Stale", |r| r.phase == Some(NodePhase::Stale)).await;
    for row in &stale {
        assert_eq!(row.reason.as_deref(), Some("NoDomainControllerReachable"), "{row:?}");
        assert!(row.counts.is_some() && row.last_success_time.is_some(), "the cache stays described: {row:?}");
    }
    wait_condition(&api, "corp", "Stale", "True", "NoDomainControllerReachable").await;
    for agent in &agents {
        assert!(address_of(agent, &alice).is_some(), "{} stopped answering during the outage", agent.identity);
        let status = agent.get("/v1/status").expect("status");
        assert!(status.contains("\"stale\":true"), "{status}");
    }

    // The DC comes back: the pods recover by themselves (retry after 10 s).
    let dc = Forwarder::start(port, &format!("{}:389", env("LDAPSYNC_TEST_AD_ADDR"))).await;
    wait_rows(&api, "corp", &pods, "Synced again", |r| r.phase == Some(NodePhase::Synced)).await;
    wait_condition(&api, "corp", "Ready", "True", "Synced").await;
    wait_condition(&api, "corp", "Stale", "False", "Fresh").await;

    // Deleting the connection purges every pod's cache before it goes.
    api.delete("corp", &DeleteParams::default()).await.expect("delete");
    eventually(SLOW, "the connection to go", || async { api.get_opt("corp").await.ok().filter(Option::is_none) }).await;
    for (agent, pod) in agents.iter().zip(pods) {
        assert!(address_of(agent, &alice).is_none(), "{pod} still answers after the purge");
        let left: Vec<_> =
            std::fs::read_dir(stores.path().join(pod)).expect("store").flatten().map(|e| e.file_name()).collect();
        assert!(left.is_empty(), "{pod} kept files: {left:?}");
    }
    let events = events_for(&client, &ns, "corp").await;
    assert!(!events.iter().any(|(r, _)| r == "CleanupTimedOut"), "the agents reported their purge: {events:?}");
    dc.stop();
}

#[tokio::test]
async fn schedules_decide_the_next_sync_and_a_change_takes_effect() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "agent-schedule").await;
    let pods = ["pod-a"];
    let (agents, _stores) = gateway(&ns, &pods, &env("LDAPSYNC_TEST_DNS")).await;
    let _controller = LdapsyncProcess::start(&ns, "agent-schedule", &[]);
    let schedules: Api<LdapSyncSchedule> = Api::namespaced(client.clone(), &ns);
    let schedule = |spec: Value| -> LdapSyncSchedule {
        serde_json::from_value(json!({"apiVersion": "ldapsync.io/v1alpha1", "kind": "LdapSyncSchedule",
            "metadata": {"name": "when"}, "spec": spec}))
        .expect("schedule")
    };
    schedules.create(&PostParams::default(), &schedule(json!({"manual": {}}))).await.expect("create schedule");
    let api: Api<LdapConnection> = Api::namespaced(client.clone(), &ns);
    // Generic LDAP found through dnsmasq's SRV records.
    create(&api, "ldap", slapd_connection(json!({"scheduleRef": {"name": "when"}}))).await;
    // Manual: the first sync happens once accepted, then nothing is planned.
    let first = wait_rows(&api, "ldap", &pods, "Synced", |r| r.phase == Some(NodePhase::Synced)).await;
    assert!(first[0].server.as_deref().is_some_and(|s| s.starts_with("ldap1.example.test")), "{:?}", first[0].server);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(next_sync(&agents[0], &ns, "ldap"), None, "a manual schedule plans nothing");

    // Switch to a daily schedule in Berlin without jitter: the planned time follows at once.
    schedules
        .patch("when", &PatchParams::default(), &Patch::Merge(json!({"spec": {"manual": null, "daily": {"at": "02:00"}, "timeZone": "Europe/Berlin", "jitter": "0s"}})))
        .await
        .expect("change schedule");
    let planned =
        eventually(support::cluster::WAIT, "a planned sync", || async { next_sync(&agents[0], &ns, "ldap") }).await;
    let expected = {
        let schedule = ldapsync::domain::schedule::parse_schedule(
            &serde_json::from_value(json!({"daily": {"at": "02:00"}, "timeZone": "Europe/Berlin", "jitter": "0s"}))
                .expect("spec"),
        )
        .expect("valid");
        let last = jiff::Timestamp::now();
        schedule.next_after(last).expect("daily fires").as_second()
    };
    assert!((planned - expected).abs() <= 60, "planned {planned}, expected about {expected}");
    let at = jiff::Timestamp::from_second(planned)
        .expect("time")
        .to_zoned(jiff::tz::TimeZone::get("Europe/Berlin").expect("tz"));
    assert_eq!((at.hour(), at.minute()), (2, 0), "{at}");
}

#[tokio::test]
async fn a_sync_that_would_delete_too_much_is_held_until_approved() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "agent-held").await;
    let pods = ["pod-a", "pod-b"];
    let (agents, _stores) = gateway(&ns, &pods, &env("LDAPSYNC_TEST_DNS")).await;
    let _controller = LdapsyncProcess::start(&ns, "agent-held", &[]);
    let api: Api<LdapConnection> = Api::namespaced(client.clone(), &ns);
    let spec = slapd_connection(json!({"servers": {"static": ["127.0.0.2:389"]}, "cache": {"store": "ConfigMap"}}));
    create(&api, "guarded", spec).await;
    let first = wait_rows(&api, "guarded", &pods, "Synced", |r| r.phase == Some(NodePhase::Synced)).await;
    let users = first[0].counts.as_ref().expect("counts").users;

    // A filter that drops most users: the guard holds the sync, the old cache keeps serving.
    api.patch(
        "guarded",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"filters": {"users": "(uid=u00000*)"}}})),
    )
    .await
    .expect("narrow the filter");
    let held = wait_rows(&api, "guarded", &pods, "Held", |r| r.phase == Some(NodePhase::Held)).await;
    let hold = held[0].held.clone().expect("held details");
    assert_eq!(
        hold.previous_objects as usize,
        first[0].counts.as_ref().map_or(0, |c| (c.users + c.groups + c.contacts) as usize)
    );
    assert!(hold.deleted_objects > 0 && hold.new_objects < hold.previous_objects, "{hold:?}");
    assert_eq!(held[0].counts.as_ref().map(|c| c.users), Some(users), "the held row still describes the old cache");
    let message = wait_condition(&api, "guarded", "Stalled", "True", "DeletionHeld").await;
    assert!(message.contains(&hold.snapshot_hash), "{message}");
    for agent in &agents {
        assert!(
            address_of(agent, "u000019@example.test").is_some(),
            "{}: the old cache must keep serving",
            agent.identity
        );
    }

    // The approval names the held snapshot: that sync goes through, once.
    annotate(&api, "guarded", "ldapsync.io/approve-deletions", &hold.snapshot_hash).await;
    let approved =
        wait_rows(&api, "guarded", &pods, "Synced after approval", |r| r.phase == Some(NodePhase::Synced)).await;
    for row in &approved {
        assert!(row.counts.as_ref().is_some_and(|c| c.users < users), "{row:?}");
    }
    wait_condition(&api, "guarded", "Ready", "True", "Synced").await;
    for agent in &agents {
        assert!(
            address_of(agent, "u000019@example.test").is_none(),
            "{}: the approved snapshot serves",
            agent.identity
        );
        assert!(address_of(agent, "u000001@example.test").is_some(), "{}", agent.identity);
    }
}

/// An approval applies exactly the content the row showed, without reading the directory again:
/// the approval comes with a spec that names a server nobody listens on.
#[tokio::test]
async fn an_approval_applies_the_held_content_and_one_of_other_content_is_refused() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "agent-approval").await;
    let pods = ["pod-a"];
    let (agents, _stores) = gateway(&ns, &pods, &env("LDAPSYNC_TEST_DNS")).await;
    let _controller = LdapsyncProcess::start(&ns, "agent-approval", &[]);
    let api: Api<LdapConnection> = Api::namespaced(client.clone(), &ns);
    create(&api, "exact", slapd_connection(json!({"servers": {"static": ["127.0.0.2:389"]}}))).await;
    let first = wait_rows(&api, "exact", &pods, "Synced", |r| r.phase == Some(NodePhase::Synced)).await;
    let server = first[0].server.clone().expect("server");

    api.patch(
        "exact",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"filters": {"users": "(uid=u00000*)"}}})),
    )
    .await
    .expect("narrow the filter");
    let held = wait_rows(&api, "exact", &pods, "Held", |r| r.phase == Some(NodePhase::Held)).await;
    let hold = held[0].held.clone().expect("held details");
    let content = hold.content_hash.clone().expect("the held content hash");
    assert_eq!(hold.removed_examples.len(), 5, "{hold:?}");
    assert!(
        hold.removed_examples
            .iter()
            .all(|dn| dn.to_ascii_lowercase().ends_with(&env("LDAPSYNC_TEST_SLAPD_BASE").to_ascii_lowercase())),
        "DNs of removed objects: {hold:?}"
    );

    // An approval of other content applies nothing and says why.
    annotate(&api, "exact", "ldapsync.io/approve-deletions", "0000").await;
    let refused =
        wait_rows(&api, "exact", &pods, "ApprovalNotHeld", |r| r.reason.as_deref() == Some("ApprovalNotHeld")).await;
    assert_eq!(refused[0].phase, Some(NodePhase::Held), "{:?}", refused[0]);
    assert!(refused[0].message.as_deref().is_some_and(|m| m.contains(&content)), "{:?}", refused[0].message);
    assert!(address_of(&agents[0], "u000019@example.test").is_some(), "the old cache keeps serving");

    // The right approval, together with a spec whose only server is dead: applied from what was held.
    api.patch(
        "exact",
        &PatchParams::default(),
        &Patch::Merge(json!({
            "metadata": {"annotations": {"ldapsync.io/approve-deletions": content}},
            "spec": {"servers": {"static": ["127.0.0.4:389"]}}
        })),
    )
    .await
    .expect("approve");
    let applied =
        wait_rows(&api, "exact", &pods, "Synced from the held content", |r| r.phase == Some(NodePhase::Synced)).await;
    assert_eq!(applied[0].content_hash.as_deref(), Some(content.as_str()), "exactly what was shown");
    assert_eq!(applied[0].server.as_deref(), Some(server.as_str()), "read before the hold, not again");
    assert!(address_of(&agents[0], "u000019@example.test").is_none(), "the approved snapshot serves");
    assert!(address_of(&agents[0], "u000001@example.test").is_some());
}

/// `kubectl ldapsync …`: the binary under the plugin's name in a PATH folder, run through kubectl.
struct Plugin {
    dir: tempfile::TempDir,
    namespace: String,
}

impl Plugin {
    fn new(namespace: &str) -> Self {
        let dir = tempfile::tempdir().expect("plugin folder");
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_ldapsync"), dir.path().join("kubectl-ldapsync")).expect("link");
        Self { dir, namespace: namespace.to_owned() }
    }

    /// Exit code, standard output and standard error of `kubectl ldapsync ARGS -n NAMESPACE`.
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let path = format!("{}:{}", self.dir.path().display(), std::env::var("PATH").unwrap_or_default());
        let out = std::process::Command::new(env("LDAPSYNC_TEST_KUBECTL"))
            .arg("ldapsync")
            .args(args)
            .args(["-n", &self.namespace])
            .env("PATH", path)
            .env("KUBECONFIG", env("LDAPSYNC_TEST_KUBECONFIG"))
            .output()
            .expect("run kubectl ldapsync");
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
    }
}

#[tokio::test]
async fn the_kubectl_plugin_gets_syncs_suspends_and_approves_with_exit_codes() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "agent-plugin").await;
    let pods = ["pod-a", "pod-b"];
    let (_agents, _stores) = gateway(&ns, &pods, &env("LDAPSYNC_TEST_DNS")).await;
    let _controller = LdapsyncProcess::start(&ns, "agent-plugin", &[]);
    let api: Api<LdapConnection> = Api::namespaced(client.clone(), &ns);
    create(&api, "dir", slapd_connection(json!({"servers": {"static": ["127.0.0.2:389"]}}))).await;
    let first = wait_rows(&api, "dir", &pods, "Synced", |r| r.phase == Some(NodePhase::Synced)).await;
    let plugin = Plugin::new(&ns);

    let (code, out, err) = plugin.run(&["get", "dir", "-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let got: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let listed = got[0]["pods"].as_array().expect("pods");
    assert_eq!(listed.len(), 2, "{out}");
    assert!(
        listed.iter().all(|r| r["phase"] == "Synced" && r["users"] == json!(first[0].counts.as_ref().map(|c| c.users))),
        "{out}"
    );
    let (code, table, _) = plugin.run(&["get"]);
    assert_eq!(code, 0);
    assert!(table.lines().next().is_some_and(|h| h.starts_with("NAME") && h.contains("PHASE")), "{table}");
    assert_eq!(table.lines().filter(|l| l.starts_with("dir ")).count(), 2, "{table}");

    // A requested sync: every pod answers, and the command says how.
    let (code, out, err) = plugin.run(&["sync", "dir", "--timeout", "60s"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.lines().filter(|l| l.contains("Synced")).count(), 2, "{out}");
    let handled = rows(&api, "dir").await;
    let request = handled[0].last_handled_sync_request.clone().expect("handled request");
    assert!(handled.iter().all(|r| r.last_handled_sync_request.as_deref() == Some(request.as_str())), "{handled:?}");

    // Suspended, a sync is refused; resumed, it runs.
    assert_eq!(plugin.run(&["suspend", "dir"]).0, 0);
    let (code, _, err) = plugin.run(&["sync", "dir", "--timeout", "10s"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("suspended"), "{err}");
    assert_eq!(plugin.run(&["resume", "dir"]).0, 0);

    // Nothing held, nothing to approve; then a hold, shown and approved on both pods.
    assert_eq!(plugin.run(&["approve", "dir"]).0, 1);
    api.patch("dir", &PatchParams::default(), &Patch::Merge(json!({"spec": {"filters": {"users": "(uid=u00000*)"}}})))
        .await
        .expect("narrow the filter");
    let held = wait_rows(&api, "dir", &pods, "Held", |r| r.phase == Some(NodePhase::Held)).await;
    let content = held[0].held.as_ref().and_then(|h| h.content_hash.clone()).expect("content");
    let (code, out, err) = plugin.run(&["approve", "dir", "--timeout", "60s"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&content) && out.contains("removes") && out.contains("e.g. "), "{out}");
    let applied = rows(&api, "dir").await;
    assert!(
        applied
            .iter()
            .all(|r| r.phase == Some(NodePhase::Synced) && r.content_hash.as_deref() == Some(content.as_str())),
        "{applied:?}"
    );

    // A sync that fails on every pod exits 1 and names the reason; an unknown connection exits 2.
    api.patch(
        "dir",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"servers": {"static": ["127.0.0.4:389"]}}})),
    )
    .await
    .expect("a dead server");
    wait_rows(&api, "dir", &pods, "Stale", |r| r.phase == Some(NodePhase::Stale)).await;
    let (code, out, err) = plugin.run(&["sync", "dir", "--timeout", "60s"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("NoDomainControllerReachable") && err.contains("not synced"), "{out}{err}");
    let (code, _, err) = plugin.run(&["get", "nosuch"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("does not exist"), "{err}");
}

#[tokio::test]
async fn a_restarted_agent_serves_its_cache_at_once_and_keeps_its_schedule() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "agent-restart").await;
    let pods = ["pod-a"];
    let (mut agents, stores) = gateway(&ns, &pods, &env("LDAPSYNC_TEST_DNS")).await;
    let _controller = LdapsyncProcess::start(&ns, "agent-restart", &[]);
    let api: Api<LdapConnection> = Api::namespaced(client.clone(), &ns);
    create(&api, "ldap", slapd_connection(json!({"servers": {"static": ["127.0.0.2:389"]}}))).await;
    let first = wait_rows(&api, "ldap", &pods, "Synced", |r| r.phase == Some(NodePhase::Synced)).await;
    let attempted = first[0].last_attempt_time.clone();

    // SIGKILL, then start again on the same store: lookups are answered before any sync.
    agents[0].kill();
    let restarted = LdapsyncProcess::agent(&ns, "pod-a", &stores.path().join("pod-a"), &env("LDAPSYNC_TEST_DNS"));
    agents[0] = restarted;
    let agent = &agents[0];
    eventually(Duration::from_secs(10), "the restarted agent to answer from its cache", || async {
        address_of(agent, "u000001@example.test")
    })
    .await;
    // The next sync is 30 minutes after the cached one (plus this pod's jitter), not now.
    let planned =
        eventually(support::cluster::WAIT, "a planned sync", || async { next_sync(agent, &ns, "ldap") }).await;
    let last = attempted.as_ref().map_or(0, |t| t.0.as_second());
    assert!((last + 1790..=last + 1800 + 61).contains(&planned), "planned {planned}, last sync {last}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let row = rows(&api, "ldap").await.into_iter().find(|r| r.pod == "pod-a").expect("row");
    assert_eq!(row.last_attempt_time, attempted, "a restart must not resync a current cache");
}

#[tokio::test]
async fn a_long_running_agent_gets_new_kerberos_tickets_from_its_keytab_when_they_expire() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "agent-krb-renew").await;
    secret(&client, &ns, "sync-keytab", &[("keytab", &read_file("LDAPSYNC_TEST_KEYTAB"))]).await;
    gateway_pod(&client, &ns, "pod-a").await;
    let dir = tempfile::tempdir().expect("store");
    // Six-minute tickets (the client asks; Samba's KDC grants no more; its own knob is in whole
    // hours, and it refuses a TGT closer than its 5-minute skew to expiry, so shorter ones fail at
    // once): the second sync, after they expired, needs tickets the first did not have.
    let krb5 = dir.path().join("krb5.conf");
    let realm = env("LDAPSYNC_TEST_AD_REALM");
    std::fs::write(
        &krb5,
        format!(
            "[libdefaults]\n  default_realm = {realm}\n  ticket_lifetime = 6m\n  clockskew = 5\n  dns_lookup_kdc = false\n  \
             rdns = false\n  dns_canonicalize_hostname = false\n[realms]\n  {realm} = {{\n    kdc = {}:88\n  }}\n",
            env("LDAPSYNC_TEST_AD_ADDR")
        ),
    )
    .expect("krb5.conf");
    let store = dir.path().join("store");
    std::fs::create_dir_all(&store).expect("store folder");
    let envs = [("KRB5_CONFIG", krb5.display().to_string())];
    let _agent = LdapsyncProcess::agent_with(&ns, "pod-a", &store, &env("LDAPSYNC_TEST_AD_DNS"), &[], &envs);
    let _controller = LdapsyncProcess::start(&ns, "agent-krb-renew", &[]);
    let api: Api<LdapConnection> = Api::namespaced(client.clone(), &ns);
    create(
        &api,
        "krb",
        json!({
            "domain": env("LDAPSYNC_TEST_AD_DOMAIN"),
            "searchBase": env("LDAPSYNC_TEST_AD_BASE"),
            "tls": {"mode": "None"},
            "auth": {"kerberos": {"keytabSecretRef": {"name": "sync-keytab"}}}
        }),
    )
    .await;
    wait_rows(&api, "krb", &["pod-a"], "Synced", |r| r.phase == Some(NodePhase::Synced)).await;
    tokio::time::sleep(Duration::from_secs(390)).await;
    annotate(&api, "krb", "ldapsync.io/sync-requested-at", "2026-12-02T09:00:00Z").await;
    let rows = wait_rows(&api, "krb", &["pod-a"], "a sync after the tickets expired", |r| {
        r.last_handled_sync_request.as_deref() == Some("2026-12-02T09:00:00Z") && r.phase.is_some()
    })
    .await;
    let row = &rows[0];
    assert_eq!(row.phase, Some(NodePhase::Synced), "the second sync with expired tickets: {row:?}");
}
