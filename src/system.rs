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

/// 32 random bytes drawn once per process: the salt of fingerprints that must not be comparable
/// outside it. Without randomness the salt is the start time, still never written anywhere.
pub(crate) fn process_salt() -> &'static [u8; 32] {
    static SALT: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    SALT.get_or_init(|| {
        use std::io::Read;
        let mut salt = [0u8; 32];
        if let Err(e) = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut salt)) {
            tracing::warn!(error = %e, "no randomness from /dev/urandom; credential fingerprints are salted by the start time");
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
            salt[..16].copy_from_slice(&nanos.to_le_bytes());
        }
        salt
    })
}
