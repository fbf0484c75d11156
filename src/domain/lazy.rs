//! A value made on first use by a loader given up front: a sync that finds nothing changed never
//! decodes the snapshots it was handed.

use std::sync::{Mutex, OnceLock};

use crate::domain::reason::Reason;

/// Why a loader could not make its value; the reason is what a sync reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct LoadFailed {
    pub reason: Reason,
    pub message: String,
}

type Loader<T> = Box<dyn FnOnce() -> Result<T, LoadFailed> + Send>;

pub struct Lazy<T> {
    value: OnceLock<T>,
    loader: Mutex<Option<Loader<T>>>,
    failed: OnceLock<LoadFailed>,
}

impl<T> Lazy<T> {
    /// A value there already.
    pub fn ready(value: T) -> Self {
        Self { value: OnceLock::from(value), loader: Mutex::new(None), failed: OnceLock::new() }
    }

    /// A value `load` makes when it is first asked for.
    pub fn later(load: impl FnOnce() -> Result<T, LoadFailed> + Send + 'static) -> Self {
        Self { value: OnceLock::new(), loader: Mutex::new(Some(Box::new(load))), failed: OnceLock::new() }
    }

    /// The value, loading it on the first call; a failed load fails every later call the same way.
    pub fn get(&self) -> Result<&T, LoadFailed> {
        if let Some(value) = self.value.get() {
            return Ok(value);
        }
        // A poisoned lock only means a loader panicked; what it left is still consistent.
        let mut loader = self.loader.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(value) = self.value.get() {
            return Ok(value);
        }
        match loader.take() {
            Some(load) => match load() {
                Ok(value) => Ok(self.value.get_or_init(|| value)),
                Err(e) => Err(self.failed.get_or_init(|| e).clone()),
            },
            None => Err(self
                .failed
                .get()
                .cloned()
                .unwrap_or_else(|| LoadFailed { reason: Reason::StoreFailed, message: "the loader panicked".into() })),
        }
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Lazy<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.value.get() {
            Some(value) => f.debug_tuple("Lazy").field(value).finish(),
            None => f.write_str("Lazy(not loaded)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn loads_once_on_first_use_and_never_when_unused() {
        let calls = Arc::new(AtomicU32::new(0));
        let counted = Arc::clone(&calls);
        let lazy = Lazy::later(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok(7)
        });
        assert_eq!(calls.load(Ordering::SeqCst), 0, "nothing loads before the first use");
        assert_eq!(lazy.get(), Ok(&7));
        assert_eq!(lazy.get(), Ok(&7));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(Lazy::ready("x").get(), Ok(&"x"));
    }

    #[test]
    fn a_failed_load_fails_every_call_alike() {
        let failure = LoadFailed { reason: Reason::SnapshotCorrupt, message: "broken".into() };
        let given = failure.clone();
        let lazy: Lazy<u8> = Lazy::later(move || Err(given));
        assert_eq!(lazy.get(), Err(failure.clone()));
        assert_eq!(lazy.get(), Err(failure));
    }
}
