//! The first step of a sync: read what the spec references (from the API in a pod, from files for
//! the CLI), check it with the controller's validation, and hand the values on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{ConfigMap, Secret as KubeSecret};
use kube::{Api, Client};

use crate::api::{LdapConnectionSpec, LdapSyncScheduleSpec};
use crate::directory::sync::ConnectionSecrets;
use crate::domain::reason::Reason;
use crate::domain::references::{ObjectKind, Reference, Role, references, trim_password};
use crate::domain::validation::{KeyLookup, References};
use crate::secret::Secret;

/// A referenced object that could not be read at all (as opposed to one that does not exist).
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("{field}: RBAC forbids reading {kind} {name:?} (for the agent, add it to the chart's agent.secretNames)")]
    Forbidden { field: &'static str, kind: &'static str, name: String },
    #[error("{field}: cannot read {kind} {name:?}: {source}")]
    Api { field: &'static str, kind: &'static str, name: String, source: kube::Error },
    #[error("{field}: cannot read {path}: {source}")]
    File { field: &'static str, path: PathBuf, source: std::io::Error },
}

impl ReferenceError {
    pub fn reason(&self) -> Reason {
        match self {
            Self::Forbidden { .. } => Reason::ForbiddenByRbac,
            Self::Api { .. } => Reason::KubernetesApiUnavailable,
            Self::File { .. } => Reason::SecretNotFound,
        }
    }
}

/// Where referenced values come from.
pub trait ReferenceSource: Send + Sync {
    /// The value `reference` names, or that its object or key does not exist.
    fn lookup<'a>(&'a self, reference: &'a Reference<'a>) -> BoxFuture<'a, Result<KeyLookup, ReferenceError>>;

    /// Where this source looked for `reference`, for messages (a file path for the CLI).
    fn locate(&self, _reference: &Reference<'_>) -> Option<String> {
        None
    }
}

/// What a source found for each reference of a spec, and the schedule when the reader has one.
#[derive(Debug, Default)]
pub struct FoundReferences {
    found: Vec<(ObjectKind, String, String, KeyLookup)>,
    schedules: BTreeMap<String, LdapSyncScheduleSpec>,
}

impl FoundReferences {
    fn get(&self, kind: ObjectKind, name: &str, key: &str) -> KeyLookup {
        self.found
            .iter()
            .find(|(k, n, key_, _)| *k == kind && n == name && key_ == key)
            .map_or(KeyLookup::ObjectMissing, |(.., found)| found.clone())
    }

    /// Adds the schedule the spec names, as found (the controller reads it from its cache).
    pub fn with_schedule(mut self, name: &str, spec: LdapSyncScheduleSpec) -> Self {
        self.schedules.insert(name.to_owned(), spec);
        self
    }
}

impl References for FoundReferences {
    fn secret_key(&self, name: &str, key: &str) -> KeyLookup {
        self.get(ObjectKind::Secret, name, key)
    }
    fn config_map_key(&self, name: &str, key: &str) -> KeyLookup {
        self.get(ObjectKind::ConfigMap, name, key)
    }
    fn schedule(&self, name: &str) -> Option<LdapSyncScheduleSpec> {
        self.schedules.get(name).cloned()
    }
}

/// Reads every key `spec` references from `source`.
pub async fn read_references(
    spec: &LdapConnectionSpec,
    source: &dyn ReferenceSource,
) -> Result<FoundReferences, ReferenceError> {
    let mut found = FoundReferences::default();
    for r in references(spec) {
        let value = source.lookup(&r).await?;
        found.found.push((r.kind, r.name.to_owned(), r.key.to_owned(), value));
    }
    Ok(found)
}

/// A spec that the controller's validation refuses, with where the source looked.
#[derive(Debug, thiserror::Error)]
#[error("{rejection}{}", .looked_in.as_ref().map(|l| format!(" (looked for it in {l})")).unwrap_or_default())]
pub struct Refused {
    pub rejection: crate::domain::validation::Rejection,
    pub looked_in: Option<String>,
}

