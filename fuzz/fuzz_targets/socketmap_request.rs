//! What a Postfix (or anyone on localhost) sends the socketmap server: framing and request parsing
//! never panic, never read past the buffer, and a framed request's length is what it said.
#![no_main]

use ldapsync::domain::socketmap::{KeyRules, key_forms, parse_request, take_netstring};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((payload, used))) = take_netstring(rest) {
        assert!(used > payload.len() && used <= rest.len());
        if let Ok(request) = parse_request(payload) {
            let rules = KeyRules { recipient_delimiters: "+-".into() };
            let forms = key_forms(request.key, &rules);
            assert!(!forms.is_empty(), "a key has at least its own form");
        }
        rest = &rest[used..];
    }
});
