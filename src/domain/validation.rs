//! Whether an `LdapConnection` can be accepted: its own fields, then what it references (Secrets,
//! ConfigMaps, the schedule). Every rejection names the field and a stable reason.

use std::collections::BTreeMap;

use crate::api::{DirectoryType, DisabledAccounts, LdapConnectionSpec, LdapSyncScheduleSpec, TlsMode};
use crate::domain::dn::Dn;
use crate::domain::duration::parse_duration;
use crate::domain::keytab::single_principal;
use crate::domain::profile::validate_filter;
use crate::domain::reason::Reason;
use crate::domain::references::{ObjectKind, Reference, Role, references, trim_password};
use crate::domain::schedule::{Schedule, default_schedule, parse_schedule};
use crate::domain::srv::parse_host_port;

/// Why a connection is not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Stable, CamelCase, used as the condition reason and metric label.
    pub reason: Reason,
    /// The spec path at fault, e.g. `spec.auth.simple.passwordSecretRef`.
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

fn reject(reason: Reason, field: impl Into<String>, message: impl Into<String>) -> Rejection {
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
    let domain = normalize_domain(&spec.domain).map_err(|m| reject(Reason::InvalidDomain, "spec.domain", m))?;
    let base = Dn::parse(&spec.search_base).map_err(|e| {
        reject(Reason::InvalidSearchBase, "spec.searchBase", format!("{:?} is not a DN: {e}", spec.search_base))
    })?;
    validate_auth(spec)?;
    validate_tls(spec)?;
    validate_servers(spec)?;
    validate_policies(spec)?;
    validate_limits(spec)?;
    validate_attributes(spec)?;
    validate_filters(spec)?;
    Ok((domain, base))
}

fn validate_auth(spec: &LdapConnectionSpec) -> Result<(), Rejection> {
    match (&spec.auth.simple, &spec.auth.kerberos) {
        (Some(_), Some(_)) => {
            Err(reject(Reason::InvalidSpec, "spec.auth", "set exactly one of kerberos and simple, not both"))
        }
        (None, None) => Err(reject(Reason::InvalidSpec, "spec.auth", "set one of kerberos or simple")),
        (Some(simple), None) => {
            let bind = simple.bind_dn.trim();
            let valid =
                if bind.contains('=') { Dn::parse(bind).is_ok() } else { bind.contains('@') || bind.contains('\\') };
            if !valid {
                return Err(reject(
                    Reason::InvalidSpec,
                    "spec.auth.simple.bindDN",
                    format!("{bind:?} is neither a DN nor user@domain nor DOMAIN\\user"),
                ));
            }
            if spec.tls.mode == TlsMode::None {
                return Err(reject(
                    Reason::InvalidSpec,
                    "spec.tls.mode",
                    "a simple bind over None would send the password in clear text: use StartTLS or LDAPS",
                ));
            }
            Ok(())
        }
        (None, Some(_)) => Ok(()),
    }
}

/// Only Active Directory marks accounts disabled (userAccountControl); a generic directory has
/// no such flag to exclude by.
fn validate_policies(spec: &LdapConnectionSpec) -> Result<(), Rejection> {
    if spec.directory_type == DirectoryType::Generic && spec.disabled_accounts == DisabledAccounts::Exclude {
        return Err(reject(
            Reason::InvalidSpec,
            "spec.disabledAccounts",
            "Exclude needs directoryType ActiveDirectory: a generic directory has no disabled flag",
        ));
    }
    Ok(())
}

fn validate_servers(spec: &LdapConnectionSpec) -> Result<(), Rejection> {
    if spec.servers.srv.is_some() && !spec.servers.static_servers.is_empty() {
        return Err(reject(Reason::InvalidSpec, "spec.servers", "set either srv or static, not both"));
    }
    if let Some(site) = spec.servers.srv.as_ref().and_then(|s| s.site.as_deref()) {
        normalize_domain(site).map_err(|m| reject(Reason::InvalidSpec, "spec.servers.srv.site", m))?;
    }
    for (i, server) in spec.servers.static_servers.iter().enumerate() {
        parse_host_port(server, 389)
            .map_err(|m| reject(Reason::InvalidSpec, format!("spec.servers.static[{i}]"), m))?;
    }
    Ok(())
}

