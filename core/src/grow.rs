//! Growing a pipe: a request joins the state, the next flush step grows the store
//! (`engine::grow_step`, ordered with batches, the new length made durable before it
//! completes), and the requester polls its ticket.

use core::task::Poll;

use crate::{ChunkStore, Error, Op, Pipe, StoreError, StoreErrorKind};

impl<S: ChunkStore> Pipe<'_, S> {
    /// Asks for `chunks` more chunks; the next flush step grows the store (the grow is
    /// ordered with batches and made durable before it completes). Poll the ticket with
    /// [`poll_grow`](Pipe::poll_grow).
    ///
    /// # Errors
    /// `chunks == 0`, arithmetic overflow, [`Error::Poisoned`], [`Error::Closed`].
    pub fn request_grow(&self, chunks: u64) -> Result<GrowTicket, Error> {
        if chunks == 0 {
            return Err(Error::InvalidInput("grow by zero chunks"));
        }
        let mut state = self.lock();
        state.check_writable()?;
        let base = state.grow.target_chunks.max(state.len_chunks);
        let target_chunks = base
            .checked_add(chunks)
            .filter(|t| t.checked_mul(self.shared.chunk_bytes()).is_some())
            .ok_or(Error::InvalidInput("grow overflows the byte length"))?;
        state.grow.target_chunks = target_chunks;
        state.grow.requested += 1;
        Ok(GrowTicket {
            seq: state.grow.requested,
            target_chunks,
        })
    }

    /// `Ready(Ok(len_chunks))` once the grow of `ticket` is durable; `Ready(Err)` if it failed.
    ///
    /// # Errors
    /// The grow's store error, or [`Error::Poisoned`].
    pub fn poll_grow(&self, ticket: &GrowTicket) -> Poll<Result<u64, Error>> {
        let state = self.lock();
        if state.len_chunks >= ticket.target_chunks {
            return Poll::Ready(Ok(state.len_chunks));
        }
        if let Err(e) = state.latch.check() {
            return Poll::Ready(Err(e));
        }
        if state.grow.completed >= ticket.seq {
            // A completed request short of its target failed; `last_error` says how.
            let fallback = StoreError::new(StoreErrorKind::Other, Op::Grow);
            return Poll::Ready(Err(Error::Store(state.grow.last_error.unwrap_or(fallback))));
        }
        Poll::Pending
    }
}

/// A pending grow request; see [`Pipe::request_grow`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrowTicket {
    seq: u64,
    target_chunks: u64,
}

impl GrowTicket {
    /// The length in chunks the pipe has once this grow completes.
    pub fn target_chunks(&self) -> u64 {
        self.target_chunks
    }
}
