#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout, unreachable_pub)] // test code states its expectations
//! A full run — controller and agent, good and bad credentials, Kerberos and simple binds,
//! accepted and rejected connections — then every log line, Event and status of it is searched
//! for the test passwords and keytab bytes, in every encoding a careless log line would use.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Event as CoreEvent;
use kube::api::{Api, ListParams};
use ldapsync::api::{LdapConnection, NodePhase};
use serde_json::json;
use support::cluster::*;
use support::{LdapsyncProcess, client, env, eventually, install_crds, namespace, read_file};

const WRONG_PASSWORD: &str = "Wrong#Secret-Pass987";

/// The ways a secret could show up in text: as is, base64, hex, and Rust's `{:?}` of its bytes.
fn encodings(secret: &[u8]) -> Vec<String> {
    use std::fmt::Write;
    let mut hex = String::new();
    for b in secret {
        let _ = write!(hex, "{b:02x}");
    }
    let debug = format!("{:?}", secret);
    let mut out = vec![hex, debug[..debug.len().min(60)].to_owned(), base64(secret)];
    if let Ok(text) = std::str::from_utf8(secret) {
        out.push(text.to_owned());
    }
    out
}

fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

#[tokio::test]
async fn no_password_or_keytab_byte_reaches_logs_events_or_status() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "leak-check").await;
    let ad_password = env("LDAPSYNC_TEST_AD_PASSWORD");
    let slapd_password = env("LDAPSYNC_TEST_SLAPD_PASSWORD");
    let keytab = read_file("LDAPSYNC_TEST_KEYTAB");
    let two = read_file("LDAPSYNC_TEST_KEYTAB_TWO_PRINCIPALS");
    secret(&client, &ns, "ad-password", &[("password", ad_password.as_bytes())]).await;
    secret(&client, &ns, "wrong-password", &[("password", WRONG_PASSWORD.as_bytes())]).await;
    secret(&client, &ns, "slapd-password", &[("password", slapd_password.as_bytes())]).await;
    secret(&client, &ns, "keytab", &[("keytab", &keytab)]).await;
    secret(&client, &ns, "two", &[("keytab", &two)]).await;
    secret(&client, &ns, "test-ca", &[("ca.crt", &read_file("LDAPSYNC_TEST_CA_FILE"))]).await;
    gateway_pod(&client, &ns, "pod-a").await;
    let store = tempfile::tempdir().expect("store");
    let controller = LdapsyncProcess::start(&ns, "leak-check", &[]);
    let agent = LdapsyncProcess::agent(&ns, "pod-a", store.path(), &env("LDAPSYNC_TEST_AD_DNS"));

    let api: Api<LdapConnection> = Api::namespaced(client.clone(), &ns);
    let ad = |base: &str, auth: serde_json::Value, tls: serde_json::Value| {
        json!({"domain": env("LDAPSYNC_TEST_AD_DOMAIN"), "searchBase": format!("{base}{}", env("LDAPSYNC_TEST_AD_BASE")),
               "servers": {"srv": {}}, "tls": tls, "auth": auth, "timeouts": {"connect": "2s", "operation": "5s"}})
    };
    let starttls = json!({"mode": "StartTLS", "ca": {"secretRef": {"name": "test-ca"}}});
    let simple = |secret: &str| json!({"simple": {"bindDN": env("LDAPSYNC_TEST_AD_BIND_DN"), "passwordSecretRef": {"name": secret}}});
    create(&api, "good-simple", ad("", simple("ad-password"), starttls.clone())).await;
    create(&api, "wrong-password", ad("OU=Staff,", simple("wrong-password"), starttls.clone())).await;
    create(
        &api,
        "kerberos",
        ad("OU=Groups,", json!({"kerberos": {"keytabSecretRef": {"name": "keytab"}}}), json!({"mode": "None"})),
    )
    .await;
    create(
        &api,
        "two-principals",
        ad("OU=Bulk,", json!({"kerberos": {"keytabSecretRef": {"name": "two"}}}), json!({"mode": "None"})),
    )
    .await;
    create(
        &api,
        "openldap",
        json!({"domain": "example.test", "searchBase": env("LDAPSYNC_TEST_SLAPD_BASE"), "directoryType": "Generic",
               "servers": {"static": ["127.0.0.2:389"]}, "tls": starttls,
               "auth": {"simple": {"bindDN": env("LDAPSYNC_TEST_SLAPD_BIND_DN"), "passwordSecretRef": {"name": "slapd-password"}}}}),
    )
    .await;

    let settled = |name: &'static str, phase: NodePhase| {
        let api = api.clone();
        async move {
            eventually(Duration::from_secs(60), &format!("{name} to reach {phase:?}"), || async {
                let c = api.get(name).await.ok()?;
                c.status?.nodes.iter().find(|r| r.pod == "pod-a" && r.phase == Some(phase)).map(|_| ())
            })
            .await
        }
    };
    settled("good-simple", NodePhase::Synced).await;
    settled("kerberos", NodePhase::Synced).await;
    settled("openldap", NodePhase::Synced).await;
    settled("wrong-password", NodePhase::Failed).await;
    wait_condition(&api, "two-principals", "Accepted", "False", "KeytabInvalid").await;
    let failed = api.get("wrong-password").await.expect("get").status.expect("status");
    let row = failed.nodes.iter().find(|r| r.pod == "pod-a").expect("row");
    assert_eq!(row.reason.as_deref(), Some("InvalidCredentials"), "{row:?}");
    // Everything has been logged, evented and written at least once: read it all.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut haystack = Vec::new();
    let state = env("LDAPSYNC_TEST_STATE");
    for log in [format!("controller-{ns}-leak-check.log"), format!("agent-{ns}-pod-a.log")] {
        let path = format!("{state}/{log}");
        let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(text.len() > 200, "{path} is nearly empty: the run logged nothing to check");
        haystack.push((log, String::from_utf8_lossy(&text).into_owned()));
    }
    let connections = api.list(&ListParams::default()).await.expect("list");
    haystack.push(("statuses".into(), serde_json::to_string(&connections.items).expect("json")));
    let events: Api<CoreEvent> = Api::namespaced(client.clone(), &ns);
    let events = events.list(&ListParams::default()).await.expect("events");
    assert!(!events.items.is_empty(), "the run recorded no Events");
    haystack.push(("events".into(), serde_json::to_string(&events.items).expect("json")));
    haystack
        .push(("agent metrics and status".into(), format!("{:?}{:?}", agent.get("/metrics"), agent.get("/v1/status"))));
    haystack.push(("controller metrics".into(), controller.metrics()));

    // The haystack is the real thing: it holds what the run did.
    assert_eq!(base64(b"Many"), "TWFueQ");
    let all: String = haystack.iter().map(|(_, t)| t.as_str()).collect();
    for expected in ["InvalidCredentials", "KeytabInvalid", "sync finished", "svc-sync@"] {
        assert!(all.contains(expected), "the captured run lacks {expected:?}");
    }
    let mut needles: Vec<(String, String)> = Vec::new();
    for (what, secret) in [
        ("AD password", ad_password.as_bytes()),
        ("wrong password", WRONG_PASSWORD.as_bytes()),
        ("slapd password", slapd_password.as_bytes()),
        ("keytab", keytab.as_slice()),
        ("two-principal keytab", two.as_slice()),
    ] {
        for e in encodings(secret) {
            needles.push((what.to_owned(), e));
        }
    }
    // Key material inside the keytabs: any 12-byte window of the files, hex-encoded.
    for file in [&keytab, &two] {
        for window in file.windows(12).step_by(12) {
            needles.push(("keytab bytes".into(), encodings(window)[0].clone()));
        }
    }
    for (source, text) in &haystack {
        for (what, needle) in &needles {
            assert!(!text.contains(needle.as_str()), "the {what} appears in {source}");
        }
    }
}
