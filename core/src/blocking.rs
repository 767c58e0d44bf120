//! The blocking API: loops over the non-blocking [`Pipe`] calls, with leader/follower group
//! commit.
//!
//! A thread that must wait for durability — [`wait`](BlockingPipe::wait), a
//! [`sync`](BlockingPipe::sync), a writer short of staging, a grow, a close — first looks
//! whether a commit runs. If none does, it runs one itself ([`Pipe::flush_step`]): it commits
//! for everyone staged so far, and writers that arrive meanwhile form the next batch. If one
//! runs, it waits for it. So an uncontended write costs no thread hand-off at all, and under
//! contention each commit carries everyone who arrived during the last one.
//!
//! Two event counts connect the threads, and every notification follows from a step's
//! [`Wake`]: `progress` wakes whoever waits on an epoch, on staging, on a grow or a close, when
//! a step made one of those ready (or the pipe was poisoned); `background` wakes the background
//! runner when a step left it work, or when a write opens a batch while it idles. Every wait
//! follows the token protocol of [`Signal`], so a wake-up between a check and a wait is never
//! lost.

use core::task::Poll;

use crate::{
    ChunkStore, Clock, Durable, Epoch, Error, GrowTicket, Instant, Pipe, RecoveryReport, Signal,
    Transaction, Wake,
};

/// A [`Pipe`] with blocking calls, a clock and the signals that connect its threads.
///
/// Some thread must run [`run_background`](BlockingPipe::run_background) (the std feature's
/// [`ThreadedPipe`](crate::ThreadedPipe) starts one): it writes published batches in place and
/// checkpoints (`Journal::Atomic`), and syncs what nobody waits for (`Journal::Off`); without it
/// writes wait for staging forever.
pub struct BlockingPipe<'a, S, C, G> {
    pipe: Pipe<'a, S>,
    clock: C,
    progress: G,
    background: G,
}

/// What a waiting thread does after trying to lead a commit.
enum Next {
    /// Its flush step made progress: look again at once.
    LookAgain,
    /// Sleep on `progress`, until this deadline if any: the flush step had nothing to commit yet
    /// (a batch held open, or nothing at all: what is awaited comes from a later step), or
    /// another thread runs a commit and notifies `progress` when it publishes, fails or gives
    /// up the commit turn this thread was refused.
    Sleep(Option<Instant>),
}

