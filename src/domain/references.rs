//! The Secrets and ConfigMaps a connection spec references: listed once here, for the controller's
//! watches and reads, validation, and the sync's secret reading (API or files).

use crate::api::{LdapConnectionSpec, SecretKeyRef};

/// The kind of a referenced object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Secret,
    ConfigMap,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Secret => "Secret",
            Self::ConfigMap => "ConfigMap",
        }
    }
}

/// What a referenced value is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Password,
    Keytab,
    CaBundle,
}

/// One key of one object the spec names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference<'a> {
    pub role: Role,
    /// The spec field that names it, e.g. `spec.auth.simple.passwordSecretRef`.
    pub field: &'static str,
    pub kind: ObjectKind,
    pub name: &'a str,
    /// The key, or the field's documented default.
    pub key: &'a str,
}

fn reference<'a>(
    role: Role,
    field: &'static str,
    kind: ObjectKind,
    r: &'a SecretKeyRef,
    default_key: &'static str,
) -> Reference<'a> {
    Reference { role, field, kind, name: &r.name, key: r.key.as_deref().unwrap_or(default_key) }
}

/// Every object key `spec` references, in a fixed order (password, keytab, CA).
pub fn references(spec: &LdapConnectionSpec) -> Vec<Reference<'_>> {
    let mut out = Vec::new();
    if let Some(simple) = &spec.auth.simple {
        out.push(reference(
            Role::Password,
            "spec.auth.simple.passwordSecretRef",
            ObjectKind::Secret,
            &simple.password_secret_ref,
            "password",
        ));
    }
    if let Some(kerberos) = &spec.auth.kerberos {
        out.push(reference(
            Role::Keytab,
            "spec.auth.kerberos.keytabSecretRef",
            ObjectKind::Secret,
            &kerberos.keytab_secret_ref,
            "keytab",
        ));
    }
    if let Some(ca) = &spec.tls.ca {
        if let Some(r) = &ca.secret_ref {
            out.push(reference(Role::CaBundle, "spec.tls.ca.secretRef", ObjectKind::Secret, r, "ca.crt"));
        }
        if let Some(r) = &ca.config_map_ref {
            out.push(reference(Role::CaBundle, "spec.tls.ca.configMapRef", ObjectKind::ConfigMap, r, "ca.crt"));
        }
    }
    out
}

/// Whether `spec` references the object `kind`/`name` (in its own namespace).
pub fn refers_to(spec: &LdapConnectionSpec, kind: ObjectKind, name: &str) -> bool {
    references(spec).iter().any(|r| r.kind == kind && r.name == name)
}

/// A password as stored: files written by `echo` end with a newline that is not part of it.
pub fn trim_password(mut password: Vec<u8>) -> Vec<u8> {
    while password.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        password.pop();
    }
    password
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: serde_json::Value) -> LdapConnectionSpec {
        let base = serde_json::json!({"domain": "corp.test", "searchBase": "DC=corp,DC=test", "auth": {}});
        let mut merged = base;
        if let (Some(m), Some(extra)) = (merged.as_object_mut(), json.as_object()) {
            m.extend(extra.clone());
        }
        serde_json::from_value(merged).expect("spec")
    }

    #[test]
    fn lists_every_reference_with_its_default_key() {
        let s = spec(serde_json::json!({
            "auth": {"simple": {"bindDN": "svc@corp.test", "passwordSecretRef": {"name": "pw"}},
                     "kerberos": {"keytabSecretRef": {"name": "kt", "key": "svc.keytab"}}},
            "tls": {"mode": "StartTLS", "ca": {"configMapRef": {"name": "ca"}}}
        }));
        let found: Vec<_> = references(&s).iter().map(|r| (r.role, r.kind, r.name, r.key)).collect();
        assert_eq!(
            found,
            [
                (Role::Password, ObjectKind::Secret, "pw", "password"),
                (Role::Keytab, ObjectKind::Secret, "kt", "svc.keytab"),
                (Role::CaBundle, ObjectKind::ConfigMap, "ca", "ca.crt"),
            ]
        );
        assert!(refers_to(&s, ObjectKind::Secret, "kt"));
        assert!(!refers_to(&s, ObjectKind::Secret, "ca"), "the CA is a ConfigMap here");
        assert!(refers_to(&s, ObjectKind::ConfigMap, "ca"));
    }

    #[test]
    fn a_trailing_newline_is_not_part_of_the_password() {
        assert_eq!(trim_password(b"s3cret\r\n".to_vec()), b"s3cret");
        assert_eq!(trim_password(b"\n".to_vec()), b"");
    }
}
