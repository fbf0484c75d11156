//! Where snapshots live: local files (the `Sidecar` store) or chunked ConfigMaps, both behind
//! [`SnapshotStore`] so that a sync writes through one path whichever the spec chose.

pub mod configmap;
pub mod local;

use std::sync::Arc;

use futures::future::BoxFuture;

use crate::domain::codec::Encoded;
use crate::domain::reason::Reason;
use crate::domain::snapshot::{ConnectionRef, Snapshot};

/// A failed store action of either kind.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error(transparent)]
    Local(#[from] local::StoreError),
    #[error(transparent)]
    ConfigMaps(#[from] configmap::ConfigMapStoreError),
    #[error("the store task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl CacheError {
    pub fn reason(&self) -> Reason {
        Reason::StoreFailed
    }
}

/// One connection's cached snapshot, wherever it is kept.
pub trait SnapshotStore: Send + Sync {
    /// The stored snapshot; `None` when there is none.
    fn load<'a>(&'a self, connection: &'a ConnectionRef) -> BoxFuture<'a, Result<Option<Snapshot>, CacheError>>;
    /// Replaces the stored snapshot atomically: a reader sees the old one or the new one.
    fn write<'a>(
        &'a self,
        connection: &'a ConnectionRef,
        encoded: Arc<Encoded>,
    ) -> BoxFuture<'a, Result<(), CacheError>>;
    /// Deletes the stored snapshot (nothing stored is not an error).
    fn purge<'a>(&'a self, connection: &'a ConnectionRef) -> BoxFuture<'a, Result<(), CacheError>>;
}

/// Files are keyed by the connection's UID; the blocking file work runs off the async threads.
impl SnapshotStore for local::LocalStore {
    fn load<'a>(&'a self, connection: &'a ConnectionRef) -> BoxFuture<'a, Result<Option<Snapshot>, CacheError>> {
        let (store, key) = (self.clone(), connection.uid.clone());
        Box::pin(async move {
            let stored = tokio::task::spawn_blocking(move || store.load(&key)).await??;
            Ok(stored.map(|s| s.snapshot))
        })
    }

    fn write<'a>(
        &'a self,
        connection: &'a ConnectionRef,
        encoded: Arc<Encoded>,
    ) -> BoxFuture<'a, Result<(), CacheError>> {
        let (store, key) = (self.clone(), connection.uid.clone());
        Box::pin(async move {
            tokio::task::spawn_blocking(move || store.write(&key, &encoded)).await??;
            Ok(())
        })
    }

    fn purge<'a>(&'a self, connection: &'a ConnectionRef) -> BoxFuture<'a, Result<(), CacheError>> {
        let (store, key) = (self.clone(), connection.uid.clone());
        Box::pin(async move {
            tokio::task::spawn_blocking(move || store.purge(&key)).await??;
            Ok(())
        })
    }
}

impl SnapshotStore for configmap::ConfigMapStore {
    fn load<'a>(&'a self, connection: &'a ConnectionRef) -> BoxFuture<'a, Result<Option<Snapshot>, CacheError>> {
        Box::pin(async move { Ok(configmap::ConfigMapStore::load(self, connection).await?.map(|(s, _)| s)) })
    }

    fn write<'a>(
        &'a self,
        connection: &'a ConnectionRef,
        encoded: Arc<Encoded>,
    ) -> BoxFuture<'a, Result<(), CacheError>> {
        Box::pin(async move { Ok(configmap::ConfigMapStore::write(self, connection, &encoded).await.map(|_| ())?) })
    }

    fn purge<'a>(&'a self, connection: &'a ConnectionRef) -> BoxFuture<'a, Result<(), CacheError>> {
        Box::pin(async move { Ok(configmap::ConfigMapStore::purge(self, connection).await?) })
    }
}
