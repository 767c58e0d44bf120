//! [`ApplyQueue`]: the published batches of `Journal::Atomic` on their way into the data store.

use crate::Epoch;
use crate::staging::{PLANS, SealedBatch};

/// Published batches on their way into the data store, oldest first.
///
/// `PLANS - 1` entries suffice: one of the batch plans is always the open batch's, and every
/// sealed batch holds one of the others.
pub(crate) struct ApplyQueue<'a> {
    waiting: [Option<(SealedBatch<'a>, Epoch)>; PLANS - 1],
    /// The one apply running took the oldest batch out and is writing it.
    in_flight: bool,
}

impl<'a> ApplyQueue<'a> {
    pub(crate) const EMPTY: Self = ApplyQueue {
        waiting: [const { None }; PLANS - 1],
        in_flight: false,
    };

    /// Batches waiting, not counting one being written.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting
            .iter()
            .take_while(|entry| entry.is_some())
            .count()
    }

    /// Nothing is waiting or being written.
    pub(crate) fn is_empty(&self) -> bool {
        !self.in_flight && self.waiting[0].is_none()
    }

    /// Queues a published batch behind the others; gives it back if the queue is full (which
    /// the plan count rules out).
    pub(crate) fn push(
        &mut self,
        batch: SealedBatch<'a>,
        epoch: Epoch,
    ) -> Result<(), SealedBatch<'a>> {
        match self.waiting.iter_mut().find(|entry| entry.is_none()) {
            Some(entry) => {
                *entry = Some((batch, epoch));
                Ok(())
            }
            None => Err(batch),
        }
    }

    /// Takes the oldest batch out for the apply that runs now; [`finish`](Self::finish) ends
    /// it.
    pub(super) fn take_oldest(&mut self) -> Option<(SealedBatch<'a>, Epoch)> {
        let oldest = self.waiting[0].take()?;
        self.waiting.rotate_left(1);
        self.in_flight = true;
        Some(oldest)
    }

    /// The batch [`take_oldest`](Self::take_oldest) handed out is written and retired.
    pub(super) fn finish(&mut self) {
        self.in_flight = false;
    }
}
