#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout, unreachable_pub)] // test code states its expectations
//! `ldapsync controller` as a process against the real kube-apiserver (1.20.2) and
//! controller-manager: search-base uniqueness, validation, rows → conditions, cache cleanup on
//! delete, and leader election between two replicas.

mod support;

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use ldapsync::api::{CACHE_CLEANUP_FINALIZER, LdapConnection, LdapSyncSchedule};
use ldapsync::domain::codec;
use ldapsync::domain::snapshot::{ConnectionRef, Snapshot};
use ldapsync::store::configmap::{ConfigMapStore, LABEL_CONNECTION_UID};
use serde_json::{Value, json};
use support::cluster::*;
use support::{ControllerProcess, client, env, eventually, install_crds, namespace};

#[tokio::test]
async fn the_oldest_connection_keeps_a_search_base_and_the_next_takes_over() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "ctl-unique").await;
    secret(&client, &ns, "pw", &[("password", b"Svc#Sync-Pass123")]).await;
    let _controller = ControllerProcess::start(&ns, "ctl-unique", &[]);
    let api: Api<LdapConnection> = Api::namespaced(client.clone(), &ns);

    // Creation order decides, not the name: "zulu" is older than "alpha". Timestamps have
    // one-second resolution, so the second one is created a second later.
    create(&api, "zulu", json!({})).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    create(
        &api,
        "alpha",
        json!({"domain": "CORP.Example.test", "searchBase": "ou=staff,  dc=CORP,dc=example,dc=test"}),
    )
    .await;
    wait_condition(&api, "zulu", "Accepted", "True", "Accepted").await;
    let message = wait_condition(&api, "alpha", "Accepted", "False", "SearchBaseConflict").await;
    assert!(message.starts_with("spec.searchBase: ") && message.contains("LdapConnection zulu"), "{message}");
    wait_condition(&api, "alpha", "Stalled", "True", "SearchBaseConflict").await;

    // The other order, in another domain: "beta" first, then "able".
    let other = json!({"domain": "other.example.test", "searchBase": "DC=other,DC=example,DC=test"});
    create(&api, "beta", other.clone()).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    create(&api, "able", other).await;
    wait_condition(&api, "beta", "Accepted", "True", "Accepted").await;
    let message = wait_condition(&api, "able", "Accepted", "False", "SearchBaseConflict").await;
    assert!(message.contains("LdapConnection beta"), "{message}");

    // A base inside zulu's is accepted, with a warning on both.
    create(&api, "sales", json!({"searchBase": "OU=Sales,OU=Staff,DC=corp,DC=example,DC=test"})).await;
    wait_condition(&api, "sales", "Accepted", "True", "Accepted").await;
    let overlap = wait_condition(&api, "sales", "SearchBaseOverlap", "True", "NestedSearchBase").await;
    assert!(overlap.contains("zulu"), "{overlap}");
    let overlap = wait_condition(&api, "zulu", "SearchBaseOverlap", "True", "NestedSearchBase").await;
    assert!(overlap.contains("sales"), "{overlap}");

    // The winner goes away: the next one is accepted without anyone touching it.
    api.delete("zulu", &DeleteParams::default()).await.expect("delete zulu");
    wait_condition(&api, "alpha", "Accepted", "True", "Accepted").await;
    let overlap = wait_condition(&api, "alpha", "SearchBaseOverlap", "True", "NestedSearchBase").await;
    assert!(overlap.contains("sales"), "{overlap}");
    assert_eq!(condition(&api, "alpha", "Stalled").await, None, "Stalled is removed once accepted");

    // The winner changes its base: the loser takes over.
    api.patch(
        "beta",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"searchBase": "OU=Moved,DC=other,DC=example,DC=test"}})),
    )
    .await
    .expect("move beta");
    wait_condition(&api, "able", "Accepted", "True", "Accepted").await;

    let events = events_for(&client, &ns, "alpha").await;
    assert!(events.iter().any(|(r, _)| r == "SearchBaseConflict"), "{events:?}");
    assert!(events.iter().any(|(r, _)| r == "Accepted"), "{events:?}");
}

