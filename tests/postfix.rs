#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout, unreachable_pub)] // test code states its expectations
//! A real Postfix asks the cache through the socketmap server of `ldapsync serve`: recipient
//! validation (`relay_recipient_maps`), relay domains, a group-restricted list
//! (`smtpd_restriction_classes`), sub-addresses; `TEMP` (4xx, mail deferred) while no cache is
//! loaded and when the server is gone. Malformed socketmap requests are refused with `PERM`. The
//! agent, syncing from Samba through a forwarder that stands in for every DC, keeps Postfix answered
//! while the DCs are down, applies the disabled-accounts policy, and defers mail once it stops.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use kube::api::Api;
use ldapsync::api::LdapConnection;
use serde_json::json;
use support::cluster::{annotate, create, gateway_pod, secret};
use support::{
    Forwarder, LdapsyncProcess, client, env, eventually, free_port, http_get, install_crds, namespace, read_file,
};

/// `ldapsync serve` with its socketmap port; killed (by PID) when dropped.
struct Serve {
    child: Child,
    http_port: u16,
}

impl Serve {
    fn start(store: &Path, socketmap_port: u16) -> Self {
        let http_port = free_port();
        let log = std::fs::File::create(format!("{}/postfix-serve-{socketmap_port}.log", env("LDAPSYNC_TEST_STATE")))
            .expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_ldapsync"))
            .args(["serve", "--store"])
            .arg(store)
            .args(["--listen", &format!("127.0.0.1:{http_port}")])
            .args(["--socketmap-listen", &format!("127.0.0.1:{socketmap_port}"), "--recipient-delimiter", "+"])
            .env("LDAPSYNC_LOG", "info")
            .stderr(log)
            .spawn()
            .expect("start ldapsync serve");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", socketmap_port)).is_err() {
            assert!(Instant::now() < deadline, "ldapsync serve did not open its socketmap port");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, http_port }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Postfix instance with its own configuration and queue folders, smtpd on 127.0.0.1.
struct Postfix {
    config: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Postfix {
    fn start(socketmap_port: u16) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (config, queue) = (dir.path().join("etc"), dir.path().join("spool"));
        std::fs::create_dir_all(&config).expect("config dir");
        std::fs::create_dir_all(&queue).expect("queue dir");
        let port = free_port();
        let master = std::fs::read_to_string("/etc/postfix/master.cf")
            .or_else(|_| std::fs::read_to_string("/usr/share/postfix/master.cf.dist"))
            .expect("Postfix's master.cf: is Debian's postfix installed (scripts/install-deps.sh)?");
        let master = master.replace(
            "smtp      inet  n       -       y       -       -       smtpd",
            &format!("127.0.0.1:{port} inet n - n - - smtpd"),
        );
        std::fs::write(config.join("master.cf"), master).expect("master.cf");
        let map = |name: &str| format!("socketmap:inet:127.0.0.1:{socketmap_port}:{name}");
        let domain = env("LDAPSYNC_TEST_AD_DOMAIN");
        let main = format!(
            "compatibility_level = 3.6\nqueue_directory = {q}\ndata_directory = {q}/data\nmail_owner = postfix\n\
             inet_interfaces = loopback-only\ninet_protocols = ipv4\nmyhostname = mx.{domain}\nmydestination =\n\
             recipient_delimiter = +\nrelay_domains = {domains}\nrelay_recipient_maps = {recipients}\n\
             relay_transport = discard:\nsmtpd_restriction_classes = sales_senders, support_senders\n\
             sales_senders = check_sender_access {sales}, reject\n\
             support_senders = check_sender_access {support}, reject\n\
             smtpd_recipient_restrictions = check_recipient_access \
             inline:{{ sales@{domain}=sales_senders, support@{domain}=support_senders }}, \
             reject_unauth_destination\nmaillog_file_prefixes = {d}\nmaillog_file = {d}/maillog\n",
            q = queue.display(),
            d = dir.path().display(),
            domains = map("domain"),
            recipients = map("recipient"),
            sales = map(&format!("member=sales@{domain}")),
            support = map(&format!("member=support@{domain}")),
        );
        std::fs::write(config.join("main.cf"), main).expect("main.cf");
        let out = Command::new("postfix").arg("-c").arg(&config).arg("start").output().expect("run postfix");
        assert!(out.status.success(), "postfix start failed: {}", String::from_utf8_lossy(&out.stderr));
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "Postfix's smtpd did not listen on {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { config, port, _dir: dir }
    }

