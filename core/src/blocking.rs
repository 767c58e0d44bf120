//! The blocking API: loops over the non-blocking [`Pipe`] calls that wait on a [`Signal`].
//!
//! Three event counts connect the threads. `work` wakes the flusher when a write, commit, grow,
//! sync or close gives it something to do. `progress` wakes everyone else when the flusher
//! publishes an epoch, frees staging, finishes a grow or poisons the pipe (and when a reader
//! frees staging). `checkpoint` wakes the checkpointer when a published batch waits to be
//! written in place or appends leave a half of the journal (`Journal::Atomic`), when batches
//! written in place wait for their sync (`Journal::Off`), or on close. The checkpointer sleeps
//! without a deadline while nothing is owed (times an idle checkpoint once one is); the
//! flusher, which wakes every `flush_interval` anyway, wakes it for work nobody announced. Every
//! wait follows the token protocol of [`Signal`], so a wake-up between a check and a wait is
//! never lost.

use crate::{
    ChunkStore, Clock, Epoch, Error, GrowTicket, Instant, Pipe, Signal, StepReport, Transaction,
};
use core::task::Poll;

/// A [`Pipe`] with blocking calls, a clock and the signals that connect its threads.
///
/// Some thread must run [`run_flusher`](BlockingPipe::run_flusher) (the std feature's
/// [`ThreadedPipe`](crate::ThreadedPipe) starts one), or calls that wait will wait forever.
pub struct BlockingPipe<'a, S, C, G> {
    pipe: Pipe<'a, S>,
    clock: C,
    work: G,
    progress: G,
    checkpoint: G,
}

impl<'a, S: ChunkStore, C: Clock, G: Signal> BlockingPipe<'a, S, C, G> {
    /// Wraps `pipe`; `work`, `progress` and `checkpoint` are three independent signals.
    pub fn new(pipe: Pipe<'a, S>, clock: C, [work, progress, checkpoint]: [G; 3]) -> Self {
        BlockingPipe {
            pipe,
            clock,
            work,
            progress,
            checkpoint,
        }
    }

