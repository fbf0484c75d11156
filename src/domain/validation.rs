//! Whether an `LdapConnection` can be accepted: its own fields, then what it references (Secrets,
//! ConfigMaps, the schedule). Every rejection names the field and a stable reason.

use std::collections::BTreeMap;

use crate::api::{CaSource, LdapConnectionSpec, LdapSyncScheduleSpec, SecretKeyRef, TlsMode};
use crate::domain::dn::Dn;
use crate::domain::duration::parse_duration;
use crate::domain::keytab::single_principal;
use crate::domain::profile::validate_filter;
use crate::domain::schedule::{Schedule, default_schedule, parse_schedule};
use crate::domain::srv::parse_host_port;

/// Why a connection is not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Stable, CamelCase, used as the condition reason and metric label.
    pub reason: &'static str,
    /// The spec path at fault, e.g. `spec.auth.simple.passwordSecretRef`.
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn reject(reason: &'static str, field: impl Into<String>, message: impl Into<String>) -> Rejection {
    Rejection { reason, field: field.into(), message: message.into() }
}

/// A key of a referenced object, as found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLookup {
    /// No object of that name.
    ObjectMissing,
    /// The object exists without that key; its keys are listed.
    KeyMissing(Vec<String>),
    Value(Vec<u8>),
}

impl KeyLookup {
    /// What `key` finds in an object's data; `None` is an object that does not exist.
    pub fn find<K: AsRef<str>, V: AsRef<[u8]>>(data: Option<&BTreeMap<K, V>>, key: &str) -> Self {
        match data {
            None => Self::ObjectMissing,
            Some(keys) => match keys.iter().find(|(k, _)| k.as_ref() == key) {
                Some((_, v)) => Self::Value(v.as_ref().to_vec()),
                None => Self::KeyMissing(keys.keys().map(|k| k.as_ref().to_owned()).collect()),
            },
        }
    }
}

/// Read access to the objects a connection references, in its namespace.
pub trait References {
    fn secret_key(&self, name: &str, key: &str) -> KeyLookup;
    fn config_map_key(&self, name: &str, key: &str) -> KeyLookup;
    fn schedule(&self, name: &str) -> Option<LdapSyncScheduleSpec>;
}

/// Referenced objects already read (by the controller from the API, by tests from a table): name →
/// key → value. An object absent from its map does not exist.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReferencedObjects {
    pub secrets: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    pub config_maps: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    pub schedules: BTreeMap<String, LdapSyncScheduleSpec>,
}

impl References for ReferencedObjects {
    fn secret_key(&self, name: &str, key: &str) -> KeyLookup {
        KeyLookup::find(self.secrets.get(name), key)
    }
    fn config_map_key(&self, name: &str, key: &str) -> KeyLookup {
        KeyLookup::find(self.config_maps.get(name), key)
    }
    fn schedule(&self, name: &str) -> Option<LdapSyncScheduleSpec> {
        self.schedules.get(name).cloned()
    }
}

/// What validation learnt about an accepted connection.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    /// Lower-case domain without a trailing dot.
    pub domain: String,
    pub search_base: Dn,
    pub kerberos_principal: Option<String>,
    pub schedule: Schedule,
}

/// Lower-case domain name without a trailing dot, or why it is not a DNS name.
pub fn normalize_domain(domain: &str) -> Result<String, String> {
    let d = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    if d.is_empty() || d.len() > 253 {
        return Err(format!("{domain:?} is not a DNS name (1-253 characters)"));
    }
    for label in d.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!("{domain:?} is not a DNS name: label {label:?} is invalid"));
        }
    }
    Ok(d)
}

/// An attribute description: a name (letter, then letters, digits, hyphens) or a numeric OID.
fn valid_attribute(name: &str) -> bool {
    let by_name = name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let by_oid =
        !name.is_empty() && name.split('.').all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()));
    name.len() <= 64 && (by_name || by_oid)
}

