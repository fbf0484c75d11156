#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout, unreachable_pub)] // test code states its expectations
//! The product as an administrator runs it: the image of `scripts/image.sh` on the test
//! environment's real node, the Helm chart installed with it, the controller Deployment and the
//! example gateway StatefulSet running as pods. Every row is written by a pod's own agent through
//! its own ServiceAccount token; lookups are asked from inside the gateway container.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::{client, env, eventually, install_crds, namespace, run_tool};

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/ldapsync");
/// Pods start in seconds; a first sync of Samba takes about one. Generous for a busy 2-core machine.
const SETTLE: Duration = Duration::from_secs(180);

/// One Helm release of the chart in its own namespace.
struct Release {
    ns: String,
    name: String,
}

impl Release {
    /// A fresh namespace (a leftover release and its volumes from an earlier run removed first).
    async fn fresh(ns: &str, name: &str) -> Self {
        let client = client().await;
        install_crds(&client).await;
        let _ = run_tool(&env("LDAPSYNC_TEST_HELM"), &["uninstall", name, "--namespace", ns, "--wait"]);
        namespace(&client, ns).await;
        // Only now are the old claims gone, which lets their volumes go.
        let (ok, out) = run_tool(
            &env("LDAPSYNC_TEST_KUBECTL"),
            &["delete", "pv", "-l", &format!("ldapsync-test={ns}"), "--wait=true", "--timeout=60s"],
        );
        assert!(ok, "old volumes of {ns} remain: {out}");
        Self { ns: ns.to_owned(), name: name.to_owned() }
    }

    fn kubectl(&self, args: &[&str]) -> String {
        let mut all = vec!["--namespace", &self.ns];
        all.extend(args);
        let (ok, out) = run_tool(&env("LDAPSYNC_TEST_KUBECTL"), &all);
        assert!(ok, "kubectl {args:?} failed:\n{out}");
        out
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let out = self.kubectl(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("kubectl {args:?} printed no JSON ({e}): {out}"))
    }

