use std::collections::BTreeMap;

use super::*;

/// A keytab with one entry per principal name given (version 0x0502, one aes key each).
fn keytab(principals: &[&str]) -> Vec<u8> {
    let mut out = vec![0x05, 0x02];
    for p in principals {
        let (name, realm) = p.split_once('@').expect("principal@REALM");
        let mut rec = Vec::new();
        rec.extend_from_slice(&1u16.to_be_bytes());
        rec.extend_from_slice(&(realm.len() as u16).to_be_bytes());
        rec.extend_from_slice(realm.as_bytes());
        rec.extend_from_slice(&(name.len() as u16).to_be_bytes());
        rec.extend_from_slice(name.as_bytes());
        rec.extend_from_slice(&1u32.to_be_bytes()); // name type
        rec.extend_from_slice(&0u32.to_be_bytes()); // timestamp
        rec.push(1); // kvno
        rec.extend_from_slice(&18u16.to_be_bytes());
        rec.extend_from_slice(&32u16.to_be_bytes());
        rec.extend_from_slice(&[7u8; 32]);
        out.extend_from_slice(&(rec.len() as i32).to_be_bytes());
        out.extend_from_slice(&rec);
    }
    out
}

const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ0eC0b3ZR7vYd3c9ZPzjzF3VjN0wCgYIKoZIzj0EAwIw\n-----END CERTIFICATE-----\n";

fn objects() -> ReferencedObjects {
    let mut o = ReferencedObjects::default();
    o.secrets.insert("pw".into(), BTreeMap::from([("password".to_owned(), b"s3cret\n".to_vec())]));
    o.secrets.insert("empty-pw".into(), BTreeMap::from([("password".to_owned(), b"\n".to_vec())]));
    o.secrets.insert("kt".into(), BTreeMap::from([("keytab".to_owned(), keytab(&["svc-sync@CORP.EXAMPLE.TEST"]))]));
    o.secrets.insert(
        "kt2".into(),
        BTreeMap::from([("keytab".to_owned(), keytab(&["svc-sync@CORP.EXAMPLE.TEST", "svc-other@CORP.EXAMPLE.TEST"]))]),
    );
    o.config_maps.insert("ca".into(), BTreeMap::from([("ca.crt".to_owned(), CA.as_bytes().to_vec())]));
    o.config_maps.insert("not-ca".into(), BTreeMap::from([("ca.crt".to_owned(), b"hello".to_vec())]));
    o.schedules.insert(
        "nightly".into(),
        serde_json::from_value(serde_json::json!({"daily": {"at": "02:00"}})).expect("schedule"),
    );
    o.schedules
        .insert("broken".into(), serde_json::from_value(serde_json::json!({"cron": "61 * * * *"})).expect("schedule"));
    o
}

fn spec(patch: serde_json::Value) -> LdapConnectionSpec {
    let mut base = serde_json::json!({
        "domain": "corp.example.test",
        "searchBase": "OU=Staff,DC=corp,DC=example,DC=test",
        "auth": {"simple": {"bindDN": "svc-sync@corp.example.test", "passwordSecretRef": {"name": "pw"}}}
    });
    merge(&mut base, patch);
    serde_json::from_value(base).expect("spec parses")
}

