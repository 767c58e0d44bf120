//! [`Pipe`]: the sans-IO state machine. Writes join the open batch; [`Pipe::flush_step`]
//! commits it, [`Pipe::background_step`] does the rest (`engine/`).
//!
//! The pipe keeps staging, epochs and reads (`state.rs`, `read.rs`, `tx.rs`, `grow.rs`); how a
//! batch becomes durable is its engine's, one per durability mode.

use core::task::{Poll, Waker};

use crate::engine::atomic::AtomicEngine;
use crate::engine::off::OffEngine;
use crate::engine::{self, Engine, Wake};
use crate::journal::recover::{self, RecoveryReport};
use crate::journal::scan::ScanBuffers;
use crate::staging::{self, StagingLayout, StagingMemory};
use crate::state::{PipeStats, Shared, State, StateGuard};
use crate::waiters::Durable;
use crate::{ChunkStore, Config, Epoch, Error, Instant, Journal, Op, StoreError, StoreErrorKind};

/// A durable, group-committing write pipeline over one [`ChunkStore`], as a state machine.
///
/// Methods never block and never start threads: writes copy into staging and return the epoch
/// of the batch they joined, and someone calls [`flush_step`](Pipe::flush_step) to make
/// batches durable — the thread waiting for durability (the blocking layer,
/// [`BlockingPipe`](crate::BlockingPipe), does this), a main loop, the simulator — and
/// [`background_step`](Pipe::background_step) for the rest.
///
/// # Visibility
/// A write is visible to reads as soon as it has joined a batch (like a file's page cache), all
/// of it at once: reads never see part of a write or transaction. Reads prefer staged bytes
/// over the store, so they never see a chunk while it is overwritten in place. Once the pipe is
/// poisoned, reads fail too: a failed batch is never read back as if it were applied.
///
/// ```
/// use chunkpipe_core::{Config, Instant, Journal, MemStore, Pipe};
/// let config = Config::new().with_chunk_size(8).with_initial_chunks(4).with_staging_chunks(4);
/// let pipe = Pipe::new(MemStore::new(), config.with_journal(Journal::Off)).unwrap();
/// let epoch = pipe.try_write(1, b"8 bytes!").unwrap();
/// assert!(pipe.poll_durable(epoch).is_pending());
/// pipe.request_durable(epoch);
/// assert_eq!(pipe.flush_step(Instant::ZERO).unwrap().durable, Some(epoch));
/// assert!(pipe.poll_durable(epoch).is_ready());
/// assert_eq!(pipe.read(1, 1).unwrap(), b"8 bytes!");
/// ```
pub struct Pipe<'a, S> {
    pub(crate) shared: Shared<'a, S>,
    pub(crate) engine: Engine<'a, S>,
    /// What recovery found when the pipe was opened (`Journal::Atomic`).
    recovery: Option<RecoveryReport>,
    // Declared last: the regions in `shared` and `engine` point into this memory.
    _memory: StagingMemory<'a>,
}

impl<'a, S: ChunkStore> Pipe<'a, S> {
    /// A `Journal::Off` pipe over `store` whose staging lives in `memory` (at least
    /// [`Config::staging_memory_bytes`] long). No allocation.
    ///
    /// # Errors
    /// As [`Pipe::from_parts`].
    pub fn new_in(store: S, config: Config, memory: StagingMemory<'a>) -> Result<Self, Error> {
        Self::from_parts(store, None, config, memory)
    }

