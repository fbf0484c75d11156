//! The `ConfigMap` store: a pod's snapshot of one connection as `binaryData` chunks below the
//! object size limit, plus a manifest naming them. Chunks are written first and named after the
//! snapshot's hash, the manifest last, so a reader sees the old snapshot or the new one, never a
//! mix; chunks the manifest no longer names are removed afterwards. Every object is owned by the
//! LdapConnection, so the garbage collector removes them with it.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use serde_json::json;

use crate::domain::codec;
use crate::domain::snapshot::{ConnectionRef, Snapshot};

/// Largest chunk: well below the 1 MiB object limit once names, labels and encoding are added.
pub const CHUNK_BYTES: usize = 768 * 1024;
pub const LABEL_CONNECTION: &str = "ldapsync.io/connection";
pub const LABEL_CONNECTION_UID: &str = "ldapsync.io/connection-uid";
pub const LABEL_POD: &str = "ldapsync.io/pod";
pub const LABEL_ROLE: &str = "ldapsync.io/role";
const DATA_KEY: &str = "snapshot";

#[derive(Debug, thiserror::Error)]
pub enum ConfigMapStoreError {
    #[error("cannot write ConfigMap {name}: {source}")]
    WriteConfigMap { name: String, source: kube::Error },
    #[error("cannot read ConfigMap {name}: {source}")]
    ReadConfigMap { name: String, source: kube::Error },
    #[error("cannot delete the ConfigMaps of {connection} for pod {pod}: {source}")]
    DeleteConfigMaps { connection: String, pod: String, source: kube::Error },
    #[error("ConfigMap {name} is not a valid snapshot part: {detail}")]
    Malformed { name: String, detail: String },
    #[error("the snapshot in ConfigMaps does not match its manifest's hash (expected {expected}, got {actual})")]
    HashMismatch { expected: String, actual: String },
    #[error(transparent)]
    Decode(#[from] codec::CodecError),
}

/// A connection's snapshots of every pod, in the connection's namespace.
#[derive(Clone)]
pub struct ConfigMapStore {
    api: Api<ConfigMap>,
    pod: String,
}

/// What a manifest records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub hash: String,
    pub size: u64,
    pub chunks: Vec<String>,
}

impl ConfigMapStore {
    pub fn new(client: kube::Client, namespace: &str, pod: &str) -> Self {
        Self { api: Api::namespaced(client, namespace), pod: pod.to_owned() }
    }

    fn field_manager(&self) -> String {
        format!("ldapsync-agent/{}", self.pod)
    }

    /// `ldapsync-<connection>-<pod>`, shortened with a hash when the name would be too long.
    pub fn manifest_name(&self, connection: &ConnectionRef) -> String {
        bounded_name(&format!("ldapsync-{}-{}", connection.name, self.pod))
    }

    fn chunk_name(&self, connection: &ConnectionRef, hash: &str, index: usize) -> String {
        let manifest = self.manifest_name(connection);
        let base = &manifest[..manifest.len().min(253 - 20)];
        format!("{base}-{}-{index}", &hash[..12])
    }

    fn labels(&self, connection: &ConnectionRef, role: &str) -> serde_json::Value {
        json!({
            LABEL_CONNECTION: label_value(&connection.name),
            LABEL_CONNECTION_UID: label_value(&connection.uid),
            LABEL_POD: label_value(&self.pod),
            LABEL_ROLE: role,
        })
    }

    fn owner(connection: &ConnectionRef) -> serde_json::Value {
        json!([{
            "apiVersion": "ldapsync.io/v1alpha1",
            "kind": "LdapConnection",
            "name": connection.name,
            "uid": connection.uid,
            "blockOwnerDeletion": false,
        }])
    }

    async fn apply(&self, name: &str, body: serde_json::Value) -> Result<(), ConfigMapStoreError> {
        let params = PatchParams::apply(&self.field_manager()).force();
        self.api
            .patch(name, &params, &Patch::Apply(body))
            .await
            .map(|_| ())
            .map_err(|source| ConfigMapStoreError::WriteConfigMap { name: name.to_owned(), source })
    }

