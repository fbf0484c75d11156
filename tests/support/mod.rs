//! Finds the real peers started by `scripts/test-env.sh` through environment variables. A missing
//! variable fails the test with the variable's name: integration tests never skip.
#![allow(dead_code)] // each test binary uses a different part of this module

pub mod cluster;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ldapsync::api::TlsMode;
use ldapsync::directory::ldap::{ServerEndpoint, TransportSettings};
use ldapsync::directory::tls;

/// The value of a `LDAPSYNC_TEST_*` variable, or a panic that says what is missing and how to get it.
pub fn env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!(
            "{name} is not set: this integration test needs the real peers. Run `scripts/test.sh`, \
             or `unshare --net --fork -- scripts/test-env.sh run cargo nextest run`."
        ),
    }
}

pub fn read_file(var: &str) -> Vec<u8> {
    let path = env(var);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{var}={path} cannot be read: {e}"))
}

/// The Samba AD DC: its DNS name and LDAP address.
pub fn samba_endpoint(port: u16) -> ServerEndpoint {
    let addr: SocketAddr =
        format!("{}:{port}", env("LDAPSYNC_TEST_AD_ADDR")).parse().expect("LDAPSYNC_TEST_AD_ADDR is an IP");
    ServerEndpoint { host: env("LDAPSYNC_TEST_AD_HOST"), addr }
}

/// The slapd instances, as `(host, addr)` from `LDAPSYNC_TEST_SLAPD_URLS`.
pub fn slapd_endpoints() -> Vec<ServerEndpoint> {
    env("LDAPSYNC_TEST_SLAPD_URLS")
        .split(',')
        .map(|url| {
            let hostport = url.trim().trim_start_matches("ldap://");
            let addr: SocketAddr = hostport.parse().expect("slapd URL is ldap://IP:PORT");
            ServerEndpoint { host: addr.ip().to_string(), addr }
        })
        .collect()
}

pub fn transport(mode: TlsMode, ca_var: Option<&str>) -> TransportSettings {
    let tls = match mode {
        TlsMode::None => None,
        _ => {
            let ca = ca_var.map(read_file);
            Some(tls::client_config(ca.as_deref(), false).expect("TLS configuration builds"))
        }
    };
    TransportSettings {
        mode,
        tls,
        server_name: None,
        connect_timeout: Duration::from_secs(5),
        operation_timeout: Duration::from_secs(20),
    }
}

/// A panic message naming the peer when it cannot be reached.
pub fn unreachable(peer: &str, err: impl std::fmt::Display) -> String {
    format!("{peer} is not reachable ({err}); is it running? (scripts/test-env.sh starts it)")
}

pub fn arc<T>(v: T) -> Arc<T> {
    Arc::new(v)
}

// ---- the real kube-apiserver ----

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, Config, ResourceExt};

pub async fn client() -> Client {
    let path = env("LDAPSYNC_TEST_KUBECONFIG");
    let kubeconfig = Kubeconfig::read_from(&path).unwrap_or_else(|e| panic!("kubeconfig {path}: {e}"));
    let config =
        Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.expect("kubeconfig is usable");
    let client = Client::try_from(config).expect("kube client");
    client.apiserver_version().await.unwrap_or_else(|e| panic!("{}", unreachable("kube-apiserver", e)));
    client
}

/// Drops the finalizers of every LdapConnection left in `namespace` (no controller cleans them up
/// between test runs).
pub async fn release_connections(client: &Client, namespace: &str) {
    let api: Api<ldapsync::api::LdapConnection> = Api::namespaced(client.clone(), namespace);
    // A missing namespace lists as empty; any other failure is the apiserver's and stops the test.
    let list = api
        .list(&Default::default())
        .await
        .unwrap_or_else(|e| panic!("{}", unreachable("kube-apiserver (listing LdapConnections)", e)));
    for c in list.items.iter().filter(|c| !c.finalizers().is_empty()) {
        let patch = Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}}));
        match api.patch(&c.name_any(), &PatchParams::default(), &patch).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {} // gone meanwhile
            Err(e) => panic!("cannot release LdapConnection {namespace}/{}: {e}", c.name_any()),
        }
    }
}

/// Applies the CRDs (server-side apply, idempotent) and waits until both are established.
pub async fn install_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in ldapsync::api::crds() {
        let name = crd.name_any();
        api.patch(&name, &PatchParams::apply("ldapsync-tests").force(), &Patch::Apply(&crd))
            .await
            .unwrap_or_else(|e| panic!("apply CRD {name}: {e}"));
        tokio::time::timeout(
            std::time::Duration::from_secs(30),
            await_condition(api.clone(), &name, conditions::is_crd_established()),
        )
        .await
        .unwrap_or_else(|_| panic!("CRD {name} not established within 30s"))
        .expect("watch CRD");
    }
}

