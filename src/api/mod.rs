//! Custom resource types of the `ldapsync.io/v1alpha1` API. Types and schema only; no logic.

mod connection;
mod schedule;

pub use connection::*;
pub use schedule::*;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of every ldapsync resource.
pub const GROUP: &str = "ldapsync.io";

/// Annotation whose new value asks every gateway pod to sync the connection once.
pub const SYNC_REQUESTED_AT_ANNOTATION: &str = "ldapsync.io/sync-requested-at";

/// Annotation that lets one held sync through, set to the held snapshot's hash.
pub const APPROVE_DELETIONS_ANNOTATION: &str = "ldapsync.io/approve-deletions";

/// Finalizer that removes every pod's cache of a connection before it goes away.
pub const CACHE_CLEANUP_FINALIZER: &str = "ldapsync.io/cache-cleanup";

/// A key of a Secret (or ConfigMap) in the connection's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the object.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the object. When empty, the field's documented default key is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub key: Option<String>,
}

/// The CRDs of this API, in the order they are printed by `ldapsync crd`.
pub fn crds() -> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> {
    use kube::CustomResourceExt;
    vec![LdapConnection::crd(), LdapSyncSchedule::crd()]
}

/// All CRDs as one multi-document YAML stream, exactly as checked in under `crds/`.
pub fn crds_yaml() -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd)?);
    }
    Ok(out)
}