#[tokio::test]
async fn invalid_connections_are_refused_naming_the_field_until_fixed() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "ctl-invalid").await;
    secret(&client, &ns, "pw", &[("password", b"Svc#Sync-Pass123")]).await;
    secret(&client, &ns, "keytab", &[("keytab", &support::read_file("LDAPSYNC_TEST_KEYTAB"))]).await;
    secret(&client, &ns, "two", &[("keytab", &support::read_file("LDAPSYNC_TEST_KEYTAB_TWO_PRINCIPALS"))]).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "not-a-ca"}, "data": {"ca.crt": "hello"}})).expect("cm"),
    )
    .await
    .expect("create ConfigMap");
    let schedules: Api<LdapSyncSchedule> = Api::namespaced(client.clone(), &ns);
    schedules
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"apiVersion": "ldapsync.io/v1alpha1", "kind": "LdapSyncSchedule",
                "metadata": {"name": "never"}, "spec": {"cron": "0 0 30 2 *"}}))
            .expect("schedule"),
        )
        .await
        .expect("create schedule");
    let controller = ControllerProcess::start(&ns, "ctl-invalid", &[]);
    let api: Api<LdapConnection> = Api::namespaced(client.clone(), &ns);

    let kerberos = |secret: &str| json!({"auth": {"kerberos": {"keytabSecretRef": {"name": secret}}}});
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "missing-secret",
            json!({"auth": {"simple": {"bindDN": "svc@corp", "passwordSecretRef": {"name": "later"}}}}),
            "SecretNotFound",
            "spec.auth.simple.passwordSecretRef",
        ),
        (
            "missing-key",
            json!({"auth": {"simple": {"bindDN": "svc@corp", "passwordSecretRef": {"name": "pw", "key": "pass"}}}}),
            "SecretKeyMissing",
            "spec.auth.simple.passwordSecretRef",
        ),
        ("two-principals", kerberos("two"), "KeytabInvalid", "spec.auth.kerberos.keytabSecretRef"),
        (
            "not-a-keytab",
            json!({"auth": {"kerberos": {"keytabSecretRef": {"name": "pw", "key": "password"}}}}),
            "KeytabInvalid",
            "spec.auth.kerberos.keytabSecretRef",
        ),
        ("bad-base", json!({"searchBase": "OU=Staff,,DC=corp"}), "InvalidSearchBase", "spec.searchBase"),
        ("no-schedule", json!({"scheduleRef": {"name": "nightly"}}), "ScheduleNotFound", "spec.scheduleRef.name"),
        ("bad-schedule", json!({"scheduleRef": {"name": "never"}}), "ScheduleInvalid", "spec.scheduleRef.name"),
        ("bad-filter", json!({"filters": {"users": "(department=Sales"}}), "InvalidFilter", "spec.filters.users"),
        ("clear-password", json!({"tls": {"mode": "None"}}), "InvalidSpec", "spec.tls.mode"),
        (
            "not-a-ca",
            json!({"tls": {"ca": {"configMapRef": {"name": "not-a-ca"}}}}),
            "InvalidCA",
            "spec.tls.ca.configMapRef",
        ),
        (
            "both-auth",
            json!({"auth": {"simple": {"bindDN": "svc@corp", "passwordSecretRef": {"name": "pw"}}, "kerberos": {"keytabSecretRef": {"name": "keytab"}}}}),
            "InvalidSpec",
            "spec.auth",
        ),
        ("bad-timeout", json!({"timeouts": {"connect": "0s"}}), "InvalidSpec", "spec.timeouts.connect"),
    ];
    for (i, (name, spec, _, _)) in cases.iter().enumerate() {
        // Distinct bases, so that only validation decides.
        let mut spec = spec.clone();
        if spec.get("searchBase").is_none() {
            spec["searchBase"] = json!(format!("OU=Case{i},DC=corp,DC=example,DC=test"));
        }
        create(&api, name, spec).await;
    }
    create(&api, "good-keytab", json!({"auth": {"kerberos": {"keytabSecretRef": {"name": "keytab"}}}, "searchBase": "OU=Kerberos,DC=corp,DC=example,DC=test"})).await;
    for (name, _, reason, field) in &cases {
        let message = wait_condition(&api, name, "Accepted", "False", reason).await;
        assert!(message.starts_with(&format!("{field}: ")), "{name}: {message}");
        assert!(!message.contains("Svc#Sync-Pass123"), "{name}: a secret leaked: {message}");
        wait_condition(&api, name, "Stalled", "True", reason).await;
    }
    let two = condition(&api, "two-principals", "Accepted").await.expect("condition").2;
    assert!(two.contains("exactly one principal"), "{two}");
    wait_condition(&api, "good-keytab", "Accepted", "True", "Accepted").await;
    let good = api.get("good-keytab").await.expect("get");
    assert_eq!(
        good.status.and_then(|s| s.kerberos_principal).as_deref(),
        Some(format!("svc-sync@{}", env("LDAPSYNC_TEST_AD_REALM")).as_str())
    );
    let schedule = schedules.get("never").await.expect("schedule");
    let valid =
        schedule.status.expect("schedule status").conditions.into_iter().find(|c| c.type_ == "Valid").expect("Valid");
    assert_eq!((valid.status.as_str(), valid.reason.as_str()), ("False", "InvalidSchedule"));
    assert!(valid.message.starts_with("spec.cron: "), "{}", valid.message);

    // Rejected connections wait for a change: no retry loop.
    let reconciles = controller.metric("ldapsync_controller_reconciles_total{result=\"ok\"}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        controller.metric("ldapsync_controller_reconciles_total{result=\"ok\"}"),
        reconciles,
        "nothing changed, nothing reconciled"
    );

    // Fixing what they reference is enough.
    secret(&client, &ns, "later", &[("password", b"Svc#Sync-Pass123")]).await;
    wait_condition(&api, "missing-secret", "Accepted", "True", "Accepted").await;
    schedules
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"apiVersion": "ldapsync.io/v1alpha1", "kind": "LdapSyncSchedule",
                "metadata": {"name": "nightly"}, "spec": {"daily": {"at": "02:00"}, "timeZone": "Europe/Berlin"}}))
            .expect("schedule"),
        )
        .await
        .expect("create schedule");
    wait_condition(&api, "no-schedule", "Accepted", "True", "Accepted").await;
    schedules
        .patch("never", &PatchParams::default(), &Patch::Merge(json!({"spec": {"cron": "0 3 * * 1-5"}})))
        .await
        .expect("fix schedule");
    wait_condition(&api, "bad-schedule", "Accepted", "True", "Accepted").await;
    let events = events_for(&client, &ns, "two-principals").await;
    assert!(events.iter().any(|(r, n)| r == "KeytabInvalid" && n.contains("exactly one principal")), "{events:?}");
}

