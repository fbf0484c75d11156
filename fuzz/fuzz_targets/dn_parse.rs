//! DNs come from the directory and from specs: parsing and normalising never panic, and a parsed
//! DN's normal form parses to the same DN.
#![no_main]

use ldapsync::domain::dn::{Dn, normalize};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let parsed = Dn::parse(text);
    let normal = normalize(text);
    assert_eq!(parsed.is_ok(), normal.is_ok(), "parse and normalize agree on {text:?}");
    if let (Ok(dn), Ok(normal)) = (parsed, normal) {
        let again = Dn::parse(&normal).expect("a normal form parses");
        assert_eq!(again, dn, "{text:?} → {normal:?}");
        assert_eq!(normalize(&normal).as_deref(), Ok(normal.as_str()), "normalising is idempotent");
        let _ = dn.dns_domain();
        assert!(dn.is_within(&dn));
    }
});
