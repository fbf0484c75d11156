//! Snapshot files come from a volume or ConfigMaps anyone with write access can change: decoding
//! must refuse damage with an error, and what decodes must encode and decode to the same snapshot.
//! An input starting with 0 is a whole file (header checks); any other is a payload framed with a
//! valid header and checksum here, so that the fuzzer reaches the postcard decoding behind them.
#![no_main]

use ldapsync::domain::codec;
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

/// The documented header (`domain::codec`) around a zstd-compressed `raw` payload.
fn framed(raw: &[u8]) -> Vec<u8> {
    let compressed = zstd::bulk::compress(raw, 1).expect("zstd compresses");
    let mut out = Vec::with_capacity(60 + compressed.len());
    out.extend_from_slice(codec::MAGIC);
    out.extend_from_slice(&codec::VERSION.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&(raw.len() as u64).to_be_bytes());
    out.extend_from_slice(&(compressed.len() as u64).to_be_bytes());
    out.extend_from_slice(&Sha256::digest(&compressed));
    out.extend_from_slice(&compressed);
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let file = if mode == 0 { rest.to_vec() } else { framed(rest) };
    if let Ok(snapshot) = codec::decode(&file) {
        let encoded = codec::encode(&snapshot).expect("a decoded snapshot encodes");
        let again = codec::decode(&encoded.bytes).expect("an encoded snapshot decodes");
        assert_eq!(again, snapshot, "decode ∘ encode is the identity");
    }
});
