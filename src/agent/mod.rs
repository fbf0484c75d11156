//! The per-pod side: the lookup API, and serving a store.

pub mod lookup_api;
pub mod serve;
