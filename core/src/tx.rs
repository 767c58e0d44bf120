//! Transactions: several writes that join one batch and share one epoch.
//!
//! A transaction reserves its staging capacity up front ([`Pipe::transaction`]), so it never
//! waits while holding slots: no hold-and-wait deadlock between transactions. Its writes are
//! staged as they come but stay invisible until [`Transaction::commit`] joins them all to the
//! open batch at once.

use crate::staging::NO_SLOT;
use crate::{ChunkStore, Epoch, Error, Pipe, Wake};

/// An uncommitted transaction; see [`Pipe::transaction`]. Dropping it releases its staging.
#[must_use = "a transaction does nothing until it is committed"]
pub struct Transaction<'p, 'a, S: ChunkStore> {
    pipe: &'p Pipe<'a, S>,
    /// Staged slots in write order, linked through the pool (`head` → … → `tail`).
    head: u32,
    tail: u32,
    used: u32,
    reserved: u32,
}

impl<'a, S: ChunkStore> Pipe<'a, S> {
    /// Starts a transaction that may write up to `max_chunks` chunks, reserving that much
    /// staging now.
    ///
    /// # Errors
    /// [`Error::WouldBlock`] when staging has fewer free slots (nothing is held);
    /// [`Error::TooLarge`] past the staging capacity; `max_chunks == 0`; [`Error::Poisoned`],
    /// [`Error::Closed`].
    pub fn transaction(&self, max_chunks: u32) -> Result<Transaction<'_, 'a, S>, Error> {
        if max_chunks == 0 {
            return Err(Error::InvalidInput(
                "a transaction must reserve at least one chunk",
            ));
        }
        self.shared.check_fits_staging(u64::from(max_chunks))?;
        let mut state = self.lock();
        state.check_writable()?;
        if state.pool.available() < max_chunks {
            return Err(state.staging_full());
        }
        state.pool.reserve(max_chunks);
        Ok(Transaction {
            pipe: self,
            head: NO_SLOT,
            tail: NO_SLOT,
            used: 0,
            reserved: max_chunks,
        })
    }
}

impl<S: ChunkStore> Transaction<'_, '_, S> {
    /// Stages `data` (a whole number of chunks) for chunks `index..`. Later writes to the same
    /// chunk in one transaction win.
    ///
    /// # Errors
    /// Bad length or range; [`Error::TooLarge`] past the reservation; [`Error::Poisoned`].
    pub fn write(&mut self, index: u64, data: &[u8]) -> Result<(), Error> {
        let pipe = self.pipe;
        let mut state = pipe.lock();
        let count = pipe
            .shared
            .check_range(index, data.len(), state.len_chunks)?;
        let wanted = u64::from(self.used) + count;
        if wanted > u64::from(self.reserved) {
            return Err(Error::TooLarge {
                chunks: wanted,
                capacity: u64::from(self.reserved),
            });
        }
        state.latch.check()?;
        for (chunk, bytes) in
            (index..).zip(data.chunks_exact(pipe.shared.config.chunk_size as usize))
        {
            let slot = state.pool.take_filled(chunk, bytes, true);
            if self.tail == NO_SLOT {
                self.head = slot;
            } else {
                state.pool.link(self.tail, slot);
            }
            self.tail = slot;
            self.used += 1;
        }
        Ok(())
    }

    /// Chunks written so far.
    pub fn len_chunks(&self) -> u32 {
        self.used
    }

    /// Joins every write of the transaction to the open batch at once and returns the batch's
    /// epoch. Unused reservation is released.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty transaction; [`Error::Poisoned`], [`Error::Closed`].
    /// On error the transaction's staging is released.
    pub fn commit(mut self) -> Result<Epoch, Error> {
        self.commit_noting().map(|(epoch, _)| epoch)
    }

    /// [`commit`](Self::commit), leaving the transaction empty, and saying whom to wake: the
    /// background step, if it slept with nothing to do; writers, if one waited for the
    /// reservation the commit did not use.
    pub(crate) fn commit_noting(&mut self) -> Result<(Epoch, Wake), Error> {
        if self.used == 0 {
            return Err(Error::InvalidInput("commit of an empty transaction"));
        }
        let mut state = self.pipe.lock();
        state.check_writable()?;
        let mut slot = self.head;
        while slot != NO_SLOT {
            let next = state.pool.next(slot);
            state.join_open(slot);
            slot = next;
        }
        let unused = self.reserved - self.used;
        state.pool.unreserve(unused);
        self.head = NO_SLOT;
        self.used = 0;
        self.reserved = 0;
        let wake = Wake {
            background: state.rouse_background(),
            writers: unused > 0 && state.staging_freed(),
            ..Wake::default()
        };
        let epoch = state.open.epoch;
        drop(state);
        if wake.writers {
            self.pipe.shared.wake_waiters(true);
        }
        Ok((epoch, wake))
    }

    /// Gives back whatever staging the transaction still holds (all of it, unless it was
    /// committed); says whether a writer waited for it.
    pub(crate) fn release(&mut self) -> Wake {
        if self.reserved == 0 {
            return Wake::default();
        }
        let mut state = self.pipe.lock();
        let mut slot = self.head;
        while slot != NO_SLOT {
            let next = state.pool.next(slot);
            state.pool.put_back(slot);
            slot = next;
        }
        state.pool.unreserve(self.reserved - self.used);
        self.head = NO_SLOT;
        self.used = 0;
        self.reserved = 0;
        let wake = Wake {
            writers: state.staging_freed(),
            ..Wake::default()
        };
        drop(state);
        if wake.writers {
            self.pipe.shared.wake_waiters(true);
        }
        wake
    }
}

impl<S: ChunkStore> Drop for Transaction<'_, '_, S> {
    fn drop(&mut self) {
        self.release();
    }
}

impl<S: ChunkStore> core::fmt::Debug for Transaction<'_, '_, S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Transaction")
            .field("used", &self.used)
            .field("reserved", &self.reserved)
            .finish_non_exhaustive()
    }
}
