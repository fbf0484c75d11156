//! The per-pod side: the agent (watches, schedules, syncs, rows), the lookup API, and serving a store.

mod context;
pub mod daemon;
pub mod lookup_api;
mod metrics;
mod push;
pub mod serve;
pub mod socketmap;
mod sync;
mod worker;
