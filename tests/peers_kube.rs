#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout, unreachable_pub)] // test code states its expectations
//! Smoke tests against the real kube-apiserver (1.20.2): the CRDs install, their schema defaults
//! and validates, status rows of different writers merge, and `kubectl explain` shows the docs.

mod support;

use std::process::Command;

use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use ldapsync::api::{LdapConnection, NodePhase, TlsMode};
use serde_json::json;
use support::{client, env, install_crds, namespace};

fn connection(name: &str) -> LdapConnection {
    serde_json::from_value(json!({
        "apiVersion": "ldapsync.io/v1alpha1",
        "kind": "LdapConnection",
        "metadata": {"name": name},
        "spec": {
            "domain": "corp.example.test",
            "searchBase": "OU=Staff,DC=corp,DC=example,DC=test",
            "auth": {"kerberos": {"keytabSecretRef": {"name": "sync-keytab"}}}
        }
    }))
    .expect("valid LdapConnection")
}

#[tokio::test]
async fn crds_install_and_the_apiserver_fills_documented_defaults() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "smoke-defaults").await;
    let api: Api<LdapConnection> = Api::namespaced(client.clone(), &ns);
    // Send only the required fields, as `kubectl apply` of a minimal manifest would.
    let minimal = json!({
        "apiVersion": "ldapsync.io/v1alpha1", "kind": "LdapConnection",
        "metadata": {"name": "corp"},
        "spec": {"domain": "corp.example.test", "searchBase": "DC=corp,DC=example,DC=test",
                 "auth": {"simple": {"bindDN": "svc@corp.example.test", "passwordSecretRef": {"name": "pw"}}}}
    });
    api.patch("corp", &PatchParams::apply("ldapsync-tests"), &Patch::Apply(&minimal)).await.expect("create");
    let got = api.get("corp").await.expect("read back");
    assert_eq!(got.spec.page_size, 1000);
    assert_eq!(got.spec.email_attributes, ["mail", "proxyAddresses"]);
    assert_eq!(got.spec.timeouts.operation, "20s");
    assert_eq!(got.spec.tls.mode, TlsMode::StartTls);
    assert_eq!(got.spec.deletion_safety.max_deleted_objects, 500);
}

#[tokio::test]
async fn the_schema_rejects_malformed_fields_naming_them() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "smoke-invalid").await;
    // Raw objects: the typed client could not even express some of these values.
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ApiResource::erase::<LdapConnection>(&()));
    let cases = [
        ("domain", json!({"domain": "not a domain!"}), "spec.domain"),
        ("pageSize", json!({"pageSize": 0}), "spec.pageSize"),
        ("tls.mode", json!({"tls": {"mode": "SSLv3"}}), "spec.tls.mode"),
        ("timeouts", json!({"timeouts": {"operation": "soon"}}), "spec.timeouts.operation"),
    ];
    for (field, overlay, path) in cases {
        let mut obj = serde_json::to_value(connection("bad")).expect("json");
        for (k, v) in overlay.as_object().expect("object") {
            obj["spec"][k] = v.clone();
        }
        let err = api.create(&PostParams::default(), &serde_json::from_value(obj).expect("dynamic object")).await;
        match err {
            Err(kube::Error::Api(e)) => {
                assert_eq!(e.code, 422, "{field}: {e:?}");
                assert!(e.message.contains(path), "{field}: message should name {path}: {}", e.message);
            }
            other => panic!("{field}: expected a 422 from the apiserver, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn status_rows_of_different_pods_merge_by_server_side_apply() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "smoke-status").await;
    let api: Api<LdapConnection> = Api::namespaced(client.clone(), &ns);
    api.create(&PostParams::default(), &connection("corp")).await.expect("create connection");
    for pod in ["gateway-0", "gateway-1"] {
        let row = json!({
            "apiVersion": "ldapsync.io/v1alpha1", "kind": "LdapConnection",
            "status": {"nodes": [{"pod": pod, "phase": "Synced", "server": "dc1.corp.example.test:389",
                                   "counts": {"users": 5, "contacts": 2, "groups": 3, "addresses": 9}}]}
        });
        api.patch_status("corp", &PatchParams::apply(&format!("ldapsync-agent/{pod}")), &Patch::Apply(&row))
            .await
            .unwrap_or_else(|e| panic!("status apply for {pod}: {e}"));
    }
    // gateway-0 updates its own row; gateway-1's row must survive.
    let update = json!({
        "apiVersion": "ldapsync.io/v1alpha1", "kind": "LdapConnection",
        "status": {"nodes": [{"pod": "gateway-0", "phase": "Stale", "reason": "NoDomainControllerReachable"}]}
    });
    api.patch_status("corp", &PatchParams::apply("ldapsync-agent/gateway-0"), &Patch::Apply(&update))
        .await
        .expect("update row");
    let status = api.get_status("corp").await.expect("read status").status.expect("status present");
    let rows: Vec<(&str, Option<NodePhase>)> = status.nodes.iter().map(|n| (n.pod.as_str(), n.phase)).collect();
    assert_eq!(rows, [("gateway-0", Some(NodePhase::Stale)), ("gateway-1", Some(NodePhase::Synced))]);
    assert_eq!(status.nodes[0].counts, None, "fields gateway-0 no longer applies are removed");
    assert_eq!(status.nodes[1].counts.as_ref().map(|c| c.users), Some(5));
}

#[tokio::test]
async fn kubectl_explain_prints_the_field_documentation() {
    let client = client().await;
    install_crds(&client).await;
    let kubectl = env("LDAPSYNC_TEST_KUBECTL");
    // Discovery can lag behind the Established condition by a moment.
    let mut last = String::new();
    for _ in 0..50 {
        let out = Command::new(&kubectl)
            .args(["--kubeconfig", &env("LDAPSYNC_TEST_KUBECONFIG"), "explain", "ldapconnection.spec.searchBase"])
            .output()
            .unwrap_or_else(|e| panic!("run {kubectl}: {e}"));
        last = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        if out.status.success() {
            assert!(last.contains("Distinguished name of the subtree to synchronise"), "{last}");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    panic!("kubectl explain failed: {last}");
}