#[tokio::test]
async fn agent_rows_become_conditions_and_rows_of_gone_pods_are_dropped() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "ctl-rows").await;
    secret(&client, &ns, "pw", &[("password", b"Svc#Sync-Pass123")]).await;
    gateway_pod(&client, &ns, "gw-0").await;
    gateway_pod(&client, &ns, "gw-1").await;
    let controller = ControllerProcess::start(&ns, "ctl-rows", &[]);
    let api: Api<LdapConnection> = Api::namespaced(client.clone(), &ns);
    create(&api, "corp", json!({})).await;
    let message = wait_condition(&api, "corp", "Ready", "False", "Progressing").await;
    assert!(message.contains("0/2") && message.contains("gw-0, gw-1"), "{message}");
    wait_condition(&api, "corp", "Reconciling", "True", "Progressing").await;

    write_row(&api, "corp", synced_row("gw-0", 1, 40)).await;
    let mut row = synced_row("gw-1", 1, 41);
    row["lastSuccessTime"] = json!("2026-11-30T08:05:00Z");
    row["duplicates"] =
        json!({"userNames": 1, "addresses": 2, "examples": ["address dup@corp.example.test: CN=A and CN=B"]});
    write_row(&api, "corp", row).await;
    wait_condition(&api, "corp", "Ready", "True", "Synced").await;
    let dup = wait_condition(&api, "corp", "DuplicatesFound", "True", "DuplicatesFound").await;
    assert!(dup.contains("dup@corp.example.test"), "{dup}");
    assert_eq!(condition(&api, "corp", "Reconciling").await, None);
    let summary = api.get("corp").await.expect("get").status.and_then(|s| s.summary).expect("summary");
    assert_eq!((summary.nodes_synced.as_deref(), summary.users, summary.duplicates), (Some("2/2"), Some(41), Some(3)));

    // Steady state: nothing more is written.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let writes = controller.metric("ldapsync_controller_api_writes_total{kind=\"status\"}");
    write_row(&api, "corp", synced_row("gw-0", 1, 40)).await; // same row again: no change
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(controller.metric("ldapsync_controller_api_writes_total{kind=\"status\"}"), writes);

    // One pod loses its DCs.
    write_row(&api, "corp", json!({"pod": "gw-1", "phase": "Stale", "observedGeneration": 1,
        "reason": "NoDomainControllerReachable", "message": "no domain controller reachable; tried dc1:389",
        "lastSuccessTime": "2026-11-30T08:05:00Z", "counts": {"users": 41, "contacts": 1, "groups": 2, "addresses": 44}}))
    .await;
    wait_condition(&api, "corp", "Ready", "False", "NoDomainControllerReachable").await;
    let stale = wait_condition(&api, "corp", "Stale", "True", "NoDomainControllerReachable").await;
    assert!(stale.contains("gw-1"), "{stale}");
    let events = events_for(&client, &ns, "corp").await;
    assert!(events.iter().any(|(r, _)| r == "NoDomainControllerReachable"), "{events:?}");
    assert!(events.iter().any(|(r, _)| r == "Ready"), "{events:?}");
    assert!(events.iter().any(|(r, _)| r == "DuplicatesFound"), "{events:?}");

    // The stale pod is deleted: its row goes, the connection is Ready with 1/1.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    pods.delete("gw-1", &DeleteParams::default()).await.expect("delete pod");
    wait_condition(&api, "corp", "Ready", "True", "Synced").await;
    wait_condition(&api, "corp", "Stale", "False", "Fresh").await;
    let status = api.get("corp").await.expect("get").status.expect("status");
    let pods: Vec<&str> = status.nodes.iter().map(|n| n.pod.as_str()).collect();
    assert_eq!(pods, ["gw-0"]);
    assert_eq!(status.summary.and_then(|s| s.nodes_synced).as_deref(), Some("1/1"));

    // A spec change is a new generation: Ready waits for the pods to sync it.
    api.patch("corp", &PatchParams::default(), &Patch::Merge(json!({"spec": {"pageSize": 500}}))).await.expect("patch");
    wait_condition(&api, "corp", "Ready", "False", "Progressing").await;
    write_row(&api, "corp", synced_row("gw-0", 2, 40)).await;
    wait_condition(&api, "corp", "Ready", "True", "Synced").await;
    assert_eq!(api.get("corp").await.expect("get").status.and_then(|s| s.observed_generation), Some(2));
}