    /// Stores `encoded` for `connection`: chunks, then the manifest, then stale chunks removed.
    pub async fn write(
        &self,
        connection: &ConnectionRef,
        encoded: &codec::Encoded,
    ) -> Result<Manifest, ConfigMapStoreError> {
        let mut chunks = Vec::new();
        for (i, part) in encoded.bytes.chunks(CHUNK_BYTES).enumerate() {
            let name = self.chunk_name(connection, &encoded.hash, i);
            let body = json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": name,
                    "labels": self.labels(connection, "chunk"),
                    "ownerReferences": Self::owner(connection),
                },
                "binaryData": { DATA_KEY: ByteString(part.to_vec()) },
            });
            self.apply(&name, body).await?;
            chunks.push(name);
        }
        let manifest = Manifest { hash: encoded.hash.clone(), size: encoded.bytes.len() as u64, chunks };
        let name = self.manifest_name(connection);
        let body = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "labels": self.labels(connection, "manifest"),
                "ownerReferences": Self::owner(connection),
            },
            "data": {
                "hash": manifest.hash,
                "size": manifest.size.to_string(),
                "chunks": manifest.chunks.join(","),
                "connection": format!("{}/{}", connection.namespace, connection.name),
            },
        });
        self.apply(&name, body).await?;
        self.remove_stale_chunks(connection, &manifest).await?;
        Ok(manifest)
    }

    fn selector(&self, connection: &ConnectionRef) -> String {
        format!("{LABEL_CONNECTION_UID}={},{LABEL_POD}={}", label_value(&connection.uid), label_value(&self.pod))
    }

    async fn remove_stale_chunks(
        &self,
        connection: &ConnectionRef,
        keep: &Manifest,
    ) -> Result<(), ConfigMapStoreError> {
        let selector = format!("{},{LABEL_ROLE}=chunk", self.selector(connection));
        let list = self.api.list_metadata(&ListParams::default().labels(&selector)).await.map_err(|source| {
            ConfigMapStoreError::DeleteConfigMaps { connection: connection.name.clone(), pod: self.pod.clone(), source }
        })?;
        for item in list.items {
            let Some(name) = item.metadata.name else { continue };
            if keep.chunks.contains(&name) {
                continue;
            }
            match self.api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(source) => {
                    return Err(ConfigMapStoreError::DeleteConfigMaps {
                        connection: connection.name.clone(),
                        pod: self.pod.clone(),
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    /// The manifest of `connection`, `None` when this pod stored nothing yet.
    pub async fn manifest(&self, connection: &ConnectionRef) -> Result<Option<Manifest>, ConfigMapStoreError> {
        let name = self.manifest_name(connection);
        let Some(cm) = self
            .api
            .get_opt(&name)
            .await
            .map_err(|source| ConfigMapStoreError::ReadConfigMap { name: name.clone(), source })?
        else {
            return Ok(None);
        };
        let data: BTreeMap<String, String> = cm.data.unwrap_or_default();
        let field = |key: &str| {
            data.get(key)
                .cloned()
                .ok_or_else(|| ConfigMapStoreError::Malformed { name: name.clone(), detail: format!("no {key}") })
        };
        let size = field("size")?.parse().map_err(|_| ConfigMapStoreError::Malformed {
            name: name.clone(),
            detail: "size is not a number".into(),
        })?;
        let chunks = field("chunks")?.split(',').filter(|c| !c.is_empty()).map(str::to_owned).collect();
        Ok(Some(Manifest { hash: field("hash")?, size, chunks }))
    }

    /// Reads and verifies the stored snapshot; `None` when there is none.
    pub async fn load(&self, connection: &ConnectionRef) -> Result<Option<(Snapshot, Manifest)>, ConfigMapStoreError> {
        let Some(manifest) = self.manifest(connection).await? else { return Ok(None) };
        let mut bytes = Vec::with_capacity(manifest.size as usize);
        for name in &manifest.chunks {
            let cm = self
                .api
                .get(name)
                .await
                .map_err(|source| ConfigMapStoreError::ReadConfigMap { name: name.clone(), source })?;
            let part = cm.binary_data.and_then(|mut d| d.remove(DATA_KEY)).ok_or_else(|| {
                ConfigMapStoreError::Malformed { name: name.clone(), detail: format!("no binaryData.{DATA_KEY}") }
            })?;
            bytes.extend_from_slice(&part.0);
        }
        let actual = codec::hash_of(&bytes);
        if actual != manifest.hash {
            return Err(ConfigMapStoreError::HashMismatch { expected: manifest.hash, actual });
        }
        Ok(Some((codec::decode(&bytes)?, manifest)))
    }

    /// Deletes this pod's manifest and chunks of `connection`.
    pub async fn purge(&self, connection: &ConnectionRef) -> Result<(), ConfigMapStoreError> {
        self.api
            .delete_collection(&DeleteParams::default(), &ListParams::default().labels(&self.selector(connection)))
            .await
            .map(|_| ())
            .map_err(|source| ConfigMapStoreError::DeleteConfigMaps {
                connection: connection.name.clone(),
                pod: self.pod.clone(),
                source,
            })
    }
}

/// Label values allow 63 characters of `[A-Za-z0-9._-]`: longer or other values are cut and hashed.
fn label_value(value: &str) -> String {
    let clean = value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if clean && value.len() <= 63 {
        return value.to_owned();
    }
    let hash = &codec::hash_of(value.as_bytes())[..10];
    let prefix: String = value.chars().filter(|c| c.is_ascii_alphanumeric()).take(50).collect();
    format!("{prefix}-{hash}")
}

/// Object names are at most 253 characters; longer ones keep a prefix and a hash.
fn bounded_name(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    if lower.len() <= 200 {
        return lower;
    }
    format!("{}-{}", &lower[..180], &codec::hash_of(lower.as_bytes())[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_names_stay_within_kubernetes_limits() {
        assert_eq!(label_value("corp"), "corp");
        let long = "x".repeat(80);
        let v = label_value(&long);
        assert!(v.len() <= 63, "{v}");
        assert_ne!(label_value(&format!("{long}a")), label_value(&format!("{long}b")));
        assert!(label_value("ns/name").chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        assert_eq!(bounded_name("ldapsync-Corp-pod-0"), "ldapsync-corp-pod-0");
        assert!(bounded_name(&"y".repeat(300)).len() <= 253);
    }
}
