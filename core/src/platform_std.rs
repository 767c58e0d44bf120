//! The std platform pieces: a condvar [`Signal`], a monotonic [`Clock`] and [`ThreadedPipe`], a
//! pipe with its background thread running.

use std::sync::Arc;
use std::thread::JoinHandle;

use crate::sync::{AtomicU64, Condvar, Ordering, StdMutex, StdMutexGuard};
use crate::{BlockingPipe, ChunkStore, Clock, Config, Error, Instant, Pipe, Signal};

/// A [`Signal`] on a mutex and condvar. `notify_all` costs one atomic increment when nobody
/// waits, so writers can notify on every write.
///
/// The count and the number of sleeping waiters share one atomic word (count in the high 32
/// bits, waiters in the low 32), so registering as a waiter and advancing the count are
/// read-modify-writes of the same location: whichever comes second sees the first. A waiter
/// that registers after a notify sees the new count and does not sleep; a notify after a
/// registration sees the waiter and wakes it under the lock the waiter holds until it sleeps.
/// (Two separate atomics would need a store-load fence pairing, which is easy to get wrong and
/// which loom cannot check.)
#[derive(Debug)]
pub struct StdSignal {
    state: AtomicU64,
    lock: StdMutex<()>,
    cond: Condvar,
}

const ONE_NOTIFY: u64 = 1 << 32;
const ONE_WAITER: u64 = 1;

fn count_of(state: u64) -> u32 {
    (state >> 32) as u32
}

impl StdSignal {
    /// A new signal.
    pub fn new() -> Self {
        StdSignal {
            state: AtomicU64::new(0),
            lock: StdMutex::new(()),
            cond: Condvar::new(),
        }
    }

    fn lock(&self) -> StdMutexGuard<'_, ()> {
        self.lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sleeps under `guard` until notified (or spuriously woken, or `deadline` passes) and
    /// returns the guard; `None` without sleeping once `deadline` has passed.
    fn sleep<'g>(
        &self,
        guard: StdMutexGuard<'g, ()>,
        deadline: Option<Instant>,
    ) -> Option<StdMutexGuard<'g, ()>> {
        let Some(deadline) = deadline else {
            return Some(
                (self.cond.wait(guard)).unwrap_or_else(std::sync::PoisonError::into_inner),
            );
        };
        let left = deadline.saturating_duration_since(StdClock.now());
        if left.is_zero() {
            return None;
        }
        let (guard, _) = (self.cond.wait_timeout(guard, left))
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Some(guard)
    }
}

impl Default for StdSignal {
    fn default() -> Self {
        Self::new()
    }
}

impl Signal for StdSignal {
    fn token(&self) -> u32 {
        count_of(self.state.load(Ordering::SeqCst))
    }

    fn wait(&self, token: u32, deadline: Option<Instant>) {
        let mut guard = self.lock();
        // Registered while holding the lock: a notifier that sees this waiter must take the
        // lock to wake it, which it can only do once this thread sleeps (or leaves).
        let registered = self.state.fetch_add(ONE_WAITER, Ordering::SeqCst);
        if count_of(registered) == token {
            while count_of(self.state.load(Ordering::SeqCst)) == token {
                // `None`: the deadline has passed.
                match self.sleep(guard, deadline) {
                    Some(again) => guard = again,
                    None => break,
                }
            }
        }
        self.state.fetch_sub(ONE_WAITER, Ordering::SeqCst);
    }

    fn notify_all(&self) {
        let before = self.state.fetch_add(ONE_NOTIFY, Ordering::SeqCst);
        if before & (ONE_NOTIFY - 1) > 0 {
            // A waiter registered before this notify: it holds the lock until it sleeps, so
            // taking the lock here orders the wake-up after its sleep began.
            drop(self.lock());
            self.cond.notify_all();
        }
    }
}

/// A thread sleeping on a signal can be woken by async code: waking the waker notifies it.
/// [`ThreadedPipe`] wakes its background thread this way when an async waiter asks for a
/// commit ([`Pipe::set_background_waker`]).
impl std::task::Wake for StdSignal {
    fn wake(self: Arc<Self>) {
        self.notify_all();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.notify_all();
    }
}

impl<G: Signal + ?Sized> Signal for Arc<G> {
    fn token(&self) -> u32 {
        (**self).token()
    }
    fn wait(&self, token: u32, deadline: Option<Instant>) {
        (**self).wait(token, deadline)
    }
    fn notify_all(&self) {
        (**self).notify_all()
    }
}

/// The process's monotonic clock (`std::time::Instant`), as nanoseconds since the first use.
#[derive(Clone, Copy, Debug, Default)]
pub struct StdClock;