fn empty_snapshot(connection: &ConnectionRef) -> Snapshot {
    Snapshot {
        connection: connection.clone(),
        domain: "corp.example.test".into(),
        search_base: "OU=Staff,DC=corp,DC=example,DC=test".into(),
        taken_at: 0,
        server: "dc1".into(),
        objects: vec![],
        memberships: Default::default(),
        unresolved_members: 0,
        foreign_members: Vec::new(),
        sync_state: None,
    }
}

#[tokio::test]
async fn deleting_a_connection_removes_its_configmaps_and_waits_for_the_agents() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "ctl-delete").await;
    secret(&client, &ns, "pw", &[("password", b"Svc#Sync-Pass123")]).await;
    gateway_pod(&client, &ns, "gw-0").await;
    let _controller = ControllerProcess::start(&ns, "ctl-delete", &["--cleanup-timeout", "4s"]);
    let api: Api<LdapConnection> = Api::namespaced(client.clone(), &ns);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);

    for name in ["purged", "abandoned"] {
        let created = create(
            &api,
            name,
            json!({"searchBase": format!("OU={name},DC=corp,DC=example,DC=test"), "cache": {"store": "ConfigMap"}}),
        )
        .await;
        wait_condition(&api, name, "Accepted", "True", "Accepted").await;
        let conn = api.get(name).await.expect("get");
        assert!(conn.finalizers().iter().any(|f| f == CACHE_CLEANUP_FINALIZER), "{:?}", conn.finalizers());
        let connection = ConnectionRef { namespace: ns.clone(), name: name.into(), uid: created.uid().expect("uid") };
        let encoded = codec::encode(&empty_snapshot(&connection)).expect("encode");
        ConfigMapStore::new(client.clone(), &ns, "gw-0").write(&connection, &encoded).await.expect("store write");
        write_row(&api, name, synced_row("gw-0", 1, 0)).await;
    }

    // The agent reports its purge: the connection goes as soon as it does.
    let uid = api.get("purged").await.expect("get").uid().expect("uid");
    let selector = ListParams::default().labels(&format!("{LABEL_CONNECTION_UID}={uid}"));
    assert!(!cms.list(&selector).await.expect("list").items.is_empty());
    api.delete("purged", &DeleteParams::default()).await.expect("delete");
    eventually(WAIT, "the snapshot ConfigMaps to be deleted", || async {
        cms.list(&selector).await.ok().filter(|l| l.items.is_empty()).map(|_| ())
    })
    .await;
    assert!(api.get_opt("purged").await.expect("get").is_some(), "the finalizer must wait for the agent");
    write_row(&api, "purged", json!({"pod": "gw-0", "phase": "Purged"})).await;
    eventually(WAIT, "the purged connection to go", || async {
        api.get_opt("purged").await.ok().filter(Option::is_none).map(|_| ())
    })
    .await;

    // An agent that never answers: the controller gives up after the timeout, with an Event.
    let started = std::time::Instant::now();
    api.delete("abandoned", &DeleteParams::default()).await.expect("delete");
    eventually(WAIT, "the abandoned connection to go", || async {
        api.get_opt("abandoned").await.ok().filter(Option::is_none).map(|_| ())
    })
    .await;
    assert!(started.elapsed() >= Duration::from_secs(3), "gave up too early: {:?}", started.elapsed());
    let events = events_for(&client, &ns, "abandoned").await;
    assert!(events.iter().any(|(r, n)| r == "CleanupTimedOut" && n.contains("gw-0")), "{events:?}");
    let left = cms.list(&ListParams::default().labels(LABEL_CONNECTION_UID)).await.expect("list");
    assert!(
        left.items.is_empty(),
        "snapshot ConfigMaps left: {:?}",
        left.items.iter().map(|c| c.name_any()).collect::<Vec<_>>()
    );
}