    /// Postfix's answer to `RCPT TO:<to>` after `MAIL FROM:<from>`: the reply line.
    fn rcpt(&self, from: &str, to: &str) -> String {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to smtpd");
        stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut writer = stream;
        let mut reply = |command: Option<String>| -> String {
            if let Some(c) = command {
                writer.write_all(format!("{c}\r\n").as_bytes()).expect("send");
            }
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).expect("read reply");
                assert!(!line.is_empty(), "smtpd closed the connection");
                // Continuation lines have a `-` after the code; the last has a space.
                if line.as_bytes().get(3) != Some(&b'-') {
                    return line.trim_end().to_owned();
                }
            }
        };
        assert!(reply(None).starts_with("220"), "no greeting");
        assert!(reply(Some("EHLO client.test".into())).starts_with("250"));
        let mail = reply(Some(format!("MAIL FROM:<{from}>")));
        assert!(mail.starts_with("250"), "MAIL FROM refused: {mail}");
        let answer = reply(Some(format!("RCPT TO:<{to}>")));
        let _ = reply(Some("QUIT".into()));
        answer
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = Command::new("postfix").arg("-c").arg(&self.config).arg("stop").output();
    }
}

/// Sends raw bytes to the socketmap port and reads until `replies` netstrings or the close.
fn socketmap_raw(port: u16, request: &[u8], replies: usize) -> (Vec<String>, bool) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the socketmap port");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    stream.write_all(request).expect("send");
    let mut buf = Vec::new();
    let mut answers = Vec::new();
    let mut chunk = [0u8; 4096];
    let closed = loop {
        if answers.len() == replies {
            break false;
        }
        match stream.read(&mut chunk) {
            Ok(0) => break true,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => panic!("socketmap read: {e}"),
        }
        while let Some(colon) = buf.iter().position(|b| *b == b':') {
            let len: usize = std::str::from_utf8(&buf[..colon]).expect("digits").parse().expect("length");
            if buf.len() < colon + len + 2 {
                break;
            }
            answers.push(String::from_utf8_lossy(&buf[colon + 1..colon + 1 + len]).into_owned());
            buf.drain(..colon + len + 2);
        }
    };
    (answers, closed)
}

fn netstring(s: &str) -> String {
    format!("{}:{s},", s.len())
}

/// A store with Samba's directory, synced by the CLI (simple bind over StartTLS).
fn synced_store(dir: &Path) -> PathBuf {
    let secrets = dir.join("secrets");
    for (name, key, bytes) in [
        ("sync-password", "password", env("LDAPSYNC_TEST_AD_PASSWORD").into_bytes()),
        ("test-ca", "ca.crt", read_file("LDAPSYNC_TEST_CA_FILE")),
    ] {
        std::fs::create_dir_all(secrets.join(name)).expect("secret dir");
        std::fs::write(secrets.join(name).join(key), bytes).expect("secret");
    }
    let manifest = dir.join("corp.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: ldapsync.io/v1alpha1\nkind: LdapConnection\nmetadata: {{name: corp, namespace: mail, uid: corp-uid}}\n\
             spec:\n  domain: {}\n  searchBase: {}\n  tls: {{mode: StartTLS, ca: {{secretRef: {{name: test-ca}}}}}}\n  \
             auth: {{simple: {{bindDN: {}, passwordSecretRef: {{name: sync-password}}}}}}\n  contacts: {{enabled: true}}\n",
            env("LDAPSYNC_TEST_AD_DOMAIN"),
            env("LDAPSYNC_TEST_AD_BASE"),
            env("LDAPSYNC_TEST_AD_BIND_DN"),
        ),
    )
    .expect("manifest");
    let store = dir.join("store");
    let out = Command::new(env!("CARGO_BIN_EXE_ldapsync"))
        .args(["sync", "-f"])
        .arg(&manifest)
        .arg("--secrets-dir")
        .arg(&secrets)
        .arg("--store")
        .arg(&store)
        .args(["--dns-server", &env("LDAPSYNC_TEST_AD_DNS")])
        .output()
        .expect("run ldapsync sync");
    assert!(out.status.success(), "sync failed: {}", String::from_utf8_lossy(&out.stderr));
    store
}

