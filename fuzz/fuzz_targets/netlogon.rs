//! A CLDAP answer comes off the network from whatever answers UDP 389: the datagram decoder and
//! the netlogon response parser (compressed names, pointers) read it or refuse it, never panic.
#![no_main]

use ldapsync::directory::ldap::wire;
use ldapsync::domain::netlogon::parse_response;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = wire::decode_message_entry(data);
    if let Some(r) = parse_response(data) {
        // Every name came from the bytes: none can be longer than they are.
        assert!(r.client_site.len() + r.dc_site.len() <= data.len() * 64);
    }
});