async fn lease_holder(client: &Client, ns: &str) -> Option<String> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), ns);
    leases.get_opt("ldapsync-controller").await.ok()??.spec?.holder_identity
}

#[tokio::test]
async fn only_the_leader_writes_and_a_follower_takes_over() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "ctl-leader").await;
    secret(&client, &ns, "pw", &[("password", b"Svc#Sync-Pass123")]).await;
    let api: Api<LdapConnection> = Api::namespaced(client.clone(), &ns);

    let mut first = ControllerProcess::start(&ns, "replica-a", &[]);
    eventually(WAIT, "replica-a to hold the lease", || async {
        lease_holder(&client, &ns).await.filter(|h| h == "replica-a")
    })
    .await;
    let second = ControllerProcess::start(&ns, "replica-b", &[]);
    eventually(WAIT, "replica-b to serve its metrics", || async { Some(second.metrics()).filter(|m| !m.is_empty()) })
        .await;
    create(&api, "one", json!({})).await;
    wait_condition(&api, "one", "Accepted", "True", "Accepted").await;
    assert_eq!(first.metric("ldapsync_controller_leader"), 1.0);
    assert_eq!(second.metric("ldapsync_controller_leader"), 0.0);
    assert!(first.metric("ldapsync_controller_api_writes_total{kind=\"status\"}") >= 1.0);
    let follower_writes: f64 = second
        .metrics()
        .lines()
        .filter(|l| l.starts_with("ldapsync_controller_api_writes_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(follower_writes, 0.0, "the follower wrote: {}", second.metrics());

    // The leader dies without releasing its lease; the follower takes over after it expires.
    first.kill();
    eventually(Duration::from_secs(40), "replica-b to take the lease", || async {
        lease_holder(&client, &ns).await.filter(|h| h == "replica-b")
    })
    .await;
    eventually(WAIT, "replica-b to report leadership", || async {
        Some(()).filter(|_| second.metric("ldapsync_controller_leader") == 1.0)
    })
    .await;
    // Taking over reconciles everything, and writes nothing that is already right.
    eventually(WAIT, "replica-b to reconcile", || async {
        Some(()).filter(|_| second.metric("ldapsync_controller_reconciles_total{result=\"ok\"}") >= 1.0)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(second.metric("ldapsync_controller_api_writes_total{kind=\"status\"}"), 0.0, "{}", second.metrics());
    create(&api, "two", json!({"searchBase": "OU=Two,DC=corp,DC=example,DC=test"})).await;
    wait_condition(&api, "two", "Accepted", "True", "Accepted").await;

    // A graceful stop (SIGTERM) releases the Lease instead of letting it expire.
    let mut second = second;
    let status = std::process::Command::new("kill").arg(second.child.id().to_string()).status().expect("kill");
    assert!(status.success());
    let exit = second.child.wait().expect("wait");
    assert!(exit.success(), "SIGTERM must end the controller cleanly: {exit:?}");
    let holder = lease_holder(&client, &ns).await;
    assert!(holder.as_deref().is_none_or(str::is_empty), "the Lease is still held by {holder:?}");
}