#[test]
fn postfix_validates_recipients_and_group_senders_from_the_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let domain = env("LDAPSYNC_TEST_AD_DOMAIN");
    let port = free_port();
    let postfix = Postfix::start(port);
    let alice = format!("alice@{domain}");

    // No cache yet: TEMP, so Postfix defers (4xx) instead of accepting or rejecting. (Postfix's
    // smtpd keeps an address's resolved class for the life of the process: each phase of this test
    // asks about addresses of its own.)
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).expect("empty store");
    let serve = Serve::start(&empty, port);
    let (answers, _) = socketmap_raw(port, netstring(&format!("recipient {alice}")).as_bytes(), 1);
    assert!(answers[0].starts_with("TEMP "), "{answers:?}");
    let deferred = postfix.rcpt("someone@elsewhere.test", &format!("frank@{domain}"));
    assert!(deferred.starts_with("451 4.3.0"), "no cache: {deferred}");
    drop(serve);

    let store = synced_store(dir.path());
    let serve = Serve::start(&store, port);
    for (to, expected) in [
        (alice.clone(), "250 2.1.5"),
        (format!("Alice@{}", domain.to_uppercase()), "250 2.1.5"),
        (format!("a.liddell@{domain}"), "250 2.1.5"), // an smtp: alias
        (format!("alice+newsletter@{domain}"), "250 2.1.5"),
        (format!("dave@{domain}"), "250 2.1.5"), // disabled, included by default (shared mailboxes)
        ("partner@external.example".into(), "250 2.1.5"), // a contact's domain is relayed too
        (format!("nobody@{domain}"), "550 5.1.1"),
        ("someone@not-ours.example".into(), "554 5.7.1"), // not a relay domain
    ] {
        let answer = postfix.rcpt("someone@elsewhere.test", &to);
        assert!(answer.starts_with(expected), "RCPT TO:<{to}>: {answer}");
    }
    assert!(postfix.rcpt("someone@elsewhere.test", &format!("nobody@{domain}")).contains("User unknown"));

    // Only members of Sales (nested groups resolved) may write to the Sales list.
    let sales = format!("sales@{domain}");
    for (from, expected) in [
        (alice.clone(), "250 2.1.5"),
        (format!("bob@{domain}"), "250 2.1.5"),
        ("partner@external.example".into(), "250 2.1.5"),
        (format!("carol@{domain}"), "554 5.7.1"),
        ("stranger@elsewhere.test".into(), "554 5.7.1"),
    ] {
        let answer = postfix.rcpt(&from, &sales);
        assert!(answer.starts_with(expected), "MAIL FROM:<{from}> RCPT TO:<{sales}>: {answer}");
    }

    // Support is carol's primary group (AD's primaryGroupID, no `member` value): she may write to
    // the Support list, alice may not.
    let support = format!("support@{domain}");
    for (from, expected) in [(format!("carol@{domain}"), "250 2.1.5"), (alice.clone(), "554 5.7.1")] {
        let answer = postfix.rcpt(&from, &support);
        assert!(answer.starts_with(expected), "MAIL FROM:<{from}> RCPT TO:<{support}>: {answer}");
    }

    // The server gone: Postfix defers, never accepts blindly.
    drop(serve);
    let gone = postfix.rcpt("someone@elsewhere.test", &format!("robert@{domain}"));
    assert!(gone.starts_with("451 4.3.0"), "server stopped: {gone}");
}

