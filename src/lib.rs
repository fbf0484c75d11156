//! ldapsync: keeps an email security gateway's LDAP cache in step with its directories.

pub mod api;