    fn helm(&self, verb: &str, extra: &[&str]) -> String {
        let image = env("LDAPSYNC_TEST_IMAGE");
        let (repository, tag) = image.rsplit_once(':').expect("LDAPSYNC_TEST_IMAGE is NAME:TAG");
        let mut args: Vec<String> = [verb, &self.name, CHART, "--namespace", &self.ns].map(String::from).to_vec();
        for set in [
            format!("image.repository={repository}"),
            format!("image.tag={tag}"),
            "image.pullPolicy=Never".into(),
            format!("controller.watchNamespace={}", self.ns),
            "agent.secretNames={ldapsync-keytab,openldap-password,corp-ca}".into(),
            format!("exampleGateway.image={}", env("LDAPSYNC_TEST_GATEWAY_IMAGE")),
            "agent.socketmap.port=8391".into(),
        ] {
            args.extend(["--set".into(), set]);
        }
        // No agent.krb5Config: the agents write their own (the KDC is the DC each sync chose).
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, out) = run_tool(&env("LDAPSYNC_TEST_HELM"), &args);
        assert!(ok, "helm {verb} failed:\n{out}");
        out
    }

    fn statefulset(&self) -> String {
        format!("{}-ldapsync-example-gateway", self.name)
    }

    fn gateway(&self, i: usize) -> String {
        format!("{}-{i}", self.statefulset())
    }

    /// Local volumes bound in advance to the StatefulSet's claims: a pod's cache outlives the pod.
    fn persistent_volumes(&self, count: usize) {
        let dir = env("LDAPSYNC_TEST_NODE_PV_DIR");
        let mut manifest = String::new();
        for i in 0..count {
            let path = format!("{dir}/{}/{i}", self.ns);
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            std::os::unix::fs::chown(&path, Some(65532), Some(65532)).unwrap_or_else(|e| panic!("chown {path}: {e}"));
            manifest.push_str(&format!(
                "apiVersion: v1\nkind: PersistentVolume\nmetadata: {{name: {ns}-cache-{i}, labels: {{ldapsync-test: {ns}}}}}\n\
                 spec:\n  capacity: {{storage: 1Gi}}\n  accessModes: [ReadWriteOnce]\n  \
                 persistentVolumeReclaimPolicy: Retain\n  hostPath: {{path: {path}, type: Directory}}\n  \
                 claimRef: {{namespace: {ns}, name: ldapsync-cache-{sts}-{i}}}\n---\n",
                ns = self.ns,
                sts = self.statefulset(),
            ));
        }
        self.apply(&manifest);
    }

    fn apply(&self, manifest: &str) {
        let path = format!("{}/in-cluster-{}-{}.yaml", env("LDAPSYNC_TEST_STATE"), self.ns, manifest.len());
        std::fs::write(&path, manifest).expect("write manifest");
        self.kubectl(&["apply", "-f", &path]);
    }

    /// The Secrets the connections reference: keytab, OpenLDAP password, CA.
    fn directory_secrets(&self) {
        for (name, kind, source) in [
            ("ldapsync-keytab", "--from-file=keytab=", env("LDAPSYNC_TEST_KEYTAB")),
            ("openldap-password", "--from-literal=password=", env("LDAPSYNC_TEST_SLAPD_PASSWORD")),
            ("corp-ca", "--from-file=ca.crt=", env("LDAPSYNC_TEST_CA_FILE")),
        ] {
            self.kubectl(&["create", "secret", "generic", name, &format!("{kind}{source}")]);
        }
    }

    /// Samba AD by DNS SRV with a keytab (sealed GSSAPI), OpenLDAP by name with StartTLS.
    fn connections(&self) {
        self.apply(&format!(
            "apiVersion: ldapsync.io/v1alpha1\nkind: LdapConnection\nmetadata: {{name: corp}}\nspec:\n  \
             domain: {domain}\n  searchBase: {base}\n  servers: {{srv: {{}}}}\n  tls: {{mode: None}}\n  \
             auth: {{kerberos: {{keytabSecretRef: {{name: ldapsync-keytab}}}}}}\n  contacts: {{enabled: true}}\n---\n\
             apiVersion: ldapsync.io/v1alpha1\nkind: LdapConnection\nmetadata: {{name: openldap}}\nspec:\n  \
             domain: example.test\n  searchBase: {ol_base}\n  directoryType: Generic\n  \
             servers: {{static: [\"ldap1.example.test:389\"]}}\n  \
             tls: {{mode: StartTLS, ca: {{secretRef: {{name: corp-ca}}}}}}\n  \
             auth: {{simple: {{bindDN: \"{ol_dn}\", passwordSecretRef: {{name: openldap-password}}}}}}\n  \
             emailAttributes: [mail]\n",
            domain = env("LDAPSYNC_TEST_AD_DOMAIN"),
            base = env("LDAPSYNC_TEST_AD_BASE"),
            ol_base = env("LDAPSYNC_TEST_SLAPD_BASE"),
            ol_dn = env("LDAPSYNC_TEST_SLAPD_BIND_DN"),
        ));
    }

    /// (status, reason) of a connection's condition.
    fn condition(&self, connection: &str, type_: &str) -> Option<(String, String)> {
        let c = self.json(&["get", "ldapconnection", connection]);
        let cond = c["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == type_)?.clone();
        Some((cond["status"].as_str()?.to_owned(), cond["reason"].as_str()?.to_owned()))
    }

    fn rows(&self, connection: &str) -> Vec<Value> {
        self.json(&["get", "ldapconnection", connection])["status"]["nodes"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until the connection is Ready with a Synced row from exactly these pods.
    async fn wait_synced(&self, connection: &str, pods: &[String]) {
        let what = format!("{connection}: Ready with Synced rows of {pods:?}");
        eventually(SETTLE, &what, || async {
            let ready = self.condition(connection, "Ready").is_some_and(|(s, _)| s == "True");
            let rows = self.rows(connection);
            let mut synced: Vec<String> = rows
                .iter()
                .filter(|r| r["phase"] == "Synced")
                .filter_map(|r| r["pod"].as_str().map(str::to_owned))
                .collect();
            synced.sort();
            (ready && synced == pods && rows.len() == pods.len()).then_some(())
        })
        .await;
    }

    fn pods(&self, selector: &str) -> Vec<Value> {
        self.json(&["get", "pods", "-l", selector])["items"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until exactly `count` pods of `selector` run with every container ready.
    async fn wait_pods_ready(&self, selector: &str, count: usize) -> Vec<Value> {
        eventually(SETTLE, &format!("{count} ready pods of {selector}"), || async {
            let pods = self.pods(selector);
            let ready = pods.iter().filter(|p| p["metadata"]["deletionTimestamp"].is_null()).all(|p| {
                p["status"]["phase"] == "Running"
                    && p["status"]["containerStatuses"]
                        .as_array()
                        .is_some_and(|cs| cs.iter().all(|c| c["ready"] == true))
            });
            (ready && pods.len() == count).then_some(pods)
        })
        .await
    }

    /// A GET from inside `pod`'s gateway container: (2xx, body or wget's error).
    fn get_in_pod(&self, pod: &str, url: &str) -> (bool, String) {
        let all = ["--namespace", &self.ns, "exec", pod, "-c", "gateway", "--", "wget", "-qO-", url];
        run_tool(&env("LDAPSYNC_TEST_KUBECTL"), &all)
    }

    /// Asks the agent beside `pod` from inside its gateway container, as the gateway would.
    fn lookup_in_pod(&self, pod: &str, address: &str) -> Option<Value> {
        let (ok, out) = self.get_in_pod(pod, &format!("http://127.0.0.1:8389/v1/addresses/{address}"));
        if !ok {
            assert!(out.contains("404"), "lookup of {address} in {pod} failed:\n{out}");
            return None;
        }
        Some(serde_json::from_str(&out).unwrap_or_else(|e| panic!("lookup answer in {pod} is not JSON ({e}): {out}")))
    }

    /// The pod's UID; `None` while it does not exist (e.g. between a rolling update's delete and
    /// create).
    fn uid(&self, pod: &str) -> Option<String> {
        let (ok, out) = run_tool(
            &env("LDAPSYNC_TEST_KUBECTL"),
            &["--namespace", &self.ns, "get", "pod", pod, "-o", "jsonpath={.metadata.uid}"],
        );
        (ok && !out.is_empty()).then_some(out)
    }
}

const GATEWAY: &str = "app.kubernetes.io/name=example-gateway";
const CONTROLLER: &str = "app.kubernetes.io/component=controller";

fn restarts(pods: &[Value]) -> Vec<(String, String, i64)> {
    pods.iter()
        .flat_map(|p| {
            let pod = p["metadata"]["name"].as_str().unwrap_or_default().to_owned();
            p["status"]["containerStatuses"].as_array().cloned().unwrap_or_default().into_iter().map(move |c| {
                (
                    pod.clone(),
                    c["name"].as_str().unwrap_or_default().to_owned(),
                    c["restartCount"].as_i64().unwrap_or(-1),
                )
            })
        })
        .filter(|(_, _, n)| *n != 0)
        .collect()
}

#[tokio::test]
async fn the_chart_runs_on_the_node_and_its_pods_sync_serve_scale_roll_and_purge() {
    let r = Release::fresh("in-cluster-gateway", "gw").await;
    r.persistent_volumes(3);
    r.directory_secrets();
    let installed = Instant::now();
    r.helm("install", &["--set", "exampleGateway.enabled=true"]);
    r.connections();
    let two = vec![r.gateway(0), r.gateway(1)];
    r.wait_synced("corp", &two).await;
    r.wait_synced("openldap", &two).await;
    eprintln!("[in-cluster] both connections Ready with 2/2 rows {:.1?} after helm install", installed.elapsed());
    r.wait_pods_ready(GATEWAY, 2).await;
    r.wait_pods_ready(CONTROLLER, 2).await;

    // The rows are the pods' own: each names a DC reached over the pod network.
    for row in r.rows("corp") {
        let server = row["server"].as_str().unwrap_or_default();
        assert!(server.contains(&env("LDAPSYNC_TEST_AD_DOMAIN")), "corp row names its DC: {row}");
        assert!(row["counts"]["users"].as_i64().unwrap_or(0) > 0, "corp row counts users: {row}");
    }

    // The gateway container asks its sidecar on localhost.
    let alice = format!("alice@{}", env("LDAPSYNC_TEST_AD_DOMAIN"));
    for pod in &two {
        let answer = r.lookup_in_pod(pod, &alice).unwrap_or_else(|| panic!("{pod} does not know {alice}"));
        assert_eq!(answer["connection"], format!("{}/corp", r.ns).as_str(), "{answer}");
        assert!(r.lookup_in_pod(pod, "u000001@example.test").is_some(), "{pod} does not know the OpenLDAP user");
        assert!(r.lookup_in_pod(pod, "nobody@nowhere.test").is_none());
    }

    // The gateway's mail server asks in Postfix's socketmap protocol, on localhost too.
    let request = format!("recipient {alice}");
    let script = format!("printf '{}:{request},' | nc -w 2 127.0.0.1 8391", request.len());
    let all = ["--namespace", &r.ns, "exec", &two[0], "-c", "gateway", "--", "sh", "-c", &script];
    let (ok, out) = run_tool(&env("LDAPSYNC_TEST_KUBECTL"), &all);
    assert!(ok && out.contains(&format!("OK {alice}")), "socketmap in the pod: {out}");

    // `kubectl ldapsync check` tests the connection from inside a gateway pod, with its own Secrets.
    let plugins = tempfile::tempdir().expect("plugin folder");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_ldapsync"), plugins.path().join("kubectl-ldapsync")).expect("link");
    let check = std::process::Command::new(env("LDAPSYNC_TEST_KUBECTL"))
        .args(["ldapsync", "check", "corp", "-n", &r.ns, "--pod", &two[1]])
        .env("PATH", format!("{}:{}", plugins.path().display(), std::env::var("PATH").unwrap_or_default()))
        .env("KUBECONFIG", env("LDAPSYNC_TEST_KUBECONFIG"))
        .output()
        .expect("kubectl ldapsync check");
    let (out, err) = (String::from_utf8_lossy(&check.stdout), String::from_utf8_lossy(&check.stderr));
    assert!(check.status.success(), "kubectl ldapsync check: {out}{err}");
    assert!(out.starts_with(&format!("# checked from pod {}", two[1])), "{out}");
    let report: Value = serde_json::from_str(out.lines().skip(1).collect::<Vec<_>>().join("\n").as_str())
        .unwrap_or_else(|e| panic!("the check report is not JSON ({e}): {out}"));
    assert!(report["server"].as_str().is_some_and(|s| s.contains(&env("LDAPSYNC_TEST_AD_DOMAIN"))), "{report}");
    assert!(report["counts"]["users"].as_u64().unwrap_or(0) > 0, "{report}");
    assert!(
        report["identity"].as_str().is_some_and(|i| i.starts_with("svc-sync@")),
        "the connection's own keytab: {report}"
    );

    // On the pod's address the sidecar answers probes and metrics only; lookups stay on localhost.
    let ip = r.json(&["get", "pod", &two[0]])["status"]["podIP"].as_str().expect("pod IP").to_owned();
    let (ok, out) = r.get_in_pod(&two[0], &format!("http://{ip}:8390/readyz"));
    assert!(ok && out.contains("ready"), "{out}");
    assert!(r.get_in_pod(&two[0], &format!("http://{ip}:8390/metrics")).1.contains("ldapsync_agent_syncs_total"));
    let (ok, out) = r.get_in_pod(&two[0], &format!("http://{ip}:8390/v1/addresses/{alice}"));
    assert!(!ok && out.contains("404"), "the probe port must not answer lookups: {out}");
    let (ok, out) = r.get_in_pod(&two[0], &format!("http://{ip}:8389/v1/addresses/{alice}"));
    assert!(!ok, "the lookup API must not listen on the pod's address: {out}");

    // What `kubectl get lc` shows.
    let table = r.kubectl(&["get", "lc"]);
    let header = table.lines().next().unwrap_or_default();
    for column in ["NAME", "DOMAIN", "SEARCH BASE", "READY", "NODES", "USERS", "DUPLICATES", "AGE"] {
        assert!(header.contains(column), "column {column} missing: {table}");
    }
    let corp = table.lines().find(|l| l.starts_with("corp ")).unwrap_or_else(|| panic!("no corp line: {table}"));
    assert!(corp.contains("True") && corp.contains("2/2"), "{table}");

    // Scale down: the gone pod's row goes. Scale to 3: a fresh pod syncs, and the returning pod's
    // row comes back.
    r.kubectl(&["scale", "statefulset", &r.statefulset(), "--replicas=1"]);
    r.wait_synced("corp", &[r.gateway(0)]).await;
    let three = vec![r.gateway(0), r.gateway(1), r.gateway(2)];
    let scaled = Instant::now();
    r.kubectl(&["scale", "statefulset", &r.statefulset(), "--replicas=3"]);
    r.wait_synced("corp", &three).await;
    r.wait_synced("openldap", &three).await;
    eprintln!("[in-cluster] scaled 1 -> 3: 3/3 synced after {:.1?}", scaled.elapsed());
    assert!(r.kubectl(&["get", "lc", "corp"]).contains("3/3"));

    // A deleted pod comes back (same name, new pod) with its row and answers.
    let old = r.uid(&r.gateway(0)).expect("gateway pod 0 exists");
    r.kubectl(&["delete", "pod", &r.gateway(0), "--wait=true"]);
    r.wait_pods_ready(GATEWAY, 3).await;
    assert_ne!(r.uid(&r.gateway(0)), Some(old), "the StatefulSet made a new pod");
    r.wait_synced("corp", &three).await;
    assert!(r.lookup_in_pod(&r.gateway(0), &alice).is_some());

    // helm upgrade rolls the agents; each new agent serves from its volume before any sync.
    let before: Vec<Option<String>> = three.iter().map(|p| r.uid(p)).collect();
    r.helm(
        "upgrade",
        &[
            "--set",
            "exampleGateway.enabled=true",
            "--set",
            "exampleGateway.replicas=3",
            "--set",
            "agent.logLevel=ldapsync=debug",
        ],
    );
    eventually(SETTLE, "every gateway pod replaced by the upgrade", || async {
        let now: Vec<Option<String>> = three.iter().map(|p| r.uid(p)).collect();
        now.iter().zip(&before).all(|(a, b)| a.is_some() && a != b).then_some(())
    })
    .await;
    r.wait_pods_ready(GATEWAY, 3).await;
    for pod in &three {
        let log = r.kubectl(&["logs", pod, "-c", "ldapsync-agent"]);
        let warm =
            log.lines().find(|l| l.contains("warm start")).unwrap_or_else(|| panic!("{pod}: no warm start:\n{log}"));
        assert!(warm.contains("snapshots=2"), "{pod} did not load both snapshots from its volume: {warm}");
        assert!(r.lookup_in_pod(pod, &alice).is_some(), "{pod} does not answer after the upgrade");
    }
    r.wait_synced("corp", &three).await;

    // Probes pass and no container restarted on its own, over the whole scenario.
    let pods = [r.wait_pods_ready(GATEWAY, 3).await, r.wait_pods_ready(CONTROLLER, 2).await].concat();
    assert_eq!(restarts(&pods), vec![], "containers restarted");

    // Deleting a connection purges it in every pod; the finalizer is released.
    let deleted = Instant::now();
    r.kubectl(&["delete", "lc", "corp", "--wait=true", "--timeout=90s"]);
    eprintln!("[in-cluster] corp deleted and its finalizer released after {:.1?}", deleted.elapsed());
    for pod in &three {
        assert!(r.lookup_in_pod(pod, &alice).is_none(), "{pod} still answers for the deleted connection");
        assert!(r.lookup_in_pod(pod, "u000001@example.test").is_some(), "{pod} lost the other connection");
    }
    let events = r.kubectl(&["get", "events", "--field-selector", "reason=CleanupTimedOut"]);
    assert!(!events.contains("CleanupTimedOut"), "{events}");
    r.kubectl(&["delete", "lc", "openldap", "--wait=true", "--timeout=90s"]);
    let _ = run_tool(&env("LDAPSYNC_TEST_HELM"), &["uninstall", &r.name, "--namespace", &r.ns]);
}

#[tokio::test]
async fn the_other_controller_replica_takes_over_when_the_leader_is_killed() {
    let r = Release::fresh("in-cluster-ha", "ha").await;
    r.helm("install", &["--set", "controller.leaseDuration=15"]);
    let pods = r.wait_pods_ready(CONTROLLER, 2).await;
    let lease = format!("{}-ldapsync-controller", r.name);
    let holder = || async {
        let l = r.json(&["get", "lease", &lease]);
        l["spec"]["holderIdentity"].as_str().filter(|h| !h.is_empty()).map(str::to_owned)
    };
    let leader = eventually(SETTLE, "a leader", holder).await;
    let pod =
        pods.iter().find(|p| p["metadata"]["name"] == leader.as_str()).unwrap_or_else(|| panic!("{leader} is no pod"));
    let container = pod["status"]["containerStatuses"][0]["containerID"].as_str().expect("containerID");
    let id = container.strip_prefix("containerd://").expect("a containerd container");

    // SIGKILL: no goodbye, the Lease is not released; the follower waits it out. The pod object
    // goes at once too, so that the kubelet does not restart the container under the same name
    // (which would simply resume its own Lease).
    let (ok, out) = run_tool(
        "ctr",
        &["--address", &env("LDAPSYNC_TEST_CONTAINERD_SOCKET"), "-n", "k8s.io", "tasks", "kill", "-s", "SIGKILL", id],
    );
    assert!(ok, "ctr kill failed: {out}");
    let killed = Instant::now();
    r.kubectl(&["delete", "pod", &leader, "--grace-period=0", "--force", "--wait=false"]);
    let new = eventually(SETTLE, "another leader", || async { holder().await.filter(|h| *h != leader) }).await;
    let takeover = killed.elapsed();
    eprintln!("[in-cluster] leader {leader} SIGKILLed: {new} leads after {takeover:.1?} (lease 15 s)");
    assert!(takeover < Duration::from_secs(30), "takeover took {takeover:?}");

    // The new leader reconciles: a connection with a missing Secret is judged at once.
    r.apply(
        "apiVersion: ldapsync.io/v1alpha1\nkind: LdapConnection\nmetadata: {name: orphan}\nspec:\n  \
         domain: corp.example.test\n  searchBase: DC=corp,DC=example,DC=test\n  \
         auth: {simple: {bindDN: svc@corp.example.test, passwordSecretRef: {name: missing}}}\n  tls: {mode: LDAPS}\n",
    );
    eventually(SETTLE, "orphan: Accepted=False SecretNotFound", || async {
        r.condition("orphan", "Accepted").filter(|c| c.0 == "False" && c.1 == "SecretNotFound")
    })
    .await;
    r.kubectl(&["delete", "lc", "orphan", "--wait=true", "--timeout=60s"]);
    // The Deployment replaced the killed pod; nothing else restarted.
    let pods = r.wait_pods_ready(CONTROLLER, 2).await;
    assert_eq!(restarts(&pods), vec![], "containers restarted");
    let _ = run_tool(&env("LDAPSYNC_TEST_HELM"), &["uninstall", &r.name, "--namespace", &r.ns]);
}
