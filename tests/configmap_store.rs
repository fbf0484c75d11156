#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout, unreachable_pub)] // test code states its expectations
//! The ConfigMap store on the real apiserver (1.20.2 with the controller-manager): chunks below
//! the object limit, manifest last, stale chunks removed, checksum verified on load, and every
//! ConfigMap garbage-collected when its LdapConnection is deleted.

mod support;

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use ldapsync::api::LdapConnection;
use ldapsync::domain::codec;
use ldapsync::domain::snapshot::{ConnectionRef, DirObject, ObjectKind, Snapshot};
use ldapsync::store::configmap::{CHUNK_BYTES, ConfigMapStore, LABEL_CONNECTION_UID};
use support::{client, install_crds, namespace};

/// A snapshot whose ids are pseudo-random hex, so it compresses poorly and needs several chunks.
fn snapshot(connection: &ConnectionRef, n: u32, seed: u64) -> Snapshot {
    let mut x = seed | 1;
    let objects: Vec<DirObject> = (0..n)
        .map(|i| {
            let mut id = String::new();
            for _ in 0..4 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                id.push_str(&format!("{x:016x}"));
            }
            DirObject {
                kind: ObjectKind::User,
                dn: format!("uid=u{i},dc=example,dc=test"),
                id,
                account_name: Some(format!("u{i}")),
                principal_name: None,
                display_name: None,
                disabled: false,
                primary_address: Some(format!("u{i}@example.test")),
                addresses: vec![format!("u{i}@example.test")],
                sid: None,
                primary_group_sid: None,
            }
        })
        .collect();
    Snapshot {
        connection: connection.clone(),
        domain: "example.test".into(),
        search_base: "dc=example,dc=test".into(),
        taken_at: 0,
        server: "ldap1".into(),
        objects: objects.into_iter().map(std::sync::Arc::new).collect(),
        memberships: Default::default(),
        unresolved_members: 0,
        foreign_members: Vec::new(),
        sync_state: None,
    }
}

/// Creates the LdapConnection `corp` that owns the test's ConfigMaps.
async fn owner(client: &kube::Client, ns: &str) -> ConnectionRef {
    let conns: Api<LdapConnection> = Api::namespaced(client.clone(), ns);
    let conn: LdapConnection = serde_json::from_value(serde_json::json!({
        "apiVersion": "ldapsync.io/v1alpha1", "kind": "LdapConnection",
        "metadata": {"name": "corp"},
        "spec": {"domain": "example.test", "searchBase": "dc=example,dc=test",
                 "auth": {"simple": {"bindDN": "cn=x", "passwordSecretRef": {"name": "pw"}}}}
    }))
    .expect("connection");
    let created = conns.create(&PostParams::default(), &conn).await.expect("create connection");
    ConnectionRef { namespace: ns.to_owned(), name: "corp".into(), uid: created.metadata.uid.clone().expect("uid") }
}

#[tokio::test]
async fn chunked_snapshots_replace_cleanly_and_are_collected_with_their_connection() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "store-configmap").await;
    let connection = owner(&client, &ns).await;
    let store = ConfigMapStore::new(client.clone(), &ns, "gateway-0");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let selector = format!("{LABEL_CONNECTION_UID}={}", connection.uid);

    let first = codec::encode(&snapshot(&connection, 40_000, 1)).expect("encode");
    assert!(first.bytes.len() > 2 * CHUNK_BYTES, "the test snapshot must need 3+ chunks: {}", first.bytes.len());
    let m1 = store.write(&connection, &first).await.expect("write first");
    assert_eq!(m1.chunks.len(), first.bytes.len().div_ceil(CHUNK_BYTES));
    let (loaded, manifest) = store.load(&connection).await.expect("load").expect("present");
    assert_eq!(manifest.hash, first.hash);
    assert_eq!(loaded, codec::decode(&first.bytes).expect("decode"));

    let second = codec::encode(&snapshot(&connection, 30_000, 2)).expect("encode");
    let m2 = store.write(&connection, &second).await.expect("write second");
    let names: Vec<String> = cms
        .list_metadata(&ListParams::default().labels(&selector))
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|m| m.metadata.name)
        .collect();
    assert_eq!(names.len(), m2.chunks.len() + 1, "only the new chunks and the manifest remain: {names:?}");
    assert!(m1.chunks.iter().all(|c| !names.contains(c)), "stale chunks were removed");
    assert_eq!(store.load(&connection).await.expect("load").expect("present").1.hash, second.hash);

    // A damaged chunk is detected by the manifest's hash.
    let victim = &m2.chunks[0];
    let mut cm = cms.get(victim).await.expect("chunk");
    if let Some(part) = cm.binary_data.as_mut().and_then(|d| d.get_mut("snapshot")) {
        part.0[100] ^= 0xff;
    }
    cm.metadata.managed_fields = None;
    cms.replace(victim, &PostParams::default(), &cm).await.expect("damage a chunk");
    let err = store.load(&connection).await.expect_err("damaged");
    assert!(err.to_string().contains("does not match its manifest's hash"), "{err}");

    // Deleting the connection lets the garbage collector remove every chunk and the manifest. The
    // collector learns about a new CRD at its next discovery refresh (every 30 s), hence the wait.
    Api::<LdapConnection>::namespaced(client.clone(), &ns)
        .delete("corp", &DeleteParams::default())
        .await
        .expect("delete connection");
    for _ in 0..450 {
        let left = cms.list_metadata(&ListParams::default().labels(&selector)).await.expect("list").items.len();
        if left == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("ConfigMaps of the deleted connection were not garbage-collected within 90 s");
}

#[tokio::test]
async fn purge_removes_one_pods_snapshot_only() {
    let client = client().await;
    install_crds(&client).await;
    let ns = namespace(&client, "store-purge").await;
    // A real owner: chunks owned by a missing object would be garbage-collected under the test.
    let connection = owner(&client, &ns).await;
    let a = ConfigMapStore::new(client.clone(), &ns, "gateway-0");
    let b = ConfigMapStore::new(client.clone(), &ns, "gateway-1");
    let encoded = codec::encode(&snapshot(&connection, 100, 3)).expect("encode");
    a.write(&connection, &encoded).await.expect("write a");
    b.write(&connection, &encoded).await.expect("write b");
    a.purge(&connection).await.expect("purge a");
    assert!(a.load(&connection).await.expect("load a").is_none());
    assert!(b.load(&connection).await.expect("load b").is_some(), "the other pod's snapshot stays");
}
