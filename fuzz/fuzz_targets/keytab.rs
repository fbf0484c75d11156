//! Keytabs come from Secrets: the parser reads every entry or names what is wrong, never panics.
#![no_main]

use ldapsync::domain::keytab::{keytab_principals, single_principal};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let principals = keytab_principals(data);
    let single = single_principal(data, None);
    if let Ok(summary) = &single {
        let listed = principals.as_ref().expect("a keytab with one principal lists it");
        assert!(listed.iter().any(|(p, _)| *p == summary.principal));
        assert!(single_principal(data, Some(&summary.principal)).is_ok());
    }
});
