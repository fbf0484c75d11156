//! Any JSON an administrator can apply as an LdapConnection spec is accepted or refused with a
//! reason naming a spec field; validation never panics.
#![no_main]

use ldapsync::api::LdapConnectionSpec;
use ldapsync::domain::validation::{ReferencedObjects, validate, validate_spec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(spec) = serde_json::from_slice::<LdapConnectionSpec>(data) else { return };
    let alone = validate_spec(&spec);
    let whole = validate(&spec, &ReferencedObjects::default());
    if let Err(r) = &alone {
        assert!(r.field.starts_with("spec."), "{r}");
        assert_eq!(whole.as_ref().err(), Some(r), "the whole check refuses what the spec check refuses");
    }
    if let Err(r) = whole {
        assert!(r.field.starts_with("spec."), "{r}");
    }
});
