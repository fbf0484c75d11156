//! Pure logic: no I/O; the clock and randomness come in as arguments.

pub mod keytab;
pub mod srv;
