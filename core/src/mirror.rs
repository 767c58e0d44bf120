//! [`ReadMirror`]: what a read that skips the state lock needs to know, published whenever the
//! lock is released (the protocol is in `read.rs`).

#[cfg(feature = "std")]
use crate::sync::{AtomicU64, Ordering};

/// What a read without the lock needs from the state, refreshed whenever the state lock is
/// released. Without `std` there is no lock-free read and nothing to refresh.
#[derive(Debug)]
pub(crate) struct ReadMirror {
    /// Even while nothing is staged and the pipe is not poisoned, odd otherwise; each change
    /// between the two moves it on, so equal values at two times mean no staging in between.
    #[cfg(feature = "std")]
    version: AtomicU64,
    /// The store's length in chunks, as the state has it.
    #[cfg(feature = "std")]
    len_chunks: AtomicU64,
}

/// The values last stored in the [`ReadMirror`], kept in the state so that a release compares
/// plain fields and touches the atomics only when something changed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mirrored {
    version: u64,
    len_chunks: u64,
}

impl Mirrored {
    /// As a new [`ReadMirror`] starts.
    pub(crate) const START: Mirrored = Mirrored {
        version: 1,
        len_chunks: 0,
    };
}

impl ReadMirror {
    /// Starts as "something staged", so reads take the lock until the first release says
    /// otherwise.
    pub(crate) fn new() -> Self {
        ReadMirror {
            #[cfg(feature = "std")]
            version: AtomicU64::new(Mirrored::START.version),
            #[cfg(feature = "std")]
            len_chunks: AtomicU64::new(Mirrored::START.len_chunks),
        }
    }

    /// Whether a version read from [`version`](Self::version) says nothing was staged.
    pub(crate) fn is_unstaged(version: u64) -> bool {
        version % 2 == 0
    }

    /// The version now.
    #[cfg(feature = "std")]
    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::SeqCst)
    }

    /// The length in chunks now.
    #[cfg(feature = "std")]
    pub(crate) fn len_chunks(&self) -> u64 {
        self.len_chunks.load(Ordering::SeqCst)
    }

    /// Records the state as it is released (`unstaged`: nothing staged and not poisoned); the
    /// state lock is held, so this is the only writer.
    pub(crate) fn refresh(&self, mirrored: &mut Mirrored, unstaged: bool, len_chunks: u64) {
        if Self::is_unstaged(mirrored.version) != unstaged {
            mirrored.version += 1;
            #[cfg(feature = "std")]
            self.version.store(mirrored.version, Ordering::SeqCst);
        }
        if mirrored.len_chunks != len_chunks {
            mirrored.len_chunks = len_chunks;
            #[cfg(feature = "std")]
            self.len_chunks.store(len_chunks, Ordering::SeqCst);
        }
    }

    /// Whether a read would now skip the lock (for tests).
    #[cfg(all(test, feature = "std"))]
    pub(crate) fn unstaged(&self) -> bool {
        Self::is_unstaged(self.version())
    }
}