/// The spec on its own: everything that can be checked without reading another object.
pub fn validate_spec(spec: &LdapConnectionSpec) -> Result<(String, Dn), Rejection> {
    let domain = normalize_domain(&spec.domain).map_err(|m| reject("InvalidDomain", "spec.domain", m))?;
    let base = Dn::parse(&spec.search_base).map_err(|e| {
        reject("InvalidSearchBase", "spec.searchBase", format!("{:?} is not a DN: {e}", spec.search_base))
    })?;
    match (&spec.auth.simple, &spec.auth.kerberos) {
        (Some(_), Some(_)) => {
            return Err(reject("InvalidSpec", "spec.auth", "set exactly one of kerberos and simple, not both"));
        }
        (None, None) => return Err(reject("InvalidSpec", "spec.auth", "set one of kerberos or simple")),
        (Some(simple), None) => {
            let bind = simple.bind_dn.trim();
            let valid =
                if bind.contains('=') { Dn::parse(bind).is_ok() } else { bind.contains('@') || bind.contains('\\') };
            if !valid {
                return Err(reject(
                    "InvalidSpec",
                    "spec.auth.simple.bindDN",
                    format!("{bind:?} is neither a DN nor user@domain nor DOMAIN\\user"),
                ));
            }
            if spec.tls.mode == TlsMode::None {
                return Err(reject(
                    "InvalidSpec",
                    "spec.tls.mode",
                    "a simple bind over None would send the password in clear text: use StartTLS or LDAPS",
                ));
            }
        }
        (None, Some(_)) => {}
    }
    validate_tls(spec)?;
    if spec.servers.srv.is_some() && !spec.servers.static_servers.is_empty() {
        return Err(reject("InvalidSpec", "spec.servers", "set either srv or static, not both"));
    }
    if let Some(site) = spec.servers.srv.as_ref().and_then(|s| s.site.as_deref()) {
        normalize_domain(site).map_err(|m| reject("InvalidSpec", "spec.servers.srv.site", m))?;
    }
    for (i, server) in spec.servers.static_servers.iter().enumerate() {
        parse_host_port(server, 389).map_err(|m| reject("InvalidSpec", format!("spec.servers.static[{i}]"), m))?;
    }
    let timeouts = [
        ("spec.timeouts.connect", &spec.timeouts.connect),
        ("spec.timeouts.operation", &spec.timeouts.operation),
        ("spec.timeouts.sync", &spec.timeouts.sync),
    ];
    for (field, value) in timeouts {
        let d = parse_duration(value).map_err(|e| reject("InvalidSpec", field, e.to_string()))?;
        if d.is_zero() {
            return Err(reject("InvalidSpec", field, "must be longer than zero"));
        }
    }
    if spec.page_size == 0 {
        return Err(reject("InvalidSpec", "spec.pageSize", "must be at least 1"));
    }
    for (i, attr) in spec.email_attributes.iter().enumerate() {
        if !valid_attribute(attr) {
            return Err(reject(
                "InvalidSpec",
                format!("spec.emailAttributes[{i}]"),
                format!("{attr:?} is not an attribute name"),
            ));
        }
    }
    if let Some(mapping) = &spec.attribute_mapping {
        let fields = [
            ("spec.attributeMapping.userName", &mapping.user_name),
            ("spec.attributeMapping.displayName", &mapping.display_name),
            ("spec.attributeMapping.uniqueId", &mapping.unique_id),
        ];
        for (field, attr) in fields {
            if !valid_attribute(attr) {
                return Err(reject("InvalidSpec", field, format!("{attr:?} is not an attribute name")));
            }
        }
    }
    if let Some(filters) = &spec.filters {
        let fields = [
            ("spec.filters.users", &filters.users),
            ("spec.filters.groups", &filters.groups),
            ("spec.filters.contacts", &filters.contacts),
        ];
        for (field, filter) in fields {
            if let Some(f) = filter {
                let wrapped = if f.trim_start().starts_with('(') { f.clone() } else { format!("({f})") };
                validate_filter(&wrapped).map_err(|m| reject("InvalidFilter", field, format!("{f:?}: {m}")))?;
            }
        }
    }
    Ok((domain, base))
}

fn validate_tls(spec: &LdapConnectionSpec) -> Result<(), Rejection> {
    let tls = &spec.tls;
    if tls.mode == TlsMode::None {
        let stray = [
            ("spec.tls.ca", tls.ca.is_some()),
            ("spec.tls.serverName", tls.server_name.is_some()),
            ("spec.tls.insecureSkipVerify", tls.insecure_skip_verify),
        ];
        if let Some((field, _)) = stray.iter().find(|(_, set)| *set) {
            return Err(reject("InvalidTls", *field, "is set but spec.tls.mode is None: no TLS is used"));
        }
    }
    if let Some(ca) = &tls.ca {
        match (&ca.secret_ref, &ca.config_map_ref) {
            (Some(_), Some(_)) => {
                return Err(reject("InvalidTls", "spec.tls.ca", "set either secretRef or configMapRef, not both"));
            }
            (None, None) => return Err(reject("InvalidTls", "spec.tls.ca", "set secretRef or configMapRef")),
            _ => {}
        }
        if tls.insecure_skip_verify {
            return Err(reject(
                "InvalidTls",
                "spec.tls.insecureSkipVerify",
                "true turns off the verification spec.tls.ca is for; set one of them",
            ));
        }
    }
    if let Some(name) = &tls.server_name {
        normalize_domain(name).map_err(|m| reject("InvalidTls", "spec.tls.serverName", m))?;
    }
    Ok(())
}

