//! ldapsync: keeps an email security gateway's LDAP cache in step with its directories.
//!
//! Layout: `api` (CRD types), `domain` (pure logic), `directory` (LDAP, DNS, Kerberos I/O).

pub mod agent;
pub mod api;
pub mod cli;
pub mod controller;
pub mod ctl;
pub mod directory;
pub mod domain;
pub mod secret;
pub mod store;
pub mod sync;
mod system;
