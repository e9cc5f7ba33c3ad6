//! Locking helpers shared by the crate.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, taking the data even if another thread panicked while holding it: a panic
/// elsewhere must not take the stream down with a poisoned lock (every critical section in
/// the crate leaves its data consistent between statements that can panic).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
