//! Pure logic: no I/O; the clock and randomness come in as arguments.

pub mod acceptance;
pub mod address;
pub mod ber;
pub mod codec;
pub mod conditions;
pub mod credentials;
pub mod deletion;
pub mod dn;
pub mod duplicates;
pub mod duration;
pub mod incremental;
pub mod index;
pub mod keytab;
pub mod krb5conf;
pub mod netlogon;
pub mod profile;
pub mod reason;
pub mod references;
pub mod row;
pub mod schedule;
pub mod search_base;
pub mod snapshot;
pub mod socketmap;
pub mod srv;
pub mod sync_plan;
pub mod validation;
