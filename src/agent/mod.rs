//! The per-pod side: the agent (watches, schedules, syncs, rows), the lookup API, and serving a store.

pub mod daemon;
pub mod lookup_api;
pub mod serve;
pub mod socketmap;
pub mod worker;