pub async fn namespace(client: &Client, name: &str) -> String {
    let api: Api<Namespace> = Api::all(client.clone());
    release_connections(client, name).await;
    let _ = api.delete(name, &DeleteParams::default()).await;
    // A namespace from an earlier run may still be terminating (its pods stopping on the node).
    for _ in 0..300 {
        // Connections of an earlier run keep the cleanup finalizer when no controller runs.
        release_connections(client, name).await;
        match api
            .create(
                &PostParams::default(),
                &serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).expect("ns"),
            )
            .await
        {
            Ok(_) => return name.to_owned(),
            Err(kube::Error::Api(e)) if e.code == 409 => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await
            }
            Err(e) => panic!("create namespace {name}: {e}"),
        }
    }
    panic!("namespace {name} still terminating after 60s")
}

/// A TCP forwarder standing in for a domain controller's address: stopping it makes the DC
/// unreachable for the agents (connections refused), without touching the shared Samba.
pub struct Forwarder {
    task: tokio::task::JoinHandle<()>,
}

impl Forwarder {
    pub async fn start(port: u16, target: &str) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind forwarder");
        let target = target.to_owned();
        let task = tokio::spawn(async move {
            let mut tasks = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                tasks.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Self { task }
    }

    /// Closes the listener and every forwarded connection.
    pub fn stop(self) {
        self.task.abort();
    }
}

/// An `ldapsync controller` or `ldapsync agent` process of one test namespace, with its HTTP port;
/// killed (by PID) when dropped.
pub struct LdapsyncProcess {
    pub child: std::process::Child,
    /// `/metrics` of the controller; the lookup API (and `/metrics`) of an agent.
    pub metrics_port: u16,
    pub identity: String,
}

pub type ControllerProcess = LdapsyncProcess;

/// A TCP port free right now on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

impl LdapsyncProcess {
    fn spawn(args: &[&str], log_name: &str, port: u16, identity: &str, envs: &[(&str, String)]) -> Self {
        let log = std::fs::File::create(format!("{}/{log_name}.log", env("LDAPSYNC_TEST_STATE"))).expect("log file");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_ldapsync"))
            .args(args)
            .env("KUBECONFIG", env("LDAPSYNC_TEST_KUBECONFIG"))
            .env("LDAPSYNC_LOG", "info")
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
            .stderr(log)
            .spawn()
            .expect("start ldapsync");
        Self { child, metrics_port: port, identity: identity.to_owned() }
    }

    /// Starts a controller watching `namespace` with its Lease there; `extra` adds flags.
    pub fn start(namespace: &str, identity: &str, extra: &[&str]) -> Self {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec!["controller", "--namespace", namespace, "--identity", identity, "--listen", &listen];
        args.extend(["--lease-duration", "5"]);
        args.extend(extra);
        Self::spawn(&args, &format!("controller-{namespace}-{identity}"), port, identity, &[])
    }

    /// Starts the agent of gateway pod `pod` with its cache in `store`, asking `dns` for DNS.
    pub fn agent(namespace: &str, pod: &str, store: &std::path::Path, dns: &str) -> Self {
        Self::agent_with(namespace, pod, store, dns, &[], &[])
    }

    /// [`Self::agent`] with `extra` flags (e.g. the socketmap server's) and environment variables.
    pub fn agent_with(
        namespace: &str,
        pod: &str,
        store: &std::path::Path,
        dns: &str,
        extra: &[&str],
        envs: &[(&str, String)],
    ) -> Self {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let store = store.display().to_string();
        let mut args = vec!["agent", "--namespace", namespace, "--pod", pod, "--store", &store, "--listen", &listen];
        args.extend(extra);
        let mut all = vec![("LDAPSYNC_DNS_SERVER", dns.to_owned())];
        all.extend(envs.iter().cloned());
        Self::spawn(&args, &format!("agent-{namespace}-{pod}"), port, pod, &all)
    }

    /// A GET on this process's HTTP port: the body when the answer is 2xx.
    pub fn get(&self, path: &str) -> Option<String> {
        http_get(self.metrics_port, path)
    }

    /// The `/metrics` text, or an empty string while the server is not up.
    pub fn metrics(&self) -> String {
        http_get(self.metrics_port, "/metrics").unwrap_or_default()
    }

    /// The value of one metric line (`name{labels}`), 0 when absent.
    pub fn metric(&self, series: &str) -> f64 {
        self.metrics()
            .lines()
            .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
            .unwrap_or(0.0)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for LdapsyncProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A plain HTTP/1.0 GET on localhost; the body, when the answer is 2xx.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    head.split_whitespace().nth(1).filter(|code| code.starts_with('2')).map(|_| body.to_owned())
}

/// Polls `probe` every 100 ms until it returns `Some`, or panics after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs a command-line tool (kubectl, helm) against the test cluster: (success, stdout + stderr).
pub fn run_tool(tool: &str, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(tool)
        .args(args)
        .env("KUBECONFIG", env("LDAPSYNC_TEST_KUBECONFIG"))
        .output()
        .unwrap_or_else(|e| panic!("{tool} cannot run: {e}"));
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// Runs `scripts/test-env.sh` with `args` (e.g. `stop kube`) in the tests' network namespace.
pub fn test_env(args: &[&str]) {
    let script = format!("{}/test-env.sh", env("LDAPSYNC_TEST_SCRIPTS"));
    let status = std::process::Command::new("bash").arg(&script).args(args).status().expect("run test-env.sh");
    assert!(status.success(), "test-env.sh {args:?} failed");
}