fn read_key(
    refs: &impl References,
    field: &str,
    kind: &str,
    r: &SecretKeyRef,
    default_key: &str,
) -> Result<Vec<u8>, Rejection> {
    let key = r.key.as_deref().unwrap_or(default_key);
    let found = if kind == "Secret" { refs.secret_key(&r.name, key) } else { refs.config_map_key(&r.name, key) };
    match found {
        KeyLookup::Value(v) => Ok(v),
        KeyLookup::ObjectMissing => {
            let reason = if kind == "Secret" { "SecretNotFound" } else { "ConfigMapNotFound" };
            Err(reject(reason, field, format!("{kind} {:?} not found", r.name)))
        }
        KeyLookup::KeyMissing(keys) => Err(reject(
            "SecretKeyMissing",
            field,
            format!(
                "{kind} {:?} has no key {key:?} (keys: {})",
                r.name,
                if keys.is_empty() { "none".into() } else { keys.join(", ") }
            ),
        )),
    }
}

/// Counts the certificates of a PEM bundle, or says why it is not one.
fn pem_certificates(pem: &[u8]) -> Result<usize, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let certs: Vec<_> =
        CertificateDer::pem_slice_iter(pem).collect::<Result<_, _>>().map_err(|e| format!("not PEM: {e}"))?;
    if certs.is_empty() {
        return Err("holds no PEM certificate".into());
    }
    Ok(certs.len())
}

/// The whole check: the spec, then its Secrets, CA and schedule.
pub fn validate(spec: &LdapConnectionSpec, refs: &impl References) -> Result<Accepted, Rejection> {
    let (domain, search_base) = validate_spec(spec)?;
    let mut kerberos_principal = None;
    if let Some(simple) = &spec.auth.simple {
        let field = "spec.auth.simple.passwordSecretRef";
        let password = read_key(refs, field, "Secret", &simple.password_secret_ref, "password")?;
        let trimmed = password.iter().rposition(|b| *b != b'\n' && *b != b'\r').map_or(0, |p| p + 1);
        if trimmed == 0 {
            return Err(reject(
                "SecretInvalid",
                field,
                format!("the password in Secret {:?} is empty", simple.password_secret_ref.name),
            ));
        }
    }
    if let Some(kerberos) = &spec.auth.kerberos {
        let field = "spec.auth.kerberos.keytabSecretRef";
        let keytab = read_key(refs, field, "Secret", &kerberos.keytab_secret_ref, "keytab")?;
        let summary = single_principal(&keytab, kerberos.principal.as_deref()).map_err(|e| {
            reject("KeytabInvalid", field, format!("Secret {:?}: {e}", kerberos.keytab_secret_ref.name))
        })?;
        kerberos_principal = Some(summary.principal);
    }
    if let Some(CaSource { secret_ref, config_map_ref }) = &spec.tls.ca {
        let (field, kind, r) = match (secret_ref, config_map_ref) {
            (Some(r), _) => ("spec.tls.ca.secretRef", "Secret", r),
            (None, Some(r)) => ("spec.tls.ca.configMapRef", "ConfigMap", r),
            (None, None) => return Err(reject("InvalidTls", "spec.tls.ca", "set secretRef or configMapRef")),
        };
        let pem = read_key(refs, field, kind, r, "ca.crt")?;
        pem_certificates(&pem).map_err(|m| reject("InvalidCA", field, format!("{kind} {:?}: {m}", r.name)))?;
    }
    let schedule = match &spec.schedule_ref {
        None => default_schedule(),
        Some(r) => {
            let found = refs.schedule(&r.name).ok_or_else(|| {
                reject("ScheduleNotFound", "spec.scheduleRef.name", format!("LdapSyncSchedule {:?} not found", r.name))
            })?;
            parse_schedule(&found).map_err(|e| {
                reject("ScheduleInvalid", "spec.scheduleRef.name", format!("LdapSyncSchedule {:?}: {e}", r.name))
            })?
        }
    };
    Ok(Accepted { domain, search_base, kerberos_principal, schedule })
}

#[cfg(test)]
mod tests {
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
            BTreeMap::from([(
                "keytab".to_owned(),
                keytab(&["svc-sync@CORP.EXAMPLE.TEST", "svc-other@CORP.EXAMPLE.TEST"]),
            )]),
        );
        o.config_maps.insert("ca".into(), BTreeMap::from([("ca.crt".to_owned(), CA.as_bytes().to_vec())]));
        o.config_maps.insert("not-ca".into(), BTreeMap::from([("ca.crt".to_owned(), b"hello".to_vec())]));
        o.schedules.insert(
            "nightly".into(),
            serde_json::from_value(serde_json::json!({"daily": {"at": "02:00"}})).expect("schedule"),
        );
        o.schedules.insert(
            "broken".into(),
            serde_json::from_value(serde_json::json!({"cron": "61 * * * *"})).expect("schedule"),
        );
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
            (json!({"emailAttributes": ["mail", "proxy addresses"]}), "InvalidSpec", "spec.emailAttributes[1]"),
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
            assert_eq!((r.reason, r.field.as_str()), (reason, field), "{patch}: {r}");
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
}