/// Why the secrets step stopped.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    #[error(transparent)]
    Unreadable(#[from] ReferenceError),
    #[error(transparent)]
    Refused(#[from] Refused),
}

impl SecretsError {
    pub fn reason(&self) -> Reason {
        match self {
            Self::Unreadable(e) => e.reason(),
            Self::Refused(r) => r.rejection.reason,
        }
    }
}

/// Validates the spec, reads every value it references and validates those too, exactly as the
/// controller does before it accepts a connection.
pub async fn read_secrets(
    spec: &LdapConnectionSpec,
    source: &dyn ReferenceSource,
) -> Result<ConnectionSecrets, SecretsError> {
    let refused = |rejection, looked_in| SecretsError::Refused(Refused { rejection, looked_in });
    crate::domain::validation::validate_spec(spec).map_err(|r| refused(r, None))?;
    let found = read_references(spec, source).await?;
    let wanted = references(spec);
    if let Err(rejection) = crate::domain::validation::validate_references(spec, &found) {
        let looked_in = wanted.iter().find(|r| r.field == rejection.field).and_then(|r| source.locate(r));
        return Err(refused(rejection, looked_in));
    }
    let mut secrets = ConnectionSecrets::default();
    for r in &wanted {
        let KeyLookup::Value(value) = found.get(r.kind, r.name, r.key) else { continue };
        match r.role {
            Role::Password => secrets.password = Some(Secret::new(trim_password(value))),
            Role::Keytab => secrets.keytab = Some(Secret::new(value)),
            Role::CaBundle => secrets.ca_pem = Some(value),
        }
    }
    Ok(secrets)
}

/// Values as files `DIR/<name>/<key>`, the layout of a mounted Secret volume (the CLI's source).
pub struct FileSource {
    dir: PathBuf,
}

impl FileSource {
    pub fn new(dir: Option<&Path>) -> Self {
        Self { dir: dir.unwrap_or(Path::new(".")).to_owned() }
    }

    fn path(&self, r: &Reference<'_>) -> PathBuf {
        self.dir.join(r.name).join(r.key)
    }
}

impl ReferenceSource for FileSource {
    fn lookup<'a>(&'a self, r: &'a Reference<'a>) -> BoxFuture<'a, Result<KeyLookup, ReferenceError>> {
        Box::pin(async move {
            let object = self.dir.join(r.name);
            if !object.is_dir() {
                return Ok(KeyLookup::ObjectMissing);
            }
            let path = self.path(r);
            match tokio::fs::read(&path).await {
                Ok(value) => Ok(KeyLookup::Value(value)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    let mut keys: Vec<String> = std::fs::read_dir(&object)
                        .map(|entries| {
                            entries.filter_map(Result::ok).filter_map(|e| e.file_name().into_string().ok()).collect()
                        })
                        .unwrap_or_default();
                    keys.sort();
                    Ok(KeyLookup::KeyMissing(keys))
                }
                Err(source) => Err(ReferenceError::File { field: r.field, path, source }),
            }
        })
    }

    fn locate(&self, r: &Reference<'_>) -> Option<String> {
        Some(self.path(r).display().to_string())
    }
}

/// Values from the Secrets and ConfigMaps of one namespace, read through the API.
pub struct KubeSource {
    secrets: Api<KubeSecret>,
    config_maps: Api<ConfigMap>,
}

impl KubeSource {
    pub fn new(client: Client, namespace: &str) -> Self {
        Self { secrets: Api::namespaced(client.clone(), namespace), config_maps: Api::namespaced(client, namespace) }
    }
}

/// A read refused by RBAC names the chart value that grants it; anything else is the API.
fn unreadable(r: &Reference<'_>, source: kube::Error) -> ReferenceError {
    let (field, kind, name) = (r.field, r.kind.as_str(), r.name.to_owned());
    match &source {
        kube::Error::Api(s) if s.code == 403 => ReferenceError::Forbidden { field, kind, name },
        _ => ReferenceError::Api { field, kind, name, source },
    }
}

/// Every key of a ConfigMap, text and binary.
fn config_map_keys(map: ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut keys: BTreeMap<String, Vec<u8>> =
        map.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
    keys.extend(map.binary_data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)));
    keys
}

impl ReferenceSource for KubeSource {
    fn lookup<'a>(&'a self, r: &'a Reference<'a>) -> BoxFuture<'a, Result<KeyLookup, ReferenceError>> {
        Box::pin(async move {
            let keys =
                match r.kind {
                    ObjectKind::Secret => self.secrets.get_opt(r.name).await.map_err(|e| unreadable(r, e))?.map(|s| {
                        s.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect::<BTreeMap<_, _>>()
                    }),
                    ObjectKind::ConfigMap => {
                        self.config_maps.get_opt(r.name).await.map_err(|e| unreadable(r, e))?.map(config_map_keys)
                    }
                };
            Ok(KeyLookup::find(keys.as_ref(), r.key))
        })
    }
}
