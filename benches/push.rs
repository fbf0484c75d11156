#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout, unreachable_pub, dead_code)] // bench code states its expectations
//! Push latency: a user added on the server, until the agent's lookup API answers for it, with
//! `spec.incremental.push` and no poll (default 30-minute schedule). 20 trials on slapd
//! (refreshAndPersist) and 20 on Samba (change notification, which Samba sends on a ~5 s tick):
//! end to end, and from the notification's arrival at the agent (its push counter) to the answer
//! — what ldapsync adds to the server's own delay.
//!
//! Needs the test environment (`scripts/bench.sh` starts it) and the release binary (the test
//! support starts `ldapsync` processes). Output: a Markdown table on stdout.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::cluster::{create, gateway_pod, secret};
use support::{LdapsyncProcess, env};

fn ldapmodify(addr: &str, bind_dn: &str, password: &str, ldif: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("ldapmodify")
        .args(["-ZZ", "-x", "-H", &format!("ldap://{addr}"), "-D", bind_dn, "-w", password])
        .env("LDAPTLS_CACERT", env("LDAPSYNC_TEST_CA_FILE"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("ldapmodify");
    child.stdin.as_mut().expect("stdin").write_all(ldif.as_bytes()).expect("ldif");
    assert!(child.wait().expect("ldapmodify").success(), "ldapmodify failed:\n{ldif}");
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// Trials of `add(n)`, each until the lookup API answers for `address(n)`: (end to end, after
/// the notification arrived).
fn trials(
    agent: &LdapsyncProcess,
    count: usize,
    address: impl Fn(usize) -> String,
    add: impl Fn(usize),
) -> (Vec<Duration>, Vec<Duration>) {
    let (mut total, mut after_push) = (Vec::new(), Vec::new());
    for n in 0..count {
        let pushed_before = agent.metric("ldapsync_agent_push_notifications_total");
        let started = Instant::now();
        add(n);
        let mut arrived = None;
        loop {
            if arrived.is_none() && agent.metric("ldapsync_agent_push_notifications_total") > pushed_before {
                arrived = Some(Instant::now());
            }
            if agent.get(&format!("/v1/addresses/{}", address(n))).is_some() {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "no answer for {} after a minute", address(n));
            std::thread::sleep(Duration::from_millis(5));
        }
        let done = Instant::now();
        total.push(done - started);
        after_push.push(done - arrived.unwrap_or(done));
        std::thread::sleep(Duration::from_millis(300));
    }
    total.sort();
    after_push.sort();
    (total, after_push)
}

async fn gateway(ns_name: &str, spec: serde_json::Value) -> (LdapsyncProcess, LdapsyncProcess, tempfile::TempDir) {
    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, ns_name).await;
    secret(&client, &ns, "pw", &[("password", spec["x-password"].as_str().unwrap_or_default().as_bytes())]).await;
    secret(&client, &ns, "test-ca", &[("ca.crt", &support::read_file("LDAPSYNC_TEST_CA_FILE"))]).await;
    gateway_pod(&client, &ns, "gw-0").await;
    let store = tempfile::tempdir().expect("store");
    let agent = LdapsyncProcess::agent(&ns, "gw-0", store.path(), &env("LDAPSYNC_TEST_AD_DNS"));
    let controller = LdapsyncProcess::start(&ns, ns_name, &[]);
    let mut spec = spec;
    if let Some(o) = spec.as_object_mut() {
        o.remove("x-password");
    }
    create(&kube::Api::namespaced(client, &ns), "pushed", spec).await;
    support::eventually(Duration::from_secs(120), "the first sync and an open watch", || async {
        (agent.metric("ldapsync_agent_push_watches") >= 1.0
            && agent.metric("ldapsync_agent_reads_total{mode=\"Full\"}") >= 1.0)
            .then_some(())
    })
    .await;
    (agent, controller, store)
}

fn row(name: &str, total: &[Duration], after: &[Duration]) {
    let ms = |d: Duration| format!("{:.0}", d.as_secs_f64() * 1e3);
    println!(
        "| {name} | {} | {} | {} | {} | {} | {} |",
        total.len(),
        ms(percentile(total, 0.5)),
        ms(percentile(total, 0.99)),
        ms(percentile(after, 0.5)),
        ms(percentile(after, 0.99)),
        ms(*total.last().expect("a trial"))
    );
}

#[tokio::main]
async fn main() {
    let run = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    println!("| server | trials | p50 ms | p99 ms | p50 after the push arrived ms | p99 after ms | max ms |");
    println!("|---|---:|---:|---:|---:|---:|---:|");

    let base = env("LDAPSYNC_TEST_DELTA_BASES").split(';').next().expect("a base").to_owned();
    let (addr, admin, password) =
        (env("LDAPSYNC_TEST_DELTA_ADDR"), format!("cn=admin,{base}"), env("LDAPSYNC_TEST_SLAPD_PASSWORD"));
    let ou = format!("ou=bench{run},{base}");
    ldapmodify(&addr, &admin, &password, &format!("dn: {ou}\nchangetype: add\nobjectClass: organizationalUnit\n"));
    let spec = serde_json::json!({
        "domain": "delta.test", "searchBase": ou, "directoryType": "Generic",
        "servers": {"static": [addr]},
        "tls": {"mode": "StartTLS", "ca": {"secretRef": {"name": "test-ca"}}},
        "auth": {"simple": {"bindDN": admin, "passwordSecretRef": {"name": "pw"}}},
        "incremental": {"push": true}, "x-password": password,
    });
    let (agent, _controller, _store) = gateway("bench-push-slapd", spec).await;
    let (total, after) = trials(
        &agent,
        20,
        |n| format!("p{n}@delta.test"),
        |n| {
            ldapmodify(
                &addr,
                &admin,
                &password,
                &format!(
                    "dn: cn=p{n},{ou}\nchangetype: add\nobjectClass: inetOrgPerson\ncn: p{n}\nsn: p\nmail: p{n}@delta.test\n"
                ),
            );
        },
    );
    row("slapd (refreshAndPersist)", &total, &after);
    drop(agent);

    let ad_admin = format!("Administrator@{}", env("LDAPSYNC_TEST_AD_DOMAIN"));
    let ad_password = env("LDAPSYNC_TEST_AD_ADMIN_PASSWORD");
    let ad_addr = env("LDAPSYNC_TEST_AD_ADDR");
    let ad_ou = format!("OU=Bench{run},{}", env("LDAPSYNC_TEST_AD_BASE"));
    ldapmodify(
        &ad_addr,
        &ad_admin,
        &ad_password,
        &format!("dn: {ad_ou}\nchangetype: add\nobjectClass: organizationalUnit\n"),
    );
    let spec = serde_json::json!({
        "domain": env("LDAPSYNC_TEST_AD_DOMAIN"), "searchBase": ad_ou,
        "servers": {"static": [format!("{ad_addr}:389")]},
        "tls": {"mode": "StartTLS", "ca": {"secretRef": {"name": "test-ca"}}},
        "auth": {"simple": {"bindDN": env("LDAPSYNC_TEST_AD_BIND_DN"), "passwordSecretRef": {"name": "pw"}}},
        "incremental": {"push": true}, "x-password": env("LDAPSYNC_TEST_AD_PASSWORD"),
    });
    let (agent, _controller, _store) = gateway("bench-push-samba", spec).await;
    let (total, after) = trials(
        &agent,
        20,
        |n| format!("p{n}-{run}@corp.example.test"),
        |n| {
            ldapmodify(
                &ad_addr,
                &ad_admin,
                &ad_password,
                &format!(
                    "dn: CN=p{n},{ad_ou}\nchangetype: add\nobjectClass: user\nsAMAccountName: p{n}-{run}\nmail: p{n}-{run}@corp.example.test\n"
                ),
            );
        },
    );
    row("Samba AD (change notification, ~5 s tick)", &total, &after);
}
