//! [`Epoch`]: the durability ticket every write receives.

use core::fmt;

/// The number of a batch. Every write returns the epoch of the batch it joined; once the pipe's
/// durable epoch reaches it, that write (and every write of an earlier epoch) is durable.
///
/// Epochs start at 1 for the first batch; `Epoch::NONE` (0) is the durable epoch before any batch
/// was published.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Epoch(u64);

impl Epoch {
    /// Before the first batch.
    pub const NONE: Epoch = Epoch(0);

    /// The epoch numbered `n`.
    pub const fn new(n: u64) -> Self {
        Epoch(n)
    }

    /// Its number.
    pub const fn get(self) -> u64 {
        self.0
    }

    pub(crate) fn next(self) -> Epoch {
        Epoch(self.0 + 1)
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "epoch {}", self.0)
    }
}