impl Clock for StdClock {
    fn now(&self) -> Instant {
        static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        let origin = *ORIGIN.get_or_init(std::time::Instant::now);
        Instant::from_nanos(u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }
}

/// The blocking pipe a [`ThreadedPipe`] shares with its background thread (the background
/// signal is shared with the waker async waiters wake it with).
pub type StdPipe<S> = BlockingPipe<'static, S, StdClock, Arc<StdSignal>>;

/// A pipe with its background thread running: the ready-to-use form on an OS with threads.
///
/// It dereferences to [`BlockingPipe`], whose methods take `&self`: share it between threads
/// with `std::thread::scope` or an `Arc`. Commits run on the threads that wait for durability
/// (leader/follower, see [`BlockingPipe`]); the one background thread writes published batches
/// in place, checkpoints, and syncs what nobody waits for. [`close`](ThreadedPipe::close) (or
/// drop) commits everything, stops the background thread and joins it.
///
/// ```
/// use chunkpipe_core::{Config, MemStore, ThreadedPipe};
/// let config = Config::new().with_chunk_size(512).with_initial_chunks(8).with_journal_bytes(2 << 20);
/// let pipe = ThreadedPipe::start_journaled(MemStore::new(), MemStore::new(), config).unwrap();
/// let epoch = pipe.write(3, &[7u8; 512]).unwrap();
/// pipe.wait(epoch).unwrap();
/// assert!(pipe.pipe().durable_epoch() >= epoch);
/// assert_eq!(pipe.read(3, 1).unwrap(), [7u8; 512]);
/// pipe.close().unwrap();
/// ```
pub struct ThreadedPipe<S: ChunkStore + Send + Sync + 'static> {
    shared: Arc<StdPipe<S>>,
    /// Taken by the first close.
    background: std::sync::Mutex<Option<JoinHandle<()>>>,
}

impl<S: ChunkStore + Send + Sync + 'static> ThreadedPipe<S> {
    /// Creates a `Journal::Off` pipe over `store` with allocated staging and starts its
    /// background thread.
    ///
    /// # Errors
    /// As [`Pipe::new`]; an [`Error::Store`] if the thread cannot be spawned.
    pub fn start(store: S, config: Config) -> Result<Self, Error> {
        Self::from_pipe(Pipe::new(store, config)?)
    }

    /// Creates a `Journal::Atomic` pipe over `data` and `journal` (recovering the journal) and
    /// starts its background thread.
    ///
    /// # Errors
    /// As [`Pipe::with_journal`]; an [`Error::Store`] if the thread cannot be spawned.
    pub fn start_journaled(data: S, journal: S, config: Config) -> Result<Self, Error> {
        Self::from_pipe(Pipe::with_journal(data, journal, config)?)
    }

    /// Starts the background thread of an existing pipe.
    ///
    /// # Errors
    /// An [`Error::Store`] if the thread cannot be spawned.
    pub fn from_pipe(pipe: Pipe<'static, S>) -> Result<Self, Error> {
        let background = Arc::new(StdSignal::new());
        pipe.set_background_waker(&std::task::Waker::from(Arc::clone(&background)));
        let signals = [Arc::new(StdSignal::new()), background];
        let shared = Arc::new(BlockingPipe::new(pipe, StdClock, signals));
        let runner = Arc::clone(&shared);
        let background = std::thread::Builder::new()
            .name("chunkpipe-background".into())
            // A panic in a step (a store that panics, or a bug) poisons the pipe and wakes
            // everyone with the error before it ends the thread.
            .spawn(move || runner.run_background())
            .map_err(|_| {
                Error::Store(crate::StoreError::new(
                    crate::StoreErrorKind::Other,
                    crate::Op::Open,
                ))
            })?;
        Ok(ThreadedPipe {
            shared,
            background: std::sync::Mutex::new(Some(background)),
        })
    }

    /// Commits and syncs everything written, stops the background thread, waits for it to end
    /// and reports the last error. Takes `&self`, so a pipe shared in an `Arc` can be closed
    /// through any clone; later calls only report. Then the stores are released
    /// ([`ChunkStore::release`]: a file backend unlocks its files), so the pipe can be opened
    /// again while this handle still lives.
    ///
    /// # Errors
    /// [`Error::Poisoned`] if any batch failed.
    pub fn close(&self) -> Result<(), Error> {
        let result = self.shared.close();
        let thread = (self.background.lock())
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            // The thread returns once close has nothing left to wait for; a panic ended it
            // early only after poisoning the pipe, so `result` holds the error.
            let _ = thread.join();
            // No step runs any more, and none will.
            self.shared.pipe().release_stores();
        }
        result
    }
}

impl<S: ChunkStore + Send + Sync + 'static> core::ops::Deref for ThreadedPipe<S> {
    type Target = StdPipe<S>;

    fn deref(&self) -> &Self::Target {
        &self.shared
    }
}

impl<S: ChunkStore + Send + Sync + 'static> Drop for ThreadedPipe<S> {
    fn drop(&mut self) {
        // Best effort: flush what was written; errors were reported to the waiters already.
        let _ = self.close();
    }
}

impl<S: ChunkStore + Send + Sync + 'static> core::fmt::Debug for ThreadedPipe<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ThreadedPipe")
            .field("pipe", &self.shared.pipe())
            .finish_non_exhaustive()
    }
}