impl<'a, S: ChunkStore, C: Clock, G: Signal> BlockingPipe<'a, S, C, G> {
    /// Wraps `pipe`; `progress` and `background` are two independent signals.
    pub fn new(pipe: Pipe<'a, S>, clock: C, [progress, background]: [G; 2]) -> Self {
        BlockingPipe {
            pipe,
            clock,
            progress,
            background,
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
    pub fn recovery(&self) -> Option<RecoveryReport> {
        self.pipe.recovery()
    }

    /// The newest durable epoch; see [`Pipe::durable_epoch`].
    pub fn durable_epoch(&self) -> Epoch {
        self.pipe.durable_epoch()
    }

    /// What the pipe has done so far; see [`Pipe::stats`].
    pub fn stats(&self) -> crate::PipeStats {
        self.pipe.stats()
    }

    /// Length in chunks; see [`Pipe::len_chunks`].
    pub fn len_chunks(&self) -> u64 {
        self.pipe.len_chunks()
    }

    /// Wakes whom `wake` says to.
    fn wake(&self, wake: Wake) {
        if wake.waiters() {
            self.progress.notify_all();
        }
        if wake.background {
            self.background.notify_all();
        }
    }

    /// Runs a commit if none runs.
    fn lead(&self) -> Result<Next, Error> {
        let now = self.clock.now();
        let unwinding = WakeAllOnUnwind(self);
        let result = self.pipe.flush_step(now);
        core::mem::forget(unwinding);
        match result {
            Ok(wake) => {
                self.wake(wake);
                if wake.progressed() {
                    Ok(Next::LookAgain)
                } else {
                    Ok(Next::Sleep(self.pipe.next_flush_at(now)))
                }
            }
            Err(Error::WouldBlock) => Ok(Next::Sleep(None)),
            Err(e) => {
                // Poisoned: every waiter must learn it.
                self.progress.notify_all();
                Err(e)
            }
        }
    }

    /// Waits until `poll` is ready, leading commits meanwhile (see the module docs).
    fn wait_for<T>(&self, mut poll: impl FnMut() -> Poll<Result<T, Error>>) -> Result<T, Error> {
        loop {
            let token = self.progress.token();
            if let Poll::Ready(result) = poll() {
                return result;
            }
            if let Next::Sleep(deadline) = self.lead()? {
                self.progress.wait(token, deadline);
            }
        }
    }

    /// Runs `attempt` until staging has room for it, making room meanwhile: a full pool is
    /// freed by a commit (which this thread leads if none runs) and, with `Journal::Atomic`,
    /// by the background writing the published batch in place.
    fn with_room<T>(&self, mut attempt: impl FnMut() -> Result<T, Error>) -> Result<T, Error> {
        self.wait_for(|| match attempt() {
            Err(Error::WouldBlock) => Poll::Pending,
            other => Poll::Ready(other),
        })
    }

    /// Stages `data` at chunk `index` (waiting for staging space) and returns its epoch; see
    /// [`Pipe::try_write`]. Nothing is durable yet: [`wait`](Self::wait) on the epoch for that.
    ///
    /// # Errors
    /// As [`Pipe::try_write`], except `WouldBlock`.
    pub fn write(&self, index: u64, data: &[u8]) -> Result<Epoch, Error> {
        let (epoch, wake) = self.with_room(|| self.pipe.write_noting(index, data))?;
        self.wake(wake);
        Ok(epoch)
    }

    /// Waits until `epoch` is durable, committing it on this thread if no commit runs.
    ///
    /// # Errors
    /// [`Error::Poisoned`] if its batch or an earlier one failed; an epoch never handed out.
    pub fn wait(&self, epoch: Epoch) -> Result<(), Error> {
        self.pipe.request_durable(epoch);
        self.wait_for(|| self.pipe.poll_durable(epoch))
    }

    /// A future that resolves once `epoch` is durable, for async code: see [`Pipe::durable`].
    /// The background runner leads the commit (it must be woken through
    /// [`Pipe::set_background_waker`]; [`ThreadedPipe`](crate::ThreadedPipe) does that).
    pub fn durable(&self, epoch: Epoch) -> Durable<'_, 'a, S> {
        self.pipe.durable(epoch)
    }

    /// As [`wait`](Self::wait), for at most `timeout`: `Ok(true)` once `epoch` is durable,
    /// `Ok(false)` when the time ran out first (the write is still on its way; wait again).
    ///
    /// # Errors
    /// As [`wait`](Self::wait).
    pub fn wait_timeout(&self, epoch: Epoch, timeout: core::time::Duration) -> Result<bool, Error> {
        let give_up = self.clock.now().saturating_add(timeout);
        self.pipe.request_durable(epoch);
        loop {
            let token = self.progress.token();
            if let Poll::Ready(result) = self.pipe.poll_durable(epoch) {
                return result.map(|()| true);
            }
            if self.clock.now() >= give_up {
                return Ok(false);
            }
            if let Next::Sleep(deadline) = self.lead()? {
                let deadline = deadline.map_or(give_up, |at| at.min(give_up));
                self.progress.wait(token, Some(deadline));
            }
        }
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
    pub fn transaction(
        &self,
        max_chunks: u32,
    ) -> Result<BlockingTransaction<'_, 'a, S, C, G>, Error> {
        let inner = self.with_room(|| self.pipe.transaction(max_chunks))?;
        Ok(BlockingTransaction { inner, owner: self })
    }

    /// Makes everything written so far durable now; returns at once when nothing is pending.
    ///
    /// # Errors
    /// [`Error::Poisoned`].
    pub fn sync(&self) -> Result<(), Error> {
        match self.pipe.request_sync()? {
            None => Ok(()),
            Some(epoch) => self.wait_for(|| self.pipe.poll_durable(epoch)),
        }
    }

    /// Adds `chunks` chunks to the store and waits until the new length is durable; returns the
    /// new length in chunks.
    ///
    /// # Errors
    /// As [`Pipe::request_grow`] and [`Pipe::poll_grow`].
    pub fn grow(&self, chunks: u64) -> Result<u64, Error> {
        let ticket: GrowTicket = self.pipe.request_grow(chunks)?;
        self.wait_for(|| self.pipe.poll_grow(&ticket))
    }

    /// Reads into `buf`; see [`Pipe::read_into`].
    ///
    /// # Errors
    /// As [`Pipe::read_into`].
    pub fn read_into(&self, index: u64, buf: &mut [u8]) -> Result<(), Error> {
        // A read holds staging back while it runs; a writer short of staging waits for that.
        let wake = self.pipe.read_freeing(index, buf)?;
        self.wake(wake);
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

    /// Stops accepting writes, commits everything accepted, waits until it is durable (and,
    /// with `Journal::Atomic`, in place and checkpointed) and reports the last error. The
    /// background runner returns once this has been called and the work is done.
    ///
    /// # Errors
    /// [`Error::Poisoned`] if any batch failed.
    pub fn close(&self) -> Result<(), Error> {
        let _ = self.pipe.try_close();
        self.background.notify_all();
        let result = self.wait_for(|| self.pipe.try_close());
        self.background.notify_all();
        result
    }

    /// The background runner: runs [`Pipe::background_step`] as long as it has work, sleeps on
    /// `background` otherwise (until the next deadline it knows of, or until told), and returns
    /// once the pipe is closed and settled, or poisoned and closed.
    pub fn run_background(&self) {
        loop {
            let token = self.background.token();
            let now = self.clock.now();
            let unwinding = WakeAllOnUnwind(self);
            let result = self.pipe.background_step(now);
            core::mem::forget(unwinding);
            #[cfg(feature = "std")]
            {
                let took = self.clock.now().saturating_duration_since(now);
                if took >= crate::events::SLOW_BACKGROUND_STEP {
                    crate::events::slow_background_step(took);
                }
            }
            match result {
                Ok(wake) => {
                    self.wake(wake);
                    if wake.progressed() {
                        continue;
                    }
                }
                // Poisoned: every waiter must learn it.
                Err(_) => self.progress.notify_all(),
            }
            if self.pipe.closing() && self.pipe.try_close().is_ready() {
                self.progress.notify_all();
                return;
            }
            let deadline = self.pipe.park_background(now);
            self.background.wait(token, deadline);
        }
    }

    /// Poisons the pipe with an internal error and wakes every waiter: for a runner that can no
    /// longer run (it panicked).
    pub fn fail_stop(&self) {
        self.pipe.fail_stop();
        self.progress.notify_all();
        self.background.notify_all();
    }

    /// The clock.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// The `progress` and `background` signals.
    #[cfg(test)]
    pub(crate) fn signals(&self) -> (&G, &G) {
        (&self.progress, &self.background)
    }
}

/// Wakes every thread when dropped: armed around a step this layer runs. A step that panics
/// (a panicking store) has poisoned the pipe on its way out; the panic goes on up this thread,
/// and every other thread wakes to the poison error instead of sleeping forever.
struct WakeAllOnUnwind<'b, 'a, S, C, G: Signal>(&'b BlockingPipe<'a, S, C, G>);

impl<S, C, G: Signal> Drop for WakeAllOnUnwind<'_, '_, S, C, G> {
    fn drop(&mut self) {
        self.0.progress.notify_all();
        self.0.background.notify_all();
    }
}

/// A transaction of a [`BlockingPipe`]: committing it wakes the background runner if it idles,
/// and committing or dropping it wakes a writer that waits for the staging it gives back.
#[must_use = "a transaction does nothing until it is committed"]
pub struct BlockingTransaction<'p, 'a, S: ChunkStore, C, G: Signal> {
    inner: Transaction<'p, 'a, S>,
    owner: &'p BlockingPipe<'a, S, C, G>,
}

impl<S: ChunkStore, C: Clock, G: Signal> BlockingTransaction<'_, '_, S, C, G> {
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
    pub fn commit(mut self) -> Result<Epoch, Error> {
        let (epoch, wake) = self.inner.commit_noting()?;
        self.owner.wake(wake);
        Ok(epoch)
    }
}

impl<S: ChunkStore, C, G: Signal> Drop for BlockingTransaction<'_, '_, S, C, G> {
    fn drop(&mut self) {
        // A committed transaction holds nothing any more; an abandoned one gives it all back.
        let wake = self.inner.release();
        if wake.writers {
            self.owner.progress.notify_all();
        }
    }
}

impl<S, C, G> core::fmt::Debug for BlockingPipe<'_, S, C, G> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BlockingPipe")
            .field("pipe", &self.pipe)
            .finish_non_exhaustive()
    }
}

impl<S: ChunkStore, C, G: Signal> core::fmt::Debug for BlockingTransaction<'_, '_, S, C, G> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.inner.fmt(f)
    }
}