/// Timeouts longer than zero, a page size of at least one.
fn validate_limits(spec: &LdapConnectionSpec) -> Result<(), Rejection> {
    let timeouts = [
        ("spec.timeouts.connect", &spec.timeouts.connect),
        ("spec.timeouts.operation", &spec.timeouts.operation),
        ("spec.timeouts.sync", &spec.timeouts.sync),
    ];
    for (field, value) in timeouts {
        let d = parse_duration(value).map_err(|e| reject(Reason::InvalidSpec, field, e.to_string()))?;
        if d.is_zero() {
            return Err(reject(Reason::InvalidSpec, field, "must be longer than zero"));
        }
    }
    if spec.page_size == 0 {
        return Err(reject(Reason::InvalidSpec, "spec.pageSize", "must be at least 1"));
    }
    // Zero is allowed here: it turns the periodic full sync off.
    parse_duration(&spec.incremental.full_sync_interval)
        .map_err(|e| reject(Reason::InvalidSpec, "spec.incremental.fullSyncInterval", e.to_string()))?;
    Ok(())
}

fn validate_attributes(spec: &LdapConnectionSpec) -> Result<(), Rejection> {
    let not_an_attribute =
        |field: String, attr: &str| reject(Reason::InvalidSpec, field, format!("{attr:?} is not an attribute name"));
    for (i, attr) in spec.email_attributes.iter().enumerate() {
        if !valid_attribute(attr) {
            return Err(not_an_attribute(format!("spec.emailAttributes[{i}]"), attr));
        }
    }
    for (i, class) in spec.mail_object_classes.iter().enumerate() {
        // An object class name has the syntax of an attribute name (RFC 4512 descr).
        if !valid_attribute(class) {
            let field = format!("spec.mailObjectClasses[{i}]");
            return Err(reject(Reason::InvalidSpec, field, format!("{class:?} is not an object class name")));
        }
    }
    if let Some(mapping) = &spec.attribute_mapping {
        let fields = [
            ("spec.attributeMapping.userName", &mapping.user_name),
            ("spec.attributeMapping.displayName", &mapping.display_name),
            ("spec.attributeMapping.uniqueId", &mapping.unique_id),
        ];
        if let Some((field, attr)) = fields.iter().find(|(_, attr)| !valid_attribute(attr)) {
            return Err(not_an_attribute((*field).to_owned(), attr));
        }
    }
    Ok(())
}

fn validate_filters(spec: &LdapConnectionSpec) -> Result<(), Rejection> {
    let Some(filters) = &spec.filters else { return Ok(()) };
    let fields = [
        ("spec.filters.users", &filters.users),
        ("spec.filters.groups", &filters.groups),
        ("spec.filters.contacts", &filters.contacts),
    ];
    for (field, filter) in fields {
        if let Some(f) = filter {
            let wrapped = if f.trim_start().starts_with('(') { f.clone() } else { format!("({f})") };
            validate_filter(&wrapped).map_err(|m| reject(Reason::InvalidFilter, field, format!("{f:?}: {m}")))?;
        }
    }
    Ok(())
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
            return Err(reject(Reason::InvalidTls, *field, "is set but spec.tls.mode is None: no TLS is used"));
        }
    }
    if let Some(ca) = &tls.ca {
        match (&ca.secret_ref, &ca.config_map_ref) {
            (Some(_), Some(_)) => {
                return Err(reject(
                    Reason::InvalidTls,
                    "spec.tls.ca",
                    "set either secretRef or configMapRef, not both",
                ));
            }
            (None, None) => return Err(reject(Reason::InvalidTls, "spec.tls.ca", "set secretRef or configMapRef")),
            _ => {}
        }
        if tls.insecure_skip_verify {
            return Err(reject(
                Reason::InvalidTls,
                "spec.tls.insecureSkipVerify",
                "true turns off the verification spec.tls.ca is for; set one of them",
            ));
        }
    }
    if let Some(name) = &tls.server_name {
        normalize_domain(name).map_err(|m| reject(Reason::InvalidTls, "spec.tls.serverName", m))?;
    }
    Ok(())
}

