#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout, unreachable_pub)] // test code states its expectations
//! Lockout safety against Samba AD: three gateway pods' agents run for ten minutes with a wrong
//! password for an account whose lockout threshold is 5 (a password settings object of the test
//! environment). Each pod tries the password once, the account is not locked (Samba's own
//! `badPwdCount` and `lockoutTime` say so), and the right password in the Secret is picked up
//! without a restart.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};
use ldapsync::api::{LdapConnection, NodePhase, NodeStatus};
use serde_json::json;
use support::cluster::{create, gateway_pod, secret};
use support::{LdapsyncProcess, client, env, install_crds, namespace, read_file};

const PODS: [&str; 3] = ["pod-a", "pod-b", "pod-c"];
const RUN_FOR: Duration = Duration::from_secs(600);

/// The lockout state of the test account, read by the domain administrator:
/// (badPwdCount, lockoutTime), as Samba keeps them.
fn lockout_state() -> (u64, u64) {
    let user = env("LDAPSYNC_TEST_AD_LOCKOUT_USER");
    let out = std::process::Command::new("ldapsearch")
        .args(["-LLL", "-ZZ", "-x", "-H", &format!("ldap://{}", env("LDAPSYNC_TEST_AD_ADDR"))])
        .args(["-D", &format!("Administrator@{}", env("LDAPSYNC_TEST_AD_DOMAIN"))])
        .args(["-w", &env("LDAPSYNC_TEST_AD_ADMIN_PASSWORD"), "-b", &env("LDAPSYNC_TEST_AD_BASE")])
        .arg(format!("(sAMAccountName={user})"))
        .args(["badPwdCount", "lockoutTime"])
        .env("LDAPTLS_CACERT", env("LDAPSYNC_TEST_CA_FILE"))
        .output()
        .expect("run ldapsearch");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && text.contains("dn: "),
        "ldapsearch for {user}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .map_or(0, |v| v.trim().parse().expect("a number"))
    };
    (value("badPwdCount"), value("lockoutTime"))
}

fn base64(bytes: &[u8]) -> String {
    serde_json::to_value(k8s_openapi::ByteString(bytes.to_vec()))
        .expect("base64")
        .as_str()
        .expect("a string")
        .to_owned()
}

async fn rows(api: &Api<LdapConnection>) -> Vec<NodeStatus> {
    api.get("lockout").await.expect("get").status.map(|s| s.nodes).unwrap_or_default()
}

async fn wait_rows(api: &Api<LdapConnection>, what: &str, check: impl Fn(&NodeStatus) -> bool) -> Vec<NodeStatus> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let now = rows(api).await;
        if PODS.iter().all(|p| now.iter().any(|r| r.pod == *p && check(r))) {
            return now;
        }
        let seen: Vec<_> = now.iter().map(|r| (&r.pod, r.phase, &r.reason)).collect();
        assert!(Instant::now() < deadline, "timed out waiting for {what}; rows: {seen:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_is_tried_once_per_pod_and_never_locks_the_account() {
    let (bad_before, locked_before) = lockout_state();
    assert_eq!((bad_before, locked_before), (0, 0), "the test account starts clean");
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "lockout").await;
    secret(&client, &ns, "lockout-password", &[("password", b"not-the-Password-1")]).await;
    secret(&client, &ns, "test-ca", &[("ca.crt", &read_file("LDAPSYNC_TEST_CA_FILE"))]).await;
    let stores = tempfile::tempdir().expect("stores");
    let mut agents = Vec::new();
    for pod in PODS {
        gateway_pod(&client, &ns, pod).await;
        let store = stores.path().join(pod);
        std::fs::create_dir_all(&store).expect("store");
        agents.push(LdapsyncProcess::agent(&ns, pod, &store, &env("LDAPSYNC_TEST_AD_DNS")));
    }
    let _controller = LdapsyncProcess::start(&ns, "lockout", &[]);
    let api: Api<LdapConnection> = Api::namespaced(client.clone(), &ns);
    let bind_dn = format!("{}@{}", env("LDAPSYNC_TEST_AD_LOCKOUT_USER"), env("LDAPSYNC_TEST_AD_DOMAIN"));
    create(
        &api,
        "lockout",
        json!({
            "domain": env("LDAPSYNC_TEST_AD_DOMAIN"),
            "searchBase": env("LDAPSYNC_TEST_AD_BASE"),
            "tls": {"mode": "StartTLS", "ca": {"secretRef": {"name": "test-ca"}}},
            "auth": {"simple": {"bindDN": bind_dn, "passwordSecretRef": {"name": "lockout-password"}}}
        }),
    )
    .await;
    let started = Instant::now();
    let refused = wait_rows(&api, "the refusal", |r| r.reason.as_deref() == Some("InvalidCredentials")).await;
    for row in &refused {
        assert!(
            row.message.as_deref().is_some_and(|m| m.contains("not retried")),
            "the row says what it waits for: {row:?}"
        );
    }

    // Ten minutes of three pods: without the wait, each would retry 7 times (10 s doubling to 5 min).
    let mut most = 0;
    while started.elapsed() < RUN_FOR {
        let (bad, locked) = lockout_state();
        most = most.max(bad);
        assert!(
            bad <= PODS.len() as u64 && locked == 0,
            "after {:?}: badPwdCount {bad}, lockoutTime {locked}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_secs(20)).await;
    }
    let (bad, locked) = lockout_state();
    println!(
        "[lockout] {} pods, {:?}: badPwdCount {bad} (most seen {most}), lockoutTime {locked}",
        PODS.len(),
        RUN_FOR
    );
    assert_eq!(bad, PODS.len() as u64, "one bad bind per pod for this password, no more");
    assert_eq!(locked, 0, "the account is not locked");
    for agent in &agents {
        let failures = agent.metric("ldapsync_agent_sync_failures_total{reason=\"InvalidCredentials\"}");
        assert_eq!(failures, 1.0, "{} tried the refused password {failures} times", agent.identity);
    }

    // The right password in the Secret: every pod finds it by itself (no restart, no request).
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let password = base64(env("LDAPSYNC_TEST_AD_PASSWORD").as_bytes());
    secrets
        .patch("lockout-password", &PatchParams::default(), &Patch::Merge(json!({"data": {"password": password}})))
        .await
        .expect("put the right password in the Secret");
    wait_rows(&api, "the new password to be used", |r| r.phase == Some(NodePhase::Synced)).await;
    assert_eq!(lockout_state(), (0, 0), "a good bind resets the bad-password count");
    api.patch("lockout", &PatchParams::default(), &Patch::Merge(json!({"spec": {"suspend": true}})))
        .await
        .expect("suspend");
}
