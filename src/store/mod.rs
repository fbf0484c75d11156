//! Where snapshots live: local files (the `Sidecar` store) or chunked ConfigMaps.

pub mod configmap;
pub mod local;