    /// A pipe over the data store `data` and, for `Journal::Atomic`, the journal store
    /// `journal`, with staging in `memory`. No allocation (but for the chunk checksum table,
    /// [`Config::chunk_checksums`]).
    ///
    /// `Journal::Atomic`: as [`Config::create`] allows, a new pipe is created — `data` grown to
    /// [`Config::initial_chunks`], the journal formatted (written once, all of it) and synced —
    /// or an existing one is recovered: every valid record after its checkpoint is replayed into
    /// the data store, in epoch order, and epochs continue after the last one; damage is an
    /// error or, with [`Recovery::PointInTime`](crate::Recovery), reported in
    /// [`recovery`](Pipe::recovery). `Journal::Off`: a data store shorter than
    /// `initial_chunks` is grown to it (nothing on a bare store marks a pipe: a file backend's
    /// metadata decides whether one exists).
    ///
    /// # Errors
    /// An invalid config or too small memory, or a journal store given or missing against
    /// `config.journal` ([`Error::InvalidInput`]); a data store whose length is not a whole
    /// number of chunks ([`Error::InvalidInput`]); a journal of another format, chunk size or
    /// checksum setting ([`Error::Mismatch`]); [`Error::AlreadyExists`], [`Error::NotFound`] as
    /// `config.create` says; damage ([`Error::Corrupt`]); a store error.
    pub fn from_parts(
        data: S,
        journal: Option<S>,
        config: Config,
        memory: StagingMemory<'a>,
    ) -> Result<Self, Error> {
        config.validate()?;
        let layout = StagingLayout::for_config(&config)?;
        let staging::StagingParts {
            pool,
            plans,
            index,
            mut header,
            mut scratch,
        } = staging::carve(&memory, &layout)?;
        let (engine, recovery, durable) = match (config.journal, journal) {
            (Journal::Atomic, Some(journal)) => {
                let mut buffers = ScanBuffers {
                    header: &mut header,
                    chunk: &mut scratch,
                    check_payload: true,
                };
                let opened = recover::open(&data, &journal, &config, &mut buffers)?;
                let (report, durable) = (opened.report, opened.report.last_epoch);
                crate::events::recovered(&report);
                let engine = AtomicEngine::new(journal, opened, header, durable);
                (Engine::Atomic(engine), Some(report), durable)
            }
            (Journal::Off, None) => {
                prepare_store(&data, &config)?;
                (Engine::Off(OffEngine::new(Epoch::NONE)), None, Epoch::NONE)
            }
            (Journal::Off, Some(_)) => {
                return Err(Error::InvalidInput("Journal::Off takes no journal store"));
            }
            _ => return Err(Error::InvalidInput("Journal::Atomic needs a journal store")),
        };
        let len_chunks = data.len()? / config.chunk_bytes();
        let state = State::opened(pool, index, plans, durable, len_chunks);
        Ok(Pipe {
            shared: Shared::new(data, config, state),
            engine,
            recovery,
            _memory: memory,
        })
    }

