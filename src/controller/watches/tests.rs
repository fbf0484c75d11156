use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher::Event;
use serde_json::json;

use super::*;

fn connection(name: &str, spec: serde_json::Value) -> LdapConnection {
    let mut doc = json!({
        "apiVersion": "ldapsync.io/v1alpha1", "kind": "LdapConnection",
        "metadata": {"name": name, "namespace": "mail", "uid": format!("uid-{name}")},
        "spec": {"domain": "corp.example.test", "searchBase": "DC=corp,DC=example,DC=test",
                 "tls": {"mode": "StartTLS"},
                 "auth": {"simple": {"bindDN": "svc@corp.example.test", "passwordSecretRef": {"name": "pw"}}}}
    });
    if let (Some(base), Some(extra)) = (doc["spec"].as_object_mut(), spec.as_object()) {
        base.extend(extra.clone());
    }
    serde_json::from_value(doc).expect("connection")
}

fn store(connections: Vec<LdapConnection>) -> Store<LdapConnection> {
    let mut writer = Writer::<LdapConnection>::default();
    for c in connections {
        writer.apply_watcher_event(&Event::Apply(c));
    }
    writer.as_reader()
}

fn names(refs: Vec<ObjectRef<LdapConnection>>) -> Vec<String> {
    let mut names: Vec<String> = refs.into_iter().map(|r| r.name).collect();
    names.sort();
    names
}

fn meta<K>(name: &str, namespace: &str) -> PartialObjectMeta<K> {
    let metadata =
        kube::api::ObjectMeta { name: Some(name.into()), namespace: Some(namespace.into()), ..Default::default() };
    PartialObjectMeta { types: None, metadata, _phantom: std::marker::PhantomData }
}

#[test]
fn a_secret_wakes_the_connections_that_reference_it_in_its_namespace() {
    let s = store(vec![
        connection("simple", json!({})),
        connection("kerberos", json!({"auth": {"kerberos": {"keytabSecretRef": {"name": "kt"}}}})),
        connection("ca", json!({"tls": {"mode": "StartTLS", "ca": {"secretRef": {"name": "pw"}}}})),
    ]);
    assert_eq!(names(on_secret(&s, &meta::<Secret>("pw", "mail"))), ["ca", "simple"]);
    assert_eq!(names(on_secret(&s, &meta::<Secret>("kt", "mail"))), ["kerberos"]);
    assert!(on_secret(&s, &meta::<Secret>("pw", "other")).is_empty(), "another namespace's Secret");
}

#[test]
fn a_config_map_wakes_who_references_it_and_who_owns_it() {
    let s =
        store(vec![connection("ca", json!({"tls": {"mode": "StartTLS", "ca": {"configMapRef": {"name": "bundle"}}}}))]);
    assert_eq!(names(on_config_map(&s, &meta::<ConfigMap>("bundle", "mail"))), ["ca"]);
    let mut chunk = meta::<ConfigMap>("snapshot-gw-0-1", "mail");
    chunk.metadata.owner_references = Some(vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
        api_version: "ldapsync.io/v1alpha1".into(),
        kind: "LdapConnection".into(),
        name: "owner".into(),
        uid: "uid-owner".into(),
        ..Default::default()
    }]);
    let woken = on_config_map(&s, &chunk);
    assert_eq!(woken, [ObjectRef::new("owner").within("mail")]);
}

#[test]
fn a_schedule_wakes_the_connections_that_name_it() {
    let s =
        store(vec![connection("nightly", json!({"scheduleRef": {"name": "night"}})), connection("default", json!({}))]);
    let mut schedule: LdapSyncSchedule =
        serde_json::from_value(json!({"apiVersion": "ldapsync.io/v1alpha1", "kind": "LdapSyncSchedule",
            "metadata": {"name": "night", "namespace": "mail"}, "spec": {"daily": {"at": "02:00"}}}))
        .expect("schedule");
    assert_eq!(names(on_schedule(&s, &schedule)), ["nightly"]);
    schedule.metadata.name = Some("other".into());
    assert!(on_schedule(&s, &schedule).is_empty());
}

#[test]
fn a_pod_wakes_every_connection_of_its_namespace() {
    let s = store(vec![connection("a", json!({})), connection("b", json!({"domain": "other.test"}))]);
    assert_eq!(names(on_pod(&s, &meta::<Pod>("gw-0", "mail"))), ["a", "b"]);
    assert!(on_pod(&s, &meta::<Pod>("gw-0", "elsewhere")).is_empty());
}

#[test]
fn a_peer_wakes_its_domain_and_every_conflict_loser() {
    let mut loser = connection("loser", json!({"domain": "other.test"}));
    loser.status = Some(
        serde_json::from_value(
            json!({"conditions": [{"type": "Accepted", "status": "False", "reason": "SearchBaseConflict",
            "message": "taken", "lastTransitionTime": "2026-12-01T00:00:00Z"}]}),
        )
        .expect("status"),
    );
    let s = store(vec![
        connection("winner", json!({})),
        connection("same-domain", json!({"domain": "CORP.example.test."})),
        connection("unrelated", json!({"domain": "other.test"})),
        loser,
    ]);
    let changed = connection("winner", json!({}));
    assert_eq!(names(on_peer(&s, &changed)), ["loser", "same-domain"], "never itself, never an unrelated domain");
}