    /// The non-blocking pipe underneath.
    pub fn pipe(&self) -> &Pipe<'a, S> {
        &self.pipe
    }

    /// What recovery found and did when the pipe was opened (`Journal::Atomic`): records
    /// replayed, a torn tail dropped, a superblock copy rewritten, and with
    /// [`Recovery::PointInTime`](crate::Recovery) the damage and the epochs dropped; see
    /// [`Pipe::recovery`].
    pub fn recovery(&self) -> Option<crate::RecoveryReport> {
        self.pipe.recovery()
    }

    /// Waits until `poll` is ready, re-polling after every `progress` notification.
    fn wait_for<T>(&self, mut poll: impl FnMut() -> Poll<T>) -> T {
        loop {
            let token = self.progress.token();
            if let Poll::Ready(value) = poll() {
                return value;
            }
            self.progress.wait(token, None);
        }
    }

    /// Retries `attempt` while it returns `WouldBlock` (staging full).
    fn retry_blocked<T>(&self, mut attempt: impl FnMut() -> Result<T, Error>) -> Result<T, Error> {
        self.wait_for(|| match attempt() {
            Err(Error::WouldBlock) => {
                // The flusher frees staging; make sure it is awake.
                self.work.notify_all();
                Poll::Pending
            }
            other => Poll::Ready(other),
        })
    }

    /// Stages `data` at chunk `index` (waiting for staging space) and returns its epoch; see
    /// [`Pipe::try_write`].
    ///
    /// # Errors
    /// As [`Pipe::try_write`], except `WouldBlock`.
    pub fn write(&self, index: u64, data: &[u8]) -> Result<Epoch, Error> {
        let epoch = self.retry_blocked(|| self.pipe.try_write(index, data))?;
        self.work.notify_all();
        Ok(epoch)
    }

    /// Waits until `epoch` is durable.
    ///
    /// # Errors
    /// [`Error::Poisoned`] if its batch or an earlier one failed; an epoch never handed out.
    pub fn wait(&self, epoch: Epoch) -> Result<(), Error> {
        self.wait_for(|| self.pipe.poll_durable(epoch))
    }

    /// [`write`](BlockingPipe::write) then [`wait`](BlockingPipe::wait).
    ///
    /// # Errors
    /// As both.
    pub fn write_durable(&self, index: u64, data: &[u8]) -> Result<Epoch, Error> {
        let epoch = self.write(index, data)?;
        self.wait(epoch).map(|()| epoch)
    }

    /// Starts a transaction of up to `max_chunks` chunks, waiting for staging space; see
    /// [`Pipe::transaction`].
    ///
    /// # Errors
    /// As [`Pipe::transaction`], except `WouldBlock`.
    pub fn transaction(&self, max_chunks: u32) -> Result<BlockingTransaction<'_, 'a, S, G>, Error> {
        let inner = self.retry_blocked(|| self.pipe.transaction(max_chunks))?;
        Ok(BlockingTransaction {
            inner,
            work: &self.work,
        })
    }

    /// Makes everything written so far durable now; returns at once when nothing is pending.
    ///
    /// # Errors
    /// [`Error::Poisoned`].
    pub fn sync(&self) -> Result<(), Error> {
        match self.pipe.request_sync()? {
            None => Ok(()),
            Some(epoch) => {
                self.work.notify_all();
                self.wait(epoch)
            }
        }
    }

    /// Adds `chunks` chunks to the store and waits until the new length is durable; returns the
    /// new length in chunks.
    ///
    /// # Errors
    /// As [`Pipe::request_grow`] and [`Pipe::poll_grow`].
    pub fn grow(&self, chunks: u64) -> Result<u64, Error> {
        let ticket: GrowTicket = self.pipe.request_grow(chunks)?;
        self.work.notify_all();
        self.wait_for(|| self.pipe.poll_grow(&ticket))
    }

    /// Reads into `buf`; see [`Pipe::read_into`].
    ///
    /// # Errors
    /// As [`Pipe::read_into`].
    pub fn read_into(&self, index: u64, buf: &mut [u8]) -> Result<(), Error> {
        let freed = self.pipe.read_reporting_freed(index, buf)?;
        if freed > 0 {
            self.progress.notify_all();
        }
        Ok(())
    }

    /// Reads `count` chunks at `index` into a new vector; see [`Pipe::read`].
    ///
    /// # Errors
    /// As [`Pipe::read`].
    #[cfg(feature = "alloc")]
    pub fn read(&self, index: u64, count: u64) -> Result<alloc::vec::Vec<u8>, Error> {
        let mut buf = self.pipe.read_buffer(index, count)?;
        self.read_into(index, &mut buf)?;
        Ok(buf)
    }

    /// Stops accepting writes, waits until everything accepted is durable and reports the last
    /// error. The flusher loop ends once this has been called and the work is done.
    ///
    /// # Errors
    /// [`Error::Poisoned`] if any batch failed.
    pub fn close(&self) -> Result<(), Error> {
        let _ = self.pipe.try_close();
        self.work.notify_all();
        self.checkpoint.notify_all();
        let result = self.wait_for(|| self.pipe.try_close());
        self.checkpoint.notify_all();
        result
    }

    /// The flusher: runs flush steps as long as there is work, sleeps on `work` otherwise (up to
    /// `flush_interval`, or until `max_batch_delay` expires), and returns once the pipe is closed
    /// and flushed, or poisoned and closed.
    pub fn run_flusher(&self) {
        loop {
            let token = self.work.token();
            let now = self.clock.now();
            match self.pipe.step(now) {
                Ok(report) if self.hand_on(&report, now) => continue,
                Ok(_) | Err(Error::WouldBlock) => {}
                // Poisoned: wake every waiter with the error, then idle until closed.
                Err(_) => self.progress.notify_all(),
            }
            if self.pipe.try_close_if_closing().is_ready() {
                self.progress.notify_all();
                return;
            }
            let idle_until = now.saturating_add(self.pipe.config().flush_interval);
            let deadline = self
                .pipe
                .next_flush_at(now)
                .map_or(idle_until, |at| at.min(idle_until));
            if deadline > now {
                self.work.wait(token, Some(deadline));
                if self.work.token() == token {
                    self.wake_checkpointer_if_owed();
                }
            }
        }
    }

    /// On a flusher round nobody woke it for: wakes the checkpointer if it has work that no
    /// hand-on announced (a flush step that applied a batch itself, or one taken through
    /// [`pipe`](Self::pipe), wakes no one), as the checkpointer sleeps until it is told.
    fn wake_checkpointer_if_owed(&self) {
        let now = self.clock.now();
        if self
            .pipe
            .next_checkpoint_at(now)
            .is_some_and(|at| at <= now)
        {
            self.checkpoint.notify_all();
        }
    }

    /// After a flush step: wakes whom its report says to wake, and syncs here what the step
    /// wrote in place if [`syncs_itself`] says so. Returns whether the flusher should look for
    /// the batch that formed meanwhile at once.
    fn hand_on(&self, report: &StepReport, now: Instant) -> bool {
        if report.progressed() {
            self.progress.notify_all();
        }
        if syncs_itself(report) {
            if self
                .pipe
                .sync_step(now)
                .is_ok_and(|published| published.is_some())
            {
                self.progress.notify_all();
            }
            return true;
        }
        if report.checkpoint_owed || report.apply_owed || report.sync_owed {
            self.checkpoint.notify_all();
        }
        report.progressed() || report.written.is_some() || report.applied
    }

    /// The checkpointer: runs [`Pipe::checkpoint_step`] beside the flusher. `Journal::Atomic`:
    /// writes published batches in place and takes due checkpoints, so the commit path holds
    /// only the journal append and its sync, never an in-place write or a data sync.
    /// `Journal::Off`: syncs the batches the flusher wrote in place while it writes the next.
    /// Sleeps on `checkpoint` (or until the next idle checkpoint) in between — the flusher
    /// wakes it when work is owed —, and returns once the pipe is closed.
    pub fn run_checkpointer(&self) {
        loop {
            let token = self.checkpoint.token();
            let now = self.clock.now();
            match self.pipe.checkpoint_work(now) {
                Ok(work) if work.done => {
                    // Batches written in place free staging, which only writers short of it
                    // wait for: waking every epoch waiter per batch would cost each a wake-up.
                    if work.wakes_waiters {
                        self.progress.notify_all();
                    }
                    // The flusher may wait for it (a checkpoint needs every batch in place).
                    self.work.notify_all();
                    continue;
                }
                Ok(_) => {}
                Err(_) => self.progress.notify_all(),
            }
            if self.pipe.try_close_if_closing().is_ready() {
                return;
            }
            // With nothing owed, sleep until the flusher hands work over: an idle pipe then
            // wakes one thread per `flush_interval`, not two.
            let deadline = self.pipe.next_checkpoint_at(now);
            if deadline.is_none_or(|at| at > now) {
                self.checkpoint.wait(token, deadline);
            }
        }
    }

    /// Poisons the pipe with an internal error and wakes every waiter: for a flusher that can no
    /// longer run (it panicked).
    pub fn fail_stop(&self) {
        self.pipe.fail_stop();
        self.progress.notify_all();
    }

    /// The clock.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }
}

