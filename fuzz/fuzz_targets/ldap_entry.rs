//! A directory server's bytes: our SearchResultEntry decoder and the paged-results cookie reader
//! are fed arbitrary BER; a malformed message is refused, never a panic.
#![no_main]

use ldapsync::directory::ldap::wire;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(entry) = wire::decode_search_entry(data) {
        let names = entry.attributes.iter().map(|a| a.name.len()).sum::<usize>();
        assert!(names <= data.len(), "decoded names come from the input");
    }
    let _ = wire::decode_paged_cookie(data);
});
