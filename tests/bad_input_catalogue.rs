#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout, unreachable_pub)] // test code states its expectations
//! The bad-input catalogue: one table of malformed inputs — resources, referenced Secrets and
//! ConfigMaps, schedules, cache files, and what real servers answer to bad settings — each with
//! the reason a user will read (a condition reason, a row reason, a CLI `[Reason]`). Server rows
//! run against the test environment's slapd, Samba and dnsmasq; a failing sync never replaces the
//! cache (checked for every server row).

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use ldapsync::api::{LdapConnectionSpec, LdapSyncScheduleSpec};
use ldapsync::domain::codec;
use ldapsync::domain::snapshot::{ConnectionRef, Snapshot};
use ldapsync::domain::validation::{ReferencedObjects, validate};
use serde_json::{Value, json};
use support::{env, read_file};

/// One malformed input and how it is fed in.
enum Input {
    /// An LdapConnection spec patch, judged by the controller's validation.
    Spec(Value),
    /// An LdapSyncSchedule spec, judged when a connection references it.
    Schedule(Value),
    /// A damaged cache file.
    File(fn(Vec<u8>) -> Vec<u8>),
    /// A manifest patch synced against the real servers with `ldapsync sync`.
    Server(Value),
}

fn corpus(file: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/corpus/keytab/{file}", env!("CARGO_MANIFEST_DIR"))).expect("corpus keytab")
}