fn merge(base: &mut serde_json::Value, patch: serde_json::Value) {
    match (base, patch) {
        (serde_json::Value::Object(b), serde_json::Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    b.remove(&k);
                } else {
                    merge(b.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
        }
        (b, p) => *b = p,
    }
}

#[test]
fn a_good_spec_is_accepted_with_its_principal_and_schedule() {
    let accepted = validate(&spec(serde_json::json!({"domain": "Corp.Example.Test."})), &objects()).expect("valid");
    assert_eq!(accepted.domain, "corp.example.test");
    assert_eq!(accepted.kerberos_principal, None);
    let kerberos = spec(serde_json::json!({
        "auth": {"simple": null, "kerberos": {"keytabSecretRef": {"name": "kt"}}},
        "tls": {"ca": {"configMapRef": {"name": "ca"}}},
        "scheduleRef": {"name": "nightly"}
    }));
    let accepted = validate(&kerberos, &objects()).expect("valid");
    assert_eq!(accepted.kerberos_principal.as_deref(), Some("svc-sync@CORP.EXAMPLE.TEST"));
    assert!(matches!(accepted.schedule.rule, crate::domain::schedule::Rule::Daily(_)));
}

#[test]
fn invalid_specs_get_a_reason_and_the_field() {
    use serde_json::json;
    let cases = [
        (json!({"domain": "corp..test"}), "InvalidDomain", "spec.domain"),
        (json!({"domain": "-corp.test"}), "InvalidDomain", "spec.domain"),
        (json!({"searchBase": "OU=Staff,,DC=corp"}), "InvalidSearchBase", "spec.searchBase"),
        (json!({"searchBase": "OU=Staff\\zz,DC=corp"}), "InvalidSearchBase", "spec.searchBase"),
        (json!({"searchBase": "Staff"}), "InvalidSearchBase", "spec.searchBase"),
        (json!({"auth": {"simple": null}}), "InvalidSpec", "spec.auth"),
        (json!({"auth": {"kerberos": {"keytabSecretRef": {"name": "kt"}}}}), "InvalidSpec", "spec.auth"),
        (json!({"auth": {"simple": {"bindDN": "svc-sync"}}}), "InvalidSpec", "spec.auth.simple.bindDN"),
        (json!({"tls": {"mode": "None"}}), "InvalidSpec", "spec.tls.mode"),
        (
            json!({"auth": {"simple": null, "kerberos": {"keytabSecretRef": {"name": "kt"}}}, "tls": {"mode": "None", "insecureSkipVerify": true}}),
            "InvalidTls",
            "spec.tls.insecureSkipVerify",
        ),
        (json!({"tls": {"ca": {}}}), "InvalidTls", "spec.tls.ca"),
        (
            json!({"tls": {"ca": {"secretRef": {"name": "a"}, "configMapRef": {"name": "b"}}}}),
            "InvalidTls",
            "spec.tls.ca",
        ),
        (
            json!({"tls": {"ca": {"configMapRef": {"name": "ca"}}, "insecureSkipVerify": true}}),
            "InvalidTls",
            "spec.tls.insecureSkipVerify",
        ),
        (json!({"tls": {"serverName": "dc 1"}}), "InvalidTls", "spec.tls.serverName"),
        (json!({"servers": {"static": ["dc1:x"]}}), "InvalidSpec", "spec.servers.static[0]"),
        (json!({"servers": {"srv": {}, "static": ["dc1"]}}), "InvalidSpec", "spec.servers"),
        (json!({"timeouts": {"connect": "0s"}}), "InvalidSpec", "spec.timeouts.connect"),
        (json!({"timeouts": {"sync": "forever"}}), "InvalidSpec", "spec.timeouts.sync"),
        (json!({"incremental": {"fullSyncInterval": "daily"}}), "InvalidSpec", "spec.incremental.fullSyncInterval"),
        (json!({"emailAttributes": ["mail", "proxy addresses"]}), "InvalidSpec", "spec.emailAttributes[1]"),
        (json!({"mailObjectClasses": ["publicFolder", "(objectClass=*)"]}), "InvalidSpec", "spec.mailObjectClasses[1]"),
        (json!({"filters": {"groups": "(cn=a"}}), "InvalidFilter", "spec.filters.groups"),
        (
            json!({"auth": {"simple": {"passwordSecretRef": {"name": "nope"}}}}),
            "SecretNotFound",
            "spec.auth.simple.passwordSecretRef",
        ),
        (
            json!({"auth": {"simple": {"passwordSecretRef": {"name": "pw", "key": "pass"}}}}),
            "SecretKeyMissing",
            "spec.auth.simple.passwordSecretRef",
        ),
        (
            json!({"auth": {"simple": {"passwordSecretRef": {"name": "empty-pw"}}}}),
            "SecretInvalid",
            "spec.auth.simple.passwordSecretRef",
        ),
        (
            json!({"auth": {"simple": null, "kerberos": {"keytabSecretRef": {"name": "kt2"}}}}),
            "KeytabInvalid",
            "spec.auth.kerberos.keytabSecretRef",
        ),
        (
            json!({"auth": {"simple": null, "kerberos": {"keytabSecretRef": {"name": "pw", "key": "password"}}}}),
            "KeytabInvalid",
            "spec.auth.kerberos.keytabSecretRef",
        ),
        (
            json!({"auth": {"simple": null, "kerberos": {"keytabSecretRef": {"name": "kt"}, "principal": "x@Y"}}}),
            "KeytabInvalid",
            "spec.auth.kerberos.keytabSecretRef",
        ),
        (
            json!({"tls": {"ca": {"configMapRef": {"name": "missing"}}}}),
            "ConfigMapNotFound",
            "spec.tls.ca.configMapRef",
        ),
        (json!({"tls": {"ca": {"configMapRef": {"name": "not-ca"}}}}), "InvalidCA", "spec.tls.ca.configMapRef"),
        (json!({"scheduleRef": {"name": "weekly"}}), "ScheduleNotFound", "spec.scheduleRef.name"),
        (json!({"scheduleRef": {"name": "broken"}}), "ScheduleInvalid", "spec.scheduleRef.name"),
    ];
    for (patch, reason, field) in cases {
        let s = spec(patch.clone());
        let r = validate(&s, &objects()).expect_err(&format!("{patch} must be rejected"));
        assert_eq!((r.reason.as_str(), r.field.as_str()), (reason, field), "{patch}: {r}");
        assert!(!r.message.contains("s3cret"), "{r}");
    }
}

#[test]
fn two_principal_keytab_message_names_both() {
    let s = spec(serde_json::json!({"auth": {"simple": null, "kerberos": {"keytabSecretRef": {"name": "kt2"}}}}));
    let r = validate(&s, &objects()).expect_err("two principals");
    assert!(
        r.message.contains("svc-sync@CORP.EXAMPLE.TEST") && r.message.contains("svc-other@CORP.EXAMPLE.TEST"),
        "{r}"
    );
}