/// The value a reference names, or why it cannot be had.
fn read_key(refs: &impl References, r: &Reference<'_>) -> Result<Vec<u8>, Rejection> {
    let found = match r.kind {
        ObjectKind::Secret => refs.secret_key(r.name, r.key),
        ObjectKind::ConfigMap => refs.config_map_key(r.name, r.key),
    };
    let kind = r.kind.as_str();
    match found {
        KeyLookup::Value(v) => Ok(v),
        KeyLookup::ObjectMissing => {
            let reason = match r.kind {
                ObjectKind::Secret => Reason::SecretNotFound,
                ObjectKind::ConfigMap => Reason::ConfigMapNotFound,
            };
            Err(reject(reason, r.field, format!("{kind} {:?} not found", r.name)))
        }
        KeyLookup::KeyMissing(keys) => Err(reject(
            Reason::SecretKeyMissing,
            r.field,
            format!(
                "{kind} {:?} has no key {:?} (keys: {})",
                r.name,
                r.key,
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

/// What the referenced Secrets and ConfigMaps hold, checked: a password that is not blank, a keytab
/// with one principal, a PEM CA bundle. Returns the Kerberos principal the keytab names.
pub fn validate_references(spec: &LdapConnectionSpec, refs: &impl References) -> Result<Option<String>, Rejection> {
    let mut kerberos_principal = None;
    for r in references(spec) {
        let value = read_key(refs, &r)?;
        match r.role {
            Role::Password => {
                if trim_password(value).is_empty() {
                    return Err(reject(
                        Reason::SecretInvalid,
                        r.field,
                        format!("the password in Secret {:?} is empty", r.name),
                    ));
                }
            }
            Role::Keytab => {
                let wanted = spec.auth.kerberos.as_ref().and_then(|k| k.principal.as_deref());
                let summary = single_principal(&value, wanted)
                    .map_err(|e| reject(Reason::KeytabInvalid, r.field, format!("Secret {:?}: {e}", r.name)))?;
                kerberos_principal = Some(summary.principal);
            }
            Role::CaBundle => {
                pem_certificates(&value).map_err(|m| {
                    reject(Reason::InvalidCA, r.field, format!("{} {:?}: {m}", r.kind.as_str(), r.name))
                })?;
            }
        }
    }
    Ok(kerberos_principal)
}

/// The schedule the spec names (the default one when it names none).
pub fn validate_schedule(spec: &LdapConnectionSpec, refs: &impl References) -> Result<Schedule, Rejection> {
    let Some(r) = &spec.schedule_ref else { return Ok(default_schedule()) };
    let found = refs.schedule(&r.name).ok_or_else(|| {
        reject(Reason::ScheduleNotFound, "spec.scheduleRef.name", format!("LdapSyncSchedule {:?} not found", r.name))
    })?;
    parse_schedule(&found).map_err(|e| {
        reject(Reason::ScheduleInvalid, "spec.scheduleRef.name", format!("LdapSyncSchedule {:?}: {e}", r.name))
    })
}

/// The whole check: the spec, then its Secrets, CA and schedule.
pub fn validate(spec: &LdapConnectionSpec, refs: &impl References) -> Result<Accepted, Rejection> {
    let (domain, search_base) = validate_spec(spec)?;
    let kerberos_principal = validate_references(spec, refs)?;
    let schedule = validate_schedule(spec, refs)?;
    Ok(Accepted { domain, search_base, kerberos_principal, schedule })
}

#[cfg(test)]
mod tests;
