//! Kubernetes helpers shared by the controller and agent tests: objects, conditions, rows, events.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::api::events::v1::Event;
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use ldapsync::api::LdapConnection;
use serde_json::{Value, json};

pub const WAIT: Duration = Duration::from_secs(30);

pub fn connection(name: &str, spec: Value) -> LdapConnection {
    let mut full = json!({
        "domain": "corp.example.test",
        "searchBase": "OU=Staff,DC=corp,DC=example,DC=test",
        "auth": {"simple": {"bindDN": "svc-sync@corp.example.test", "passwordSecretRef": {"name": "pw"}}}
    });
    if let (Some(full), Value::Object(patch)) = (full.as_object_mut(), spec) {
        for (k, v) in patch {
            if v.is_null() {
                full.remove(&k);
            } else {
                full.insert(k, v);
            }
        }
    }
    serde_json::from_value(json!({
        "apiVersion": "ldapsync.io/v1alpha1", "kind": "LdapConnection",
        "metadata": {"name": name}, "spec": full
    }))
    .unwrap_or_else(|e| panic!("connection {name}: {e}"))
}

pub async fn create(api: &Api<LdapConnection>, name: &str, spec: Value) -> LdapConnection {
    api.create(&PostParams::default(), &connection(name, spec)).await.unwrap_or_else(|e| panic!("create {name}: {e}"))
}

pub async fn secret(client: &Client, ns: &str, name: &str, data: &[(&str, &[u8])]) {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut s = Secret::default();
    s.metadata.name = Some(name.into());
    s.data = Some(data.iter().map(|(k, v)| ((*k).to_owned(), k8s_openapi::ByteString(v.to_vec()))).collect());
    api.create(&PostParams::default(), &s).await.unwrap_or_else(|e| panic!("create Secret {name}: {e}"));
}

/// A Pod object standing for a gateway pod whose agent runs as a test process: it matches no node,
/// so it stays Pending and the real node never starts it.
pub async fn gateway_pod(client: &Client, ns: &str, name: &str) {
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"ldapsync.io/gateway": "true"}},
        "spec": {"automountServiceAccountToken": false, "nodeSelector": {"ldapsync.io/stand-in": "no-node"},
                 "containers": [{"name": "gateway", "image": "gateway:test"}]}
    }))
    .expect("pod");
    api.create(&PostParams::default(), &pod).await.unwrap_or_else(|e| panic!("create Pod {name}: {e}"));
}

/// (status, reason, message) of a condition.
pub async fn condition(api: &Api<LdapConnection>, name: &str, type_: &str) -> Option<(String, String, String)> {
    let c = api.get_opt(name).await.ok()??;
    let cond = c.status?.conditions.into_iter().find(|c| c.type_ == type_)?;
    Some((cond.status, cond.reason, cond.message))
}

/// Waits until the condition has this status and reason; returns its message.
pub async fn wait_condition(api: &Api<LdapConnection>, name: &str, type_: &str, status: &str, reason: &str) -> String {
    let what = format!("{name}: {type_}={status} ({reason})");
    let mut last = None;
    let found = tokio::time::timeout(WAIT, async {
        loop {
            let now = condition(api, name, type_).await;
            if let Some((s, r, m)) = &now
                && s == status
                && r == reason
            {
                return m.clone();
            }
            last = now;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("timed out waiting for {what}; last seen {last:?}"))
}

/// Writes a pod's row as its agent would: server-side apply with the agent's field manager.
pub async fn write_row(api: &Api<LdapConnection>, name: &str, row: Value) {
    let pod = row["pod"].as_str().expect("row names its pod").to_owned();
    let patch = json!({"apiVersion": "ldapsync.io/v1alpha1", "kind": "LdapConnection", "status": {"nodes": [row]}});
    api.patch_status(name, &PatchParams::apply(&format!("ldapsync-agent/{pod}")).force(), &Patch::Apply(&patch))
        .await
        .unwrap_or_else(|e| panic!("row of {pod}: {e}"));
}

pub fn synced_row(pod: &str, generation: i64, users: i64) -> Value {
    json!({"pod": pod, "phase": "Synced", "observedGeneration": generation,
           "lastSuccessTime": "2026-11-30T08:00:00Z", "server": "dc1.corp.example.test:389",
           "counts": {"users": users, "contacts": 1, "groups": 2, "addresses": users + 3}})
}

pub async fn events_for(client: &Client, ns: &str, name: &str) -> Vec<(String, String)> {
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    let list = api.list(&ListParams::default()).await.expect("list events");
    list.items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect()
}

/// Sets one annotation of a connection (a sync request, an approval).
pub async fn annotate(api: &Api<LdapConnection>, name: &str, key: &str, value: &str) {
    api.patch(name, &PatchParams::default(), &Patch::Merge(json!({"metadata": {"annotations": {key: value}}})))
        .await
        .unwrap_or_else(|e| panic!("annotate {name}: {e}"));
}