    /// What recovery found and did when this pipe was opened: records replayed, the last
    /// epoch, a torn tail dropped, a superblock copy rewritten, and (with
    /// [`Recovery::PointInTime`](crate::Recovery)) the damage and the epochs dropped. `None`
    /// for `Journal::Off`.
    pub fn recovery(&self) -> Option<RecoveryReport> {
        self.recovery
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The data store.
    pub fn store(&self) -> &S {
        &self.shared.data
    }

    /// The journal store (`Journal::Atomic`).
    pub fn journal(&self) -> Option<&S> {
        match &self.engine {
            Engine::Atomic(atomic) => Some(&atomic.journal),
            Engine::Off(_) => None,
        }
    }

    /// Length in chunks. Grows only when a grow request has completed.
    pub fn len_chunks(&self) -> u64 {
        self.lock().len_chunks
    }

    /// The newest durable epoch: every batch up to it is durable. [`Epoch::NONE`] before the
    /// first batch is published.
    pub fn durable_epoch(&self) -> Epoch {
        self.lock().durable
    }

    /// The error that poisoned the pipe, if any.
    pub fn poisoned(&self) -> Option<Error> {
        self.lock().latch.check().err()
    }

    /// What the pipe has done so far.
    pub fn stats(&self) -> PipeStats {
        let mut stats = self.lock().stats;
        stats.data_weak_syncs = self.shared.data.weak_syncs();
        stats.journal_weak_syncs = self.journal().map_or(0, ChunkStore::weak_syncs);
        stats
    }

    /// Copies `data` (a whole number of chunks) into staging for chunks `index..` and joins the
    /// open batch; returns the batch's epoch. All of `data` joins one batch: it becomes durable,
    /// and visible, together.
    ///
    /// # Errors
    /// [`Error::WouldBlock`] when staging has too few free slots (nothing was staged);
    /// [`Error::TooLarge`] when `data` has more chunks than staging; bad length or range;
    /// [`Error::Poisoned`], [`Error::Closed`].
    pub fn try_write(&self, index: u64, data: &[u8]) -> Result<Epoch, Error> {
        self.write_noting(index, data).map(|(epoch, _)| epoch)
    }

    /// [`try_write`](Pipe::try_write), also saying whom to wake: the background step, if it
    /// slept with nothing to do.
    pub(crate) fn write_noting(&self, index: u64, data: &[u8]) -> Result<(Epoch, Wake), Error> {
        let mut state = self.lock();
        let count = self
            .shared
            .check_range(index, data.len(), state.len_chunks)?;
        self.shared.check_fits_staging(count)?;
        state.check_writable()?;
        if u64::from(state.pool.available()) < count {
            return Err(state.staging_full());
        }
        let chunk_size = self.shared.config.chunk_size as usize;
        for (chunk, bytes) in (index..).zip(data.chunks_exact(chunk_size)) {
            let slot = state.pool.take_filled(chunk, bytes, false);
            state.join_open(slot);
        }
        let wake = Wake {
            background: state.rouse_background(),
            ..Wake::default()
        };
        Ok((state.open.epoch, wake))
    }

    /// Commits the open batch — seals it, writes it (the journal record with `Journal::Atomic`,
    /// in place with `Journal::Off`), makes it durable with one `sync` and publishes its epoch
    /// — and handles pending grow requests. At most one batch per call; one commit runs at a
    /// time. With `Journal::Off` the sync runs here only if someone asked for durability
    /// ([`request_durable`](Pipe::request_durable), [`request_sync`](Pipe::request_sync),
    /// closing); otherwise the batch is written in place (freeing its staging) and
    /// [`background_step`](Pipe::background_step) syncs it. Returns whom to wake.
    ///
    /// Blocks only inside store calls.
    ///
    /// # Errors
    /// [`Error::WouldBlock`] while another commit runs (it commits this batch too, or the next
    /// one does); [`Error::Poisoned`] when this or an earlier step failed: the batch and every
    /// later one fail, and the pipe accepts no more writes.
    pub fn flush_step(&self, now: Instant) -> Result<Wake, Error> {
        self.engine.flush_step(&self.shared, now)
    }

    /// The work that would otherwise delay a commit: `Journal::Atomic` writes published
    /// batches in place (freeing their staging), paces their writeback and takes checkpoints;
    /// `Journal::Off` syncs what flush steps wrote in place without a sync; both commit a batch
    /// nobody has led for `flush_interval`. Call it beside the flush steps — from a second
    /// thread (under `std`, [`ThreadedPipe`](crate::ThreadedPipe) runs one) or a main loop;
    /// flush steps go on meanwhile. Returns whom to wake.
    ///
    /// A pipe whose background step never runs still works: a commit writes published batches
    /// in place itself when they hold every spare batch plan, and checkpoints itself when it
    /// needs a journal half no checkpoint freed. But nothing idle is committed or checkpointed.
    ///
    /// # Errors
    /// [`Error::Poisoned`] when the pipe is poisoned or this step's work failed.
    pub fn background_step(&self, now: Instant) -> Result<Wake, Error> {
        self.engine.background_step(&self.shared, now)
    }

    /// When a flush step next has work: `Some(now)` or later (a batch held open for
    /// `max_batch_delay`), `None` with nothing to commit.
    pub fn next_flush_at(&self, now: Instant) -> Option<Instant> {
        engine::next_flush_at(&self.lock(), &self.shared.config, now)
    }

    /// When the background step next has work: `Some(now)` or later, `None` while it has
    /// nothing to do until a commit hands it some.
    pub fn next_background_at(&self, now: Instant) -> Option<Instant> {
        let config = &self.shared.config;
        self.engine
            .next_background_at(&mut self.lock(), config, now)
    }

    /// For a background runner going to sleep: when to wake up next (`None`: not until told).
    /// With nothing to do, notes that the background sleeps, so that the next write or publish
    /// that gives it work says to wake it ([`State::rouse_background`]). The look and the note
    /// are one critical section: no write slips in between unnoticed.
    ///
    /// [`State::rouse_background`]: crate::state::State::rouse_background
    pub(crate) fn park_background(&self, now: Instant) -> Option<Instant> {
        let mut state = self.lock();
        let next = (self.engine).next_background_at(&mut state, &self.shared.config, now);
        state.background_idle = next.is_none();
        next
    }

    /// Whether `epoch` is durable: `Ready(Ok)` once it is, `Ready(Err)` if its batch (or an
    /// earlier one) failed, `Pending` while it is on its way.
    ///
    /// Never `Ready(Ok)` for a write that was not written and synced.
    ///
    /// # Errors
    /// [`Error::Poisoned`]; [`Error::InvalidInput`] for an epoch that was never handed out (no
    /// flush step would ever produce it).
    pub fn poll_durable(&self, epoch: Epoch) -> Poll<Result<(), Error>> {
        self.lock().poll_durable(epoch)
    }

    /// Asks for `epoch` to be made durable now: the flush step that writes its batch also syncs
    /// it, and a batch held open for `max_batch_delay` is sealed at once. (A waiter asks this
    /// once before it waits.)
    pub fn request_durable(&self, epoch: Epoch) {
        self.lock().ask_durable(epoch);
    }

    /// A future that resolves once `epoch` is durable — `Ok(())`, or the error
    /// [`poll_durable`](Pipe::poll_durable) would give — woken by the step that publishes it.
    /// No allocation: the future carries its own place in the pipe's waiter list.
    ///
    /// Its first poll asks for `epoch` to be made durable now, and the commit is led by the
    /// **background step**, never by the waiting task (a task must not block its executor on
    /// a sync): the background step commits a batch an async waiter wants as soon as a flush
    /// step would. So whoever runs the background must be woken when a future asks:
    /// [`ThreadedPipe`](crate::ThreadedPipe) does this for its thread; an async runtime's
    /// driver task registers itself with [`set_background_waker`](Pipe::set_background_waker).
    ///
    /// ```
    /// use chunkpipe_core::{Config, Instant, MemStore, Pipe};
    /// use std::task::{Context, Poll, Waker};
    /// let config = Config::new().with_chunk_size(512).with_initial_chunks(4).with_staging_chunks(8).with_journal_bytes(1 << 20);
    /// let pipe = Pipe::with_journal(MemStore::new(), MemStore::new(), config).unwrap();
    /// let epoch = pipe.try_write(0, &[1; 512]).unwrap();
    ///
    /// let mut durable = std::pin::pin!(pipe.durable(epoch));
    /// let mut cx = Context::from_waker(Waker::noop());
    /// assert!(durable.as_mut().poll(&mut cx).is_pending()); // asks for the commit
    /// pipe.background_step(Instant::ZERO).unwrap(); // the background leads it
    /// assert_eq!(durable.as_mut().poll(&mut cx), Poll::Ready(Ok(())));
    /// ```
    pub fn durable(&self, epoch: Epoch) -> Durable<'_, 'a, S> {
        Durable::new(self, epoch)
    }

    /// Registers the waker of whoever runs [`background_step`](Pipe::background_step) (a
    /// driver task, a thread's signal): it is woken when an async waiter
    /// ([`durable`](Pipe::durable)) asks for an epoch no async waiter asked for before, since
    /// the background step leads the commits async waiters need. Replaces the waker registered
    /// before. The driver then runs `background_step` until it makes no progress, and sleeps
    /// until [`next_background_at`](Pipe::next_background_at) or this waker.
    pub fn set_background_waker(&self, waker: &Waker) {
        crate::waiters::keep_waker(&mut self.lock().background_waker, waker);
    }

    /// Asks for everything written so far to be made durable now (see
    /// [`request_durable`](Pipe::request_durable)). Returns the epoch to wait for, or `None`
    /// when everything is already durable.
    ///
    /// # Errors
    /// [`Error::Poisoned`].
    pub fn request_sync(&self) -> Result<Option<Epoch>, Error> {
        let mut state = self.lock();
        state.latch.check()?;
        let issued = state.issued();
        if issued <= state.durable {
            return Ok(None);
        }
        state.ask_durable(issued);
        Ok(Some(issued))
    }

    /// Stops accepting writes, and reports whether everything accepted is durable (and, with
    /// `Journal::Atomic`, in place and checkpointed): `Pending` while steps still have work.
    /// The first call wakes the [background waker](Pipe::set_background_waker) — closing
    /// gives the background work (everything accepted must be committed and settled) — and
    /// async writers waiting for staging ([`write_async`](Pipe::write_async): `Closed`).
    ///
    /// # Errors
    /// [`Error::Poisoned`] when a batch failed.
    pub fn try_close(&self) -> Poll<Result<(), Error>> {
        let mut state = self.lock();
        if !core::mem::replace(&mut state.closing, true) {
            let background = state.background_waker.clone();
            drop(state);
            if let Some(background) = background {
                background.wake();
            }
            // Async writers waiting for staging: the pipe takes no more writes.
            self.shared.wake_waiters(false);
            state = self.lock();
        }
        state.latch.check()?;
        let grow_pending = state.grow.completed < state.grow.requested;
        if state.all_published() && !grow_pending && self.engine.settled(&state) {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }

    /// Tells the stores that nothing will touch them again ([`ChunkStore::release`]): for the
    /// owner of a pipe whose close returned and whose background runner has returned.
    #[cfg(feature = "std")]
    pub(crate) fn release_stores(&self) {
        self.shared.data.release();
        if let Some(journal) = self.journal() {
            journal.release();
        }
    }

    /// Whether [`try_close`](Pipe::try_close) was called.
    pub fn closing(&self) -> bool {
        self.lock().closing
    }

    /// Poisons the pipe with [`StoreErrorKind::Internal`] unless it already is: nothing in
    /// flight will ever be published.
    pub fn fail_stop(&self) {
        self.shared
            .trip(StoreError::new(StoreErrorKind::Internal, Op::Sync));
        self.shared.wake_waiters(true);
    }

    /// The state lock, for the other modules of the core.
    pub(crate) fn lock(&self) -> StateGuard<'_, 'a> {
        self.shared.lock()
    }
}

/// `Journal::Off`: checks the store's length against the config and grows a short store.
fn prepare_store<S: ChunkStore>(store: &S, config: &Config) -> Result<(), Error> {
    let len_bytes = store.len()?;
    if len_bytes % config.chunk_bytes() != 0 {
        return Err(Error::InvalidInput(
            "store length is not a multiple of chunk_size",
        ));
    }
    store.grow(config.initial_chunks * config.chunk_bytes())?;
    Ok(())
}

#[cfg(feature = "alloc")]
impl<S: ChunkStore> Pipe<'static, S> {
    /// A `Journal::Off` pipe over `store` with staging memory it allocates itself.
    ///
    /// # Errors
    /// As [`Pipe::from_parts`].
    pub fn new(store: S, config: Config) -> Result<Self, Error> {
        config.validate()?;
        let memory = StagingMemory::allocate(config.staging_memory_bytes());
        Self::from_parts(store, None, config, memory)
    }

    /// A `Journal::Atomic` pipe over `data` and `journal` with staging memory it allocates.
    ///
    /// # Errors
    /// As [`Pipe::from_parts`].
    pub fn with_journal(data: S, journal: S, config: Config) -> Result<Self, Error> {
        config.validate()?;
        let memory = StagingMemory::allocate(config.staging_memory_bytes());
        Self::from_parts(data, Some(journal), config, memory)
    }
}

impl Config {
    /// Bytes of staging memory a pipe with this config needs (0 for an invalid config). This is
    /// all the RAM a pipe uses besides the [`Pipe`] value itself, the stack and (with
    /// [`chunk_checksums`](Config::chunk_checksums)) the checksum table: there is no other
    /// queue or heap allocation. With `S` = `staging_chunks` and `C` = `chunk_size`:
    ///
    /// | what | bytes |
    /// |---|---|
    /// | staging slots (the data) | `S × C` |
    /// | journal record header buffer | `⌈(44 + 12 × S) / 512⌉ × 512` |
    /// | scratch chunk (recovery, formatting) | `C` |
    /// | slot records, four batch plans | `5 × S × 16` |
    /// | chunk index (open addressing, at most half full) | `next_power_of_two(2 × S) × 16` |
    /// | alignment slack | `7` |
    ///
    /// For example 4 slots of 64 bytes: `256 + 512 + 64 + 320 + 128 + 7 = 1287` bytes; the
    /// default 1024 slots of 4 KiB: 4 MiB of data plus 128.5 KiB of bookkeeping. The checksum
    /// table adds 4 bytes per data chunk on the heap (1 MiB per GiB of 4 KiB chunks). The
    /// [`Pipe`] value holds the config, the locks, the counters and the recovery report (about
    /// 1 KiB, under 1.25 KiB with or without `std`; tests check both), and a step uses under
    /// 5 KiB of stack (the 256-entry buffer list of a journal append, a 512-byte superblock).
    ///
    /// ```
    /// use chunkpipe_core::Config;
    /// let config = Config::new().with_chunk_size(64).with_staging_chunks(4);
    /// assert_eq!(config.staging_memory_bytes(), 1287);
    /// ```
    pub fn staging_memory_bytes(&self) -> usize {
        StagingLayout::for_config(self).map_or(0, |l| l.total_bytes())
    }
}

impl<S> core::fmt::Debug for Pipe<'_, S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("Pipe")
            .field("config", &self.shared.config)
            .field("len_chunks", &state.len_chunks)
            .field("durable", &state.durable)
            .field("issued", &state.issued())
            .field("poison", &state.latch.failure())
            .finish_non_exhaustive()
    }
}
