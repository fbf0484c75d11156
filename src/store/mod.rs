//! Where snapshots live: local files (the `Sidecar` store).

pub mod local;
