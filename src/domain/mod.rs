//! Pure logic: no I/O; the clock and randomness come in as arguments.

pub mod address;
pub mod dn;
pub mod keytab;
pub mod snapshot;
pub mod srv;