#[test]
fn malformed_socketmap_requests_are_refused_and_many_clients_are_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let domain = env("LDAPSYNC_TEST_AD_DOMAIN");
    let store = synced_store(dir.path());
    let port = free_port();
    let serve = Serve::start(&store, port);

    // Content errors: PERM naming the cause, and the connection goes on.
    let mut pipelined = String::new();
    for request in ["virtual a@b.test", "recipient a b@x.test", "recipient", &format!("recipient alice@{domain}")] {
        pipelined.push_str(&netstring(request));
    }
    pipelined.push_str(&netstring("recipient a\0b"));
    let (answers, closed) = socketmap_raw(port, pipelined.as_bytes(), 5);
    assert!(!closed);
    assert!(answers[0].starts_with("PERM unknown map \"virtual\""), "{answers:?}");
    assert!(answers[1].starts_with("PERM the key contains white space"), "{answers:?}");
    assert!(answers[2].starts_with("PERM the request has no key"), "{answers:?}");
    assert_eq!(answers[3], format!("OK alice@{domain}"));
    assert!(answers[4].starts_with("PERM the key contains a NUL byte"), "{answers:?}");

    // Framing errors: PERM, then the server closes (the stream cannot be resynchronised).
    for bad in [&b"100001:"[..], b"12x:recipient a,", b"5:hello;"] {
        let (answers, closed) = socketmap_raw(port, bad, 2);
        assert!(closed && answers.len() == 1 && answers[0].starts_with("PERM "), "{bad:?}: {answers:?}");
    }
    let at_limit = format!("recipient {}@{domain}", "x".repeat(99_000));
    let (answers, _) = socketmap_raw(port, netstring(&at_limit).as_bytes(), 1);
    assert_eq!(answers, ["NOTFOUND "], "a request at Postfix's size limit is answered");

    // Half a request, then silence: the connection is closed after the request timeout.
    let started = Instant::now();
    let (answers, closed) = socketmap_raw(port, b"30:recipient alice", 1);
    assert!(closed && answers.is_empty(), "{answers:?}");
    assert!(started.elapsed() < Duration::from_secs(25), "closed after {:?}", started.elapsed());

    // Many clients at once, each pipelining requests.
    let clients: Vec<_> = (0..64)
        .map(|i| {
            let domain = domain.clone();
            std::thread::spawn(move || {
                let known = if i % 2 == 0 { format!("bob@{domain}") } else { format!("robert@{domain}") };
                let mut requests = String::new();
                for j in 0..50 {
                    let key = if j % 5 == 0 { format!("nobody{j}@{domain}") } else { known.clone() };
                    requests.push_str(&netstring(&format!("recipient {key}")));
                }
                let (answers, _) = socketmap_raw(port, requests.as_bytes(), 50);
                answers
            })
        })
        .collect();
    for client in clients {
        let answers = client.join().expect("client thread");
        assert_eq!(answers.len(), 50);
        for (j, a) in answers.iter().enumerate() {
            let want = if j % 5 == 0 { "NOTFOUND ".to_owned() } else { format!("OK bob@{domain}") };
            assert_eq!(*a, want);
        }
    }
    // Still serving after all of it; every request counted by map and reply.
    let (answers, _) = socketmap_raw(port, netstring(&format!("domain {domain}")).as_bytes(), 1);
    assert_eq!(answers, [format!("OK {domain}")]);
    let metrics = http_get(serve.http_port, "/metrics").expect("metrics");
    let count = |series: &str| -> f64 {
        metrics.lines().find_map(|l| l.strip_prefix(series)?.trim().parse().ok()).unwrap_or(0.0)
    };
    assert_eq!(count("ldapsync_socketmap_requests_total{map=\"recipient\",outcome=\"ok\"}"), 1.0 + 64.0 * 40.0);
    assert_eq!(count("ldapsync_socketmap_requests_total{map=\"recipient\",outcome=\"notfound\"}"), 1.0 + 64.0 * 10.0);
    assert_eq!(count("ldapsync_socketmap_requests_total{map=\"domain\",outcome=\"ok\"}"), 1.0);
    assert!(count("ldapsync_socketmap_requests_total{map=\"invalid\",outcome=\"perm\"}") >= 4.0, "{metrics}");
}

