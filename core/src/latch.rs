//! The poison latch: the one place a failure becomes sticky.
//!
//! When a write or sync of batch `e` fails, `e` and every later batch fail, and the pipe
//! refuses new work until it is reopened (fsyncgate: a later successful sync proves nothing
//! about data an earlier failed sync dropped). Every step that fails hands its store error to
//! [`Latch::trip`], under the state lock, and reports what `trip` returns; everything else asks
//! [`Latch::check`].

use crate::{Error, StoreError};

/// The failure that poisoned the pipe, once there is one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Latch(Option<StoreError>);

impl Latch {
    /// `Ok` while no failure is latched; the latched failure otherwise.
    pub(crate) fn check(&self) -> Result<(), Error> {
        match self.0 {
            Some(e) => Err(Error::Poisoned(e)),
            None => Ok(()),
        }
    }

    /// The latched failure.
    pub(crate) fn failure(&self) -> Option<StoreError> {
        self.0
    }

    /// Latches `e` unless a failure is latched already, and returns the error every caller of
    /// the pipe gets from now on: the first failure.
    pub(crate) fn trip(&mut self, e: StoreError) -> Error {
        // Planted bug, for the simulator's tests only: forget the failure, so that a later
        // successful sync releases the failed batches' waiters.
        if cfg!(chunkpipe_planted = "release_after_failure") {
            return Error::Store(e);
        }
        if self.0.is_none() {
            crate::events::poisoned(e);
        }
        Error::Poisoned(*self.0.get_or_insert(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Op, StoreErrorKind};

    #[test]
    fn the_first_failure_sticks() {
        let mut latch = Latch::default();
        assert_eq!(latch.check(), Ok(()));
        let first = StoreError::new(StoreErrorKind::Io, Op::Sync);
        let second = StoreError::new(StoreErrorKind::NoSpace, Op::Write);
        assert_eq!(latch.trip(first), Error::Poisoned(first));
        assert_eq!(latch.trip(second), Error::Poisoned(first));
        assert_eq!(latch.check(), Err(Error::Poisoned(first)));
        assert_eq!(latch.failure(), Some(first));
    }
}
