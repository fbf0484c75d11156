//! The real clock and randomness, handed to the pure logic that takes them as arguments.

/// Uniform in `0..=total` from the OS's randomness (weights of SRV records). Without randomness
/// the first candidate is taken, which is a valid RFC 2782 order too.
pub(crate) fn random_pick(total: u64) -> u64 {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    match std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)) {
        Ok(()) => u64::from_le_bytes(bytes) % (total.saturating_add(1)).max(1),
        Err(e) => {
            tracing::warn!(error = %e, "no randomness from /dev/urandom; SRV weights are not applied");
            0
        }
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}