/// Polls the socketmap until `request` is answered `expected` (the agent's first sync, a reload).
async fn socketmap_until(port: u16, request: &str, expected: &str) {
    let what = format!("the socketmap to answer {request:?} with {expected:?}");
    eventually(Duration::from_secs(60), &what, || async {
        let port_request = netstring(request);
        let answers = tokio::task::spawn_blocking(move || {
            TcpStream::connect(("127.0.0.1", port)).ok().map(|_| socketmap_raw(port, port_request.as_bytes(), 1).0)
        })
        .await
        .expect("socketmap client");
        answers.filter(|a| a.first().map(String::as_str) == Some(expected)).map(|_| ())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postfix_asks_the_agent_which_answers_from_its_cache_while_every_dc_is_down() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "postfix-agent").await;
    let domain = env("LDAPSYNC_TEST_AD_DOMAIN");
    secret(&client, &ns, "sync-password", &[("password", env("LDAPSYNC_TEST_AD_PASSWORD").as_bytes())]).await;
    secret(&client, &ns, "test-ca", &[("ca.crt", &read_file("LDAPSYNC_TEST_CA_FILE"))]).await;
    gateway_pod(&client, &ns, "mx-0").await;
    let store = tempfile::tempdir().expect("store");
    let socketmap_port = free_port();
    let socketmap_listen = format!("127.0.0.1:{socketmap_port}");
    let mut agent = LdapsyncProcess::agent_with(
        &ns,
        "mx-0",
        store.path(),
        &env("LDAPSYNC_TEST_AD_DNS"),
        &["--socketmap-listen", &socketmap_listen, "--recipient-delimiter", "+"],
        &[],
    );
    // The only DC the connection knows is this forwarder: stopping it takes every DC away.
    let dc_port = free_port();
    let dc = Forwarder::start(dc_port, &format!("{}:389", env("LDAPSYNC_TEST_AD_ADDR"))).await;
    let _controller = LdapsyncProcess::start(&ns, "postfix-agent", &[]);
    let api: Api<LdapConnection> = Api::namespaced(client.clone(), &ns);
    create(
        &api,
        "corp",
        json!({
            "domain": domain,
            "searchBase": env("LDAPSYNC_TEST_AD_BASE"),
            "servers": {"static": [format!("{}:{dc_port}", env("LDAPSYNC_TEST_AD_HOST"))]},
            "tls": {"mode": "StartTLS", "ca": {"secretRef": {"name": "test-ca"}}},
            "auth": {"simple": {"bindDN": env("LDAPSYNC_TEST_AD_BIND_DN"), "passwordSecretRef": {"name": "sync-password"}}},
            "disabledAccounts": "Exclude",
            "timeouts": {"connect": "2s", "operation": "5s"}
        }),
    )
    .await;
    socketmap_until(socketmap_port, &format!("recipient alice@{domain}"), &format!("OK alice@{domain}")).await;
    let postfix = Postfix::start(socketmap_port);

    // Disabled accounts excluded by the connection's policy: dave is no recipient.
    for (to, expected) in [
        (format!("alice@{domain}"), "250 2.1.5"),
        (format!("dave@{domain}"), "550 5.1.1"),
        (format!("nobody@{domain}"), "550 5.1.1"),
    ] {
        let answer = postfix.rcpt("someone@elsewhere.test", &to);
        assert!(answer.starts_with(expected), "RCPT TO:<{to}>: {answer}");
    }

    // Every DC down and a sync requested: the sync fails, the cache stays and Postfix is still
    // answered from it (addresses this smtpd has not resolved before).
    dc.stop();
    annotate(&api, "corp", "ldapsync.io/sync-requested-at", "2026-12-02T08:00:00Z").await;
    eventually(Duration::from_secs(60), "the agent to find every DC down", || async {
        agent.get("/v1/status").filter(|s| s.contains("\"stale\":true"))
    })
    .await;
    for (to, expected) in [
        (format!("bob@{domain}"), "250 2.1.5"),
        (format!("a.liddell+tag@{domain}"), "250 2.1.5"),
        (format!("nobody-else@{domain}"), "550 5.1.1"),
    ] {
        let answer = postfix.rcpt("someone@elsewhere.test", &to);
        assert!(answer.starts_with(expected), "every DC down, RCPT TO:<{to}>: {answer}");
    }
    let (answers, _) =
        socketmap_raw(socketmap_port, netstring(&format!("member=sales@{domain} bob@{domain}")).as_bytes(), 1);
    assert_eq!(answers, ["OK OK"], "group rules answered during the outage");

    // The agent stopped: Postfix defers (4xx), it never accepts blindly.
    agent.kill();
    let gone = postfix.rcpt("someone@elsewhere.test", &format!("robert@{domain}"));
    assert!(gone.starts_with("451 4.3.0"), "agent stopped: {gone}");
}
