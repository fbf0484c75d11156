//! Finds the real peers started by `scripts/test-env.sh` through environment variables. A missing
//! variable fails the test with the variable's name: integration tests never skip.
#![allow(dead_code)] // each test binary uses a different part of this module

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
    let _ = api.delete(name, &DeleteParams::default()).await;
    // A namespace from an earlier run may still be terminating.
    for _ in 0..100 {
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
    panic!("namespace {name} still terminating after 20s")
}