/// `Journal::Off`: whether the flusher syncs the batch its step wrote in place itself rather
/// than hand the sync to the checkpointer. It does when nothing is there to write meanwhile
/// (a hand-over would only add a wake-up) — unless the batch freed staging a writer waited for:
/// that writer is forming the next batch, which the flusher then writes in place while the
/// checkpointer syncs this one (bulk writes, W2 of `chunkpipe bench`: 0.73–0.87× the naive
/// peer when the flusher synced, 0.99–1.11× handing over, in six pairs).
pub(crate) fn syncs_itself(report: &StepReport) -> bool {
    let batch_forming = report.next_batch_waiting || report.staging_freed;
    report.written.is_some() && report.sync_owed && !batch_forming
}

/// A transaction of a [`BlockingPipe`]: commit wakes the flusher.
#[must_use = "a transaction does nothing until it is committed"]
pub struct BlockingTransaction<'p, 'a, S: ChunkStore, G> {
    inner: Transaction<'p, 'a, S>,
    work: &'p G,
}

impl<S: ChunkStore, G: Signal> BlockingTransaction<'_, '_, S, G> {
    /// Stages a write; see [`Transaction::write`].
    ///
    /// # Errors
    /// As [`Transaction::write`].
    pub fn write(&mut self, index: u64, data: &[u8]) -> Result<(), Error> {
        self.inner.write(index, data)
    }

    /// Commits; see [`Transaction::commit`]. Wait on the returned epoch for durability.
    ///
    /// # Errors
    /// As [`Transaction::commit`].
    pub fn commit(self) -> Result<Epoch, Error> {
        let epoch = self.inner.commit()?;
        self.work.notify_all();
        Ok(epoch)
    }
}

impl<S, C, G> core::fmt::Debug for BlockingPipe<'_, S, C, G> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BlockingPipe")
            .field("pipe", &self.pipe)
            .finish_non_exhaustive()
    }
}

impl<S: ChunkStore, G> core::fmt::Debug for BlockingTransaction<'_, '_, S, G> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.inner.fmt(f)
    }
}