/// Secrets and ConfigMaps of the catalogue's namespace, and its schedule `sched` if given.
fn objects(schedule: Option<LdapSyncScheduleSpec>) -> ReferencedObjects {
    let mut secrets = BTreeMap::new();
    secrets.insert("pw", BTreeMap::from([("password", b"a-password".to_vec())]));
    secrets.insert("blank", BTreeMap::from([("password", b"\r\n".to_vec())]));
    secrets.insert("kt", BTreeMap::from([("keytab", corpus("one-principal.keytab"))]));
    secrets.insert("kt-two", BTreeMap::from([("keytab", corpus("two-principals.keytab"))]));
    secrets.insert("kt-cut", BTreeMap::from([("keytab", corpus("truncated.keytab"))]));
    secrets.insert("kt-magic", BTreeMap::from([("keytab", corpus("bad-magic.keytab"))]));
    secrets.insert("kt-empty", BTreeMap::from([("keytab", Vec::new())]));
    let mut config_maps = BTreeMap::new();
    config_maps.insert("ca", BTreeMap::from([("ca.crt", read_file("LDAPSYNC_TEST_CA_FILE"))]));
    config_maps.insert("not-pem", BTreeMap::from([("ca.crt", b"just text".to_vec())]));
    config_maps.insert(
        "key-only",
        BTreeMap::from([("ca.crt", b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".to_vec())]),
    );
    let owned = |map: BTreeMap<&str, BTreeMap<&str, Vec<u8>>>| {
        map.into_iter()
            .map(|(name, keys)| (name.to_owned(), keys.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()))
            .collect()
    };
    ReferencedObjects {
        secrets: owned(secrets),
        config_maps: owned(config_maps),
        schedules: schedule.map(|s| ("sched".to_owned(), s)).into_iter().collect(),
    }
}

fn merged(base: Value, patch: &Value) -> Value {
    let mut out = base;
    if let (Some(o), Some(p)) = (out.as_object_mut(), patch.as_object()) {
        for (k, v) in p {
            if v.is_null() {
                o.remove(k);
            } else {
                o.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

fn base_spec() -> Value {
    json!({"domain": "corp.example.test", "searchBase": "OU=Staff,DC=corp,DC=example,DC=test",
           "auth": {"simple": {"bindDN": "svc@corp.example.test", "passwordSecretRef": {"name": "pw"}}}})
}

/// slapd over StartTLS, the starting point of the server rows.
fn server_spec() -> Value {
    json!({"domain": "example.test", "searchBase": env("LDAPSYNC_TEST_SLAPD_BASE"), "directoryType": "Generic",
           "servers": {"static": ["127.0.0.2:389"]},
           "tls": {"mode": "StartTLS", "ca": {"secretRef": {"name": "ca"}}},
           "auth": {"simple": {"bindDN": env("LDAPSYNC_TEST_SLAPD_BIND_DN"), "passwordSecretRef": {"name": "pw"}}},
           "timeouts": {"connect": "2s", "operation": "5s"}})
}

fn good_snapshot() -> Vec<u8> {
    let snapshot = Snapshot {
        connection: ConnectionRef { namespace: "ns".into(), name: "c".into(), uid: "u".into() },
        domain: "example.test".into(),
        search_base: "dc=example,dc=test".into(),
        taken_at: 0,
        server: "s".into(),
        objects: vec![],
        memberships: Default::default(),
        unresolved_members: 0,
        foreign_members: Vec::new(),
        sync_state: None,
    };
    codec::encode(&snapshot).expect("encode").bytes
}

fn catalogue() -> Vec<(&'static str, Input, &'static str)> {
    use Input::*;
    vec![
        // Resources.
        ("domain with an empty label", Spec(json!({"domain": "corp..example.test"})), "InvalidDomain"),
        ("domain label starting with '-'", Spec(json!({"domain": "-corp.example.test"})), "InvalidDomain"),
        ("search base with an empty RDN", Spec(json!({"searchBase": "OU=Staff,,DC=corp"})), "InvalidSearchBase"),
        ("search base with a bad escape", Spec(json!({"searchBase": "OU=St\\zzaff,DC=corp"})), "InvalidSearchBase"),
        ("search base without '='", Spec(json!({"searchBase": "Staff"})), "InvalidSearchBase"),
        ("search base with odd hex", Spec(json!({"searchBase": "CN=#0,DC=corp"})), "InvalidSearchBase"),
        ("no authentication", Spec(json!({"auth": {}})), "InvalidSpec"),
        ("an object class that is a filter", Spec(json!({"mailObjectClasses": ["(objectClass=*)"]})), "InvalidSpec"),
        (
            "two authentications",
            Spec(
                json!({"auth": {"simple": {"bindDN": "svc@corp", "passwordSecretRef": {"name": "pw"}}, "kerberos": {"keytabSecretRef": {"name": "kt"}}}}),
            ),
            "InvalidSpec",
        ),
        (
            "bind DN neither DN nor UPN",
            Spec(json!({"auth": {"simple": {"bindDN": "svc", "passwordSecretRef": {"name": "pw"}}}})),
            "InvalidSpec",
        ),
        ("password in clear text", Spec(json!({"tls": {"mode": "None"}})), "InvalidSpec"),
        (
            "CA from two sources",
            Spec(json!({"tls": {"ca": {"secretRef": {"name": "pw"}, "configMapRef": {"name": "ca"}}}})),
            "InvalidTls",
        ),
        (
            "CA while skipping verification",
            Spec(json!({"tls": {"ca": {"configMapRef": {"name": "ca"}}, "insecureSkipVerify": true}})),
            "InvalidTls",
        ),
        ("server name with a space", Spec(json!({"tls": {"serverName": "dc 1.corp"}})), "InvalidTls"),
        ("static server with a bad port", Spec(json!({"servers": {"static": ["dc1:ldap"]}})), "InvalidSpec"),
        ("zero timeout", Spec(json!({"timeouts": {"operation": "0s"}})), "InvalidSpec"),
        ("timeout that is not a duration", Spec(json!({"timeouts": {"sync": "soon"}})), "InvalidSpec"),
        ("email attribute with a space", Spec(json!({"emailAttributes": ["mail", "proxy addresses"]})), "InvalidSpec"),
        ("unbalanced filter", Spec(json!({"filters": {"users": "(department=Sales"}})), "InvalidFilter"),
        (
            "disabled accounts excluded from a generic directory",
            Spec(json!({"directoryType": "Generic", "disabledAccounts": "Exclude"})),
            "InvalidSpec",
        ),
        // Referenced Secrets and ConfigMaps.
        (
            "password Secret missing",
            Spec(json!({"auth": {"simple": {"bindDN": "svc@corp", "passwordSecretRef": {"name": "nope"}}}})),
            "SecretNotFound",
        ),
        (
            "password key missing",
            Spec(
                json!({"auth": {"simple": {"bindDN": "svc@corp", "passwordSecretRef": {"name": "pw", "key": "pass"}}}}),
            ),
            "SecretKeyMissing",
        ),
        (
            "blank password",
            Spec(json!({"auth": {"simple": {"bindDN": "svc@corp", "passwordSecretRef": {"name": "blank"}}}})),
            "SecretInvalid",
        ),
        (
            "keytab with two principals",
            Spec(json!({"auth": {"kerberos": {"keytabSecretRef": {"name": "kt-two"}}}})),
            "KeytabInvalid",
        ),
        (
            "truncated keytab",
            Spec(json!({"auth": {"kerberos": {"keytabSecretRef": {"name": "kt-cut"}}}})),
            "KeytabInvalid",
        ),
        (
            "keytab with a wrong version",
            Spec(json!({"auth": {"kerberos": {"keytabSecretRef": {"name": "kt-magic"}}}})),
            "KeytabInvalid",
        ),
        (
            "empty keytab",
            Spec(json!({"auth": {"kerberos": {"keytabSecretRef": {"name": "kt-empty"}}}})),
            "KeytabInvalid",
        ),
        (
            "keytab without the requested principal",
            Spec(json!({"auth": {"kerberos": {"keytabSecretRef": {"name": "kt"}, "principal": "other@CORP"}}})),
            "KeytabInvalid",
        ),
        ("CA that is not PEM", Spec(json!({"tls": {"ca": {"configMapRef": {"name": "not-pem"}}}})), "InvalidCA"),
        (
            "CA holding a key, not a certificate",
            Spec(json!({"tls": {"ca": {"configMapRef": {"name": "key-only"}}}})),
            "InvalidCA",
        ),
        ("CA ConfigMap missing", Spec(json!({"tls": {"ca": {"configMapRef": {"name": "gone"}}}})), "ConfigMapNotFound"),
        ("schedule missing", Spec(json!({"scheduleRef": {"name": "other"}})), "ScheduleNotFound"),
        // Schedules.
        (
            "unknown time zone",
            Schedule(json!({"daily": {"at": "02:00"}, "timeZone": "Mars/Olympus_Mons"})),
            "ScheduleInvalid",
        ),
        ("cron with four fields", Schedule(json!({"cron": "0 2 * *"})), "ScheduleInvalid"),
        ("cron that never matches", Schedule(json!({"cron": "0 0 31 2 *"})), "ScheduleInvalid"),
        ("two schedule kinds", Schedule(json!({"daily": {"at": "02:00"}, "manual": {}})), "ScheduleInvalid"),
        ("interval below a minute", Schedule(json!({"interval": {"every": "30s"}})), "ScheduleInvalid"),
        ("once at no time", Schedule(json!({"once": {"at": "tomorrow evening"}})), "ScheduleInvalid"),
        // Cache files.
        (
            "cache file of another program",
            File(|_| b"PK\x03\x04 not a snapshot at all, a zip".to_vec()),
            "NotASnapshot",
        ),
        ("cache file cut short", File(|b| b[..b.len() - 5].to_vec()), "SnapshotTruncated"),
        (
            "cache file with a flipped byte",
            File(|mut b| {
                let last = b.len() - 1;
                b[last] ^= 0x40;
                b
            }),
            "SnapshotChecksumMismatch",
        ),
        (
            "cache file from a future version",
            File(|mut b| {
                b[9] = 9;
                b
            }),
            "UnsupportedSnapshotVersion",
        ),
        (
            "cache file with unknown flags",
            File(|mut b| {
                b[11] = 1;
                b
            }),
            "UnsupportedSnapshotFlags",
        ),
        // What real servers answer to bad settings.
        (
            "wrong password",
            Server(
                json!({"auth": {"simple": {"bindDN": env("LDAPSYNC_TEST_SLAPD_BIND_DN"), "passwordSecretRef": {"name": "wrong"}}}}),
            ),
            "InvalidCredentials",
        ),
        (
            "bind DN that does not exist",
            Server(
                json!({"auth": {"simple": {"bindDN": "cn=nobody,dc=example,dc=test", "passwordSecretRef": {"name": "pw"}}}}),
            ),
            "InvalidCredentials",
        ),
        (
            "CA that did not sign the server",
            Server(json!({"tls": {"mode": "StartTLS", "ca": {"secretRef": {"name": "other-ca"}}}})),
            "TlsHandshakeFailed",
        ),
        (
            "LDAPS against the plain LDAP port",
            Server(json!({"tls": {"mode": "LDAPS", "ca": {"secretRef": {"name": "ca"}}}})),
            "TlsHandshakeFailed",
        ),
        (
            "search base that does not exist",
            Server(json!({"searchBase": "ou=nowhere,dc=example,dc=test"})),
            "SearchBaseNotFound",
        ),
        ("no DC listening", Server(json!({"servers": {"static": ["127.0.0.4:389"]}})), "NoDomainControllerReachable"),
        (
            "domain without SRV records",
            Server(json!({"domain": "nosrv.example.test", "servers": {"srv": {}}})),
            "DnsLookupFailed",
        ),
        ("filter the server cannot parse", Server(json!({"filters": {"users": "(uid=*)(cn=x"}})), "InvalidFilter"),
    ]
}

fn write_secret(dir: &Path, name: &str, key: &str, value: &[u8]) {
    let p = dir.join(name);
    std::fs::create_dir_all(&p).expect("secret dir");
    std::fs::write(p.join(key), value).expect("secret file");
}

#[tokio::test]
async fn every_malformed_input_gets_its_reason() {
    let rows = catalogue();
    assert!(rows.len() >= 30, "the catalogue has {} rows", rows.len());
    let mut names = std::collections::BTreeSet::new();
    let tmp = tempfile::tempdir().expect("tmp");
    let secrets = tmp.path().join("secrets");
    write_secret(&secrets, "pw", "password", env("LDAPSYNC_TEST_SLAPD_PASSWORD").as_bytes());
    write_secret(&secrets, "wrong", "password", b"not-the-password");
    write_secret(&secrets, "ca", "ca.crt", &read_file("LDAPSYNC_TEST_CA_FILE"));
    write_secret(&secrets, "other-ca", "ca.crt", &read_file("LDAPSYNC_TEST_OTHER_CA_FILE"));
    // A cache the server rows must leave alone.
    let store = tmp.path().join("store");
    let good = merged(server_spec(), &json!({}));
    let manifest = |spec: &Value, file: &str| {
        let doc = json!({"apiVersion": "ldapsync.io/v1alpha1", "kind": "LdapConnection",
                         "metadata": {"name": "catalogue", "namespace": "ns", "uid": "catalogue-uid"}, "spec": spec});
        let path = tmp.path().join(file);
        std::fs::write(&path, serde_yaml::to_string(&doc).expect("yaml")).expect("manifest");
        path
    };
    ldapsync::cli::sync(&manifest(&good, "good.yaml"), Some(&secrets), &store, Some(&env("LDAPSYNC_TEST_DNS")), None)
        .await
        .unwrap_or_else(|e| panic!("the baseline sync must work: {e}"));
    let cached = std::fs::read(store.join("catalogue-uid.snap")).expect("cached snapshot");

    let mut failures = Vec::new();
    for (name, input, expected) in rows {
        assert!(names.insert(name), "duplicate row {name}");
        let got: String = match input {
            Input::Spec(patch) => {
                let spec: LdapConnectionSpec = match serde_json::from_value(merged(base_spec(), &patch)) {
                    Ok(s) => s,
                    Err(e) => panic!("{name}: the patch does not even parse: {e}"),
                };
                match validate(&spec, &objects(None)) {
                    Ok(_) => "accepted".into(),
                    Err(r) => {
                        assert!(r.to_string().starts_with("spec."), "{name}: the message must name the field: {r}");
                        r.reason.into()
                    }
                }
            }
            Input::Schedule(schedule) => {
                let schedule: LdapSyncScheduleSpec =
                    serde_json::from_value(merged(json!({"timeZone": "UTC", "jitter": "1m"}), &schedule))
                        .unwrap_or_else(|e| panic!("{name}: {e}"));
                let spec: LdapConnectionSpec =
                    serde_json::from_value(merged(base_spec(), &json!({"scheduleRef": {"name": "sched"}})))
                        .expect("spec");
                match validate(&spec, &objects(Some(schedule))) {
                    Ok(_) => "accepted".into(),
                    Err(r) => r.reason.into(),
                }
            }
            Input::File(damage) => match codec::decode(&damage(good_snapshot())) {
                Ok(_) => "decoded".into(),
                Err(e) => e.reason().into(),
            },
            Input::Server(patch) => {
                let path = manifest(&merged(server_spec(), &patch), "bad.yaml");
                let result =
                    ldapsync::cli::sync(&path, Some(&secrets), &store, Some(&env("LDAPSYNC_TEST_DNS")), None).await;
                let after = std::fs::read(store.join("catalogue-uid.snap")).expect("cache still there");
                assert!(after == cached, "{name}: a failed sync replaced the cache");
                match result {
                    Ok(_) => "synced".into(),
                    Err(e) => e.reason().into(),
                }
            }
        };
        if got != expected {
            failures.push(format!("{name}: expected {expected}, got {got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
