//! The one place that picks the lock implementation.
//!
//! With `std` the core uses `std::sync::Mutex` (a futex: a contended thread sleeps instead of
//! spinning); without it, `spin::Mutex`. The core lock (`Pipe::state`) is held only for
//! O(1)-ish bookkeeping and never across a [`ChunkStore`](crate::ChunkStore) call. The flush
//! lock, the data turn and the superblock lock are held across store calls, but only by the one
//! flush step, the one apply or data sync and the one checkpoint that may run at a time; the flush step waits on the superblock lock only
//! when it needs a journal half that a running checkpoint is about to free. So a spin lock is
//! acceptable where there is no OS to sleep on.

#[cfg(all(feature = "std", not(loom)))]
mod imp {
    pub(crate) type MutexGuard<'a, T> = std::sync::MutexGuard<'a, T>;

    /// `std::sync::Mutex` without lock poisoning: the core's invariants are re-established
    /// before any code that could panic runs, so a panic elsewhere does not corrupt the state.
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(std::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex(std::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        }
    }
}

#[cfg(all(not(feature = "std"), not(loom)))]
mod imp {
    pub(crate) type MutexGuard<'a, T> = spin::MutexGuard<'a, T>;

    /// `spin::Mutex`, for targets without an OS.
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(spin::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex(spin::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock()
        }
    }
}

/// Under `--cfg loom` every lock and atomic comes from loom, which explores their interleavings
/// (`core/src/loom_tests.rs`).
#[cfg(loom)]
mod imp {
    pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

    /// `loom::sync::Mutex` with the facade's API.
    #[derive(Debug)]
    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Mutex(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        }
    }

    impl<T: Default> Default for Mutex<T> {
        fn default() -> Self {
            Self::new(T::default())
        }
    }
}

pub(crate) use imp::{Mutex, MutexGuard};

#[cfg(all(feature = "std", not(loom)))]
pub(crate) use std::sync::{
    Condvar, Mutex as StdMutex, MutexGuard as StdMutexGuard,
    atomic::{AtomicU64, Ordering},
};

#[cfg(loom)]
pub(crate) use loom::sync::{
    Condvar, Mutex as StdMutex, MutexGuard as StdMutexGuard,
    atomic::{AtomicU64, Ordering},
};
