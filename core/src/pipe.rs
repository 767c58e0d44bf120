//! [`Pipe`]: the sans-IO state machine. Writes join the open batch; [`Pipe::flush_step`] (in
//! `flush.rs`) seals, writes, syncs and publishes it.
//!
//! All bookkeeping lives in one [`State`] behind one lock, held only for O(1)-ish work (and the
//! copy of a write into staging), never across a store call. Which epoch a write gets and which
//! batch is sealed are decided under that lock, so a write can never receive the epoch of a
//! batch that was already sealed without it.

use core::task::Poll;

use crate::index::ChunkIndex;
use crate::journal::CheckpointTarget;
use crate::journal::JournalLog;
use crate::journal::format::Superblock;
use crate::journal::recover::{self, RecoveryReport};
use crate::journal::scan::ScanBuffers;
use crate::journal::table::ChecksumTable;
use crate::read::{Mirrored, ReadMirror};
use crate::staging::{
    self, PlanEntry, Region, SealedBatch, SlotPool, StagingLayout, StagingMemory,
};
use crate::sync::{Mutex, MutexGuard};
use crate::{ChunkStore, Config, Epoch, Error, Instant, Journal, Op, StoreError, StoreErrorKind};

/// Counters describing what a pipe has done, for tuning and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PipeStats {
    /// Batches published.
    pub batches: u64,
    /// Chunks in published batches (before dropping superseded writes).
    pub chunks: u64,
    /// Calls to the stores' `sync` and `barrier` made by flush, sync and checkpoint steps (a
    /// checkpoint counts two; a batch whose write failed, none).
    pub syncs: u64,
    /// Bytes of journal records appended (`Journal::Atomic`).
    pub journal_bytes: u64,
    /// Bytes written in place to the data store (superseded writes are not written).
    pub in_place_bytes: u64,
}

impl PipeStats {
    /// Bytes the pipe wrote to its stores per byte of published chunks: about 2 with
    /// `Journal::Atomic` (journal + in place), at most 1 with `Journal::Off`; `None` before
    /// anything was published.
    pub fn write_amplification(&self, chunk_size: u32) -> Option<f64> {
        let published = self.chunks * u64::from(chunk_size);
        (published > 0)
            .then(|| (self.journal_bytes + self.in_place_bytes) as f64 / published as f64)
    }
}

/// The batch writers are joining.
pub(crate) struct OpenBatch<'a> {
    pub(crate) plan: Region<'a, PlanEntry>,
    pub(crate) len: usize,
    pub(crate) epoch: Epoch,
    /// When the flusher first saw this batch non-empty (for `max_batch_delay`).
    pub(crate) seen_at: Option<Instant>,
}

impl<'a> OpenBatch<'a> {
    /// An empty batch that will get `epoch`.
    fn empty(plan: Region<'a, PlanEntry>, epoch: Epoch) -> Self {
        OpenBatch {
            plan,
            len: 0,
            epoch,
            seen_at: None,
        }
    }
}

/// Pending and finished grow requests.
#[derive(Default)]
pub(crate) struct GrowState {
    /// Requests issued so far; a request is identified by its sequence number.
    pub(crate) requested: u64,
    /// Every request up to this one has been handled (successfully or not).
    pub(crate) completed: u64,
    /// The length in chunks the pending requests add up to.
    pub(crate) target_chunks: u64,
    /// The most recent grow failure.
    pub(crate) last_error: Option<StoreError>,
}

/// Everything the core lock protects.
pub(crate) struct State<'a> {
    pub(crate) pool: SlotPool<'a>,
    pub(crate) index: ChunkIndex<'a>,
    pub(crate) open: OpenBatch<'a>,
    /// Plan memory for the next batches to seal: one plan is always the open batch's, and each
    /// sealed batch holds one until it is retired.
    pub(crate) spare_plans: [Option<Region<'a, PlanEntry>>; staging::PLANS - 1],
    pub(crate) durable: Epoch,
    pub(crate) len_chunks: u64,
    pub(crate) grow: GrowState,
    /// The failure that poisoned the pipe (sticky).
    pub(crate) poison: Option<StoreError>,
    pub(crate) closing: bool,
    /// A `sync` asked for the open batch to be sealed without waiting for `max_batch_delay`.
    pub(crate) sync_requested: bool,
    /// A write or transaction found staging full since the batch opened: holding the batch open
    /// to gather writers is pointless then, since they cannot join until it is published.
    pub(crate) writer_blocked: bool,
    /// `Journal::Off`: a write or transaction found staging full and no flush step has freed
    /// staging since, so the next one that does must wake it (otherwise the sync's publish
    /// does).
    pub(crate) staging_wanted: bool,
    /// `Journal::Atomic`: published batches still to be written in place.
    pub(crate) apply: ApplyQueue<'a>,
    /// When the last batch was published (for the idle checkpoint).
    pub(crate) last_publish_at: Option<Instant>,
    /// `Journal::Atomic`: what the journal owes a checkpoint.
    pub(crate) checkpoints: CheckpointState,
    /// `Journal::Off`: batches written in place whose sync is owed.
    pub(crate) unsynced: Unsynced,
    pub(crate) stats: PipeStats,
    /// What the read mirror was last told (`read.rs`).
    pub(crate) mirrored: Mirrored,
}

/// `Journal::Atomic`: where checkpoints stand, for the flush step and `checkpoint_step` alike.
#[derive(Debug, Default)]
pub(crate) struct CheckpointState {
    /// The newest epoch written in place (a checkpoint may cover up to it).
    pub(crate) applied: Epoch,
    /// The epoch the durable superblock checkpoints.
    pub(crate) checkpointed: Epoch,
    /// The checkpoint that frees the half appends left, until it is taken.
    pub(crate) half_to_free: Option<CheckpointTarget>,
    /// The checkpoint covering every record appended so far.
    pub(crate) covering_all: Option<CheckpointTarget>,
    /// Someone runs [`Pipe::checkpoint_step`], so applying published batches in place and
    /// idle checkpoints are left to it.
    pub(crate) in_background: bool,
}

impl CheckpointState {
    /// The checkpoint that frees the half appends left, once every batch in that half is
    /// written in place (before that, a checkpoint cannot cover them).
    pub(crate) fn half_due(&self) -> Option<CheckpointTarget> {
        self.half_to_free
            .filter(|target| self.applied >= target.epoch)
    }
}

/// `Journal::Off`: batches written in place (their staging freed) that no finished sync covers
/// yet. Epochs are consecutive, so `written - durable` batches are owed a sync.
#[derive(Debug, Default)]
pub(crate) struct Unsynced {
    /// The newest epoch written in place (`durable` when nothing is owed).
    pub(crate) written: Epoch,
    /// Chunks in the batches written in place since the last sync started (before dropping
    /// superseded writes).
    pub(crate) chunks: u64,
}

impl Unsynced {
    /// Nothing owed, with `durable` the durable epoch.
    fn at(durable: Epoch) -> Self {
        Unsynced {
            written: durable,
            ..Unsynced::default()
        }
    }

    /// The most batches written in place ahead of the syncs: one being synced, one written
    /// meanwhile. Bounds the unsynced data in the store (beyond what staging holds).
    pub(crate) const MAX_BATCHES: u64 = 2;
}

/// `Journal::Atomic`: published batches on their way into the data file, oldest first. Each
/// keeps its staging slots (where reads find its chunks) until it is written in place.
///
/// `PLANS - 1` entries suffice: one of the batch plans is always the open batch's, and every
/// sealed batch holds one of the others.
pub(crate) struct ApplyQueue<'a> {
    waiting: [Option<(SealedBatch<'a>, Epoch)>; staging::PLANS - 1],
    /// The one apply running took the oldest batch out and is writing it.
    in_flight: bool,
}

impl<'a> ApplyQueue<'a> {
    const EMPTY: Self = ApplyQueue {
        waiting: [const { None }; staging::PLANS - 1],
        in_flight: false,
    };

    /// Nothing is waiting or being written.
    pub(crate) fn is_empty(&self) -> bool {
        !self.in_flight && self.waiting[0].is_none()
    }

    /// Batches wait that no apply has taken yet.
    pub(crate) fn has_waiting(&self) -> bool {
        self.waiting[0].is_some()
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
    pub(crate) fn take_oldest(&mut self) -> Option<(SealedBatch<'a>, Epoch)> {
        let oldest = self.waiting[0].take()?;
        self.waiting.rotate_left(1);
        self.in_flight = true;
        Some(oldest)
    }

    /// The batch [`take_oldest`](Self::take_oldest) handed out is written and retired.
    pub(crate) fn finish(&mut self) {
        self.in_flight = false;
    }
}

impl<'a> State<'a> {
    /// The state of a pipe just opened: `durable` published, `len_chunks` long.
    fn opened(
        pool: SlotPool<'a>,
        index: ChunkIndex<'a>,
        (open_plan, spare_plans): (
            Region<'a, PlanEntry>,
            [Region<'a, PlanEntry>; staging::PLANS - 1],
        ),
        durable: Epoch,
        len_chunks: u64,
    ) -> Self {
        State {
            pool,
            index,
            open: OpenBatch::empty(open_plan, durable.next()),
            spare_plans: spare_plans.map(Some),
            durable,
            len_chunks,
            grow: GrowState::default(),
            poison: None,
            closing: false,
            sync_requested: false,
            writer_blocked: false,
            staging_wanted: false,
            apply: ApplyQueue::EMPTY,
            last_publish_at: None,
            checkpoints: CheckpointState {
                applied: durable,
                checkpointed: durable,
                ..CheckpointState::default()
            },
            unsynced: Unsynced::at(durable),
            stats: PipeStats::default(),
            mirrored: Mirrored::START,
        }
    }

    /// `Journal::Atomic`: the checkpoint covering every record appended so far.
    fn with_covering_all(mut self, covering_all: Option<CheckpointTarget>) -> Self {
        self.checkpoints.covering_all = covering_all;
        self
    }

    /// Takes plan memory for the batch to seal next, if any is spare.
    pub(crate) fn take_spare_plan(&mut self) -> Option<Region<'a, PlanEntry>> {
        self.spare_plans.iter_mut().find_map(Option::take)
    }

    /// Gives back the plan memory of a retired batch.
    pub(crate) fn put_spare_plan(&mut self, plan: Region<'a, PlanEntry>) {
        if let Some(entry) = self.spare_plans.iter_mut().find(|entry| entry.is_none()) {
            *entry = Some(plan);
        }
    }

    /// Whether a flush step writes the published batches in place itself rather than leave
    /// them to [`Pipe::checkpoint_step`]: when nobody runs that, on close (which then finishes
    /// without it), when the batches waiting hold every spare plan (nothing could be sealed),
    /// or when there is no batch to commit meanwhile (the flusher would idle; writers just
    /// woken are still on their way).
    pub(crate) fn flush_step_applies(&self) -> bool {
        !self.checkpoints.in_background
            || self.closing
            || self.spare_plans.iter().all(Option::is_none)
            || self.open.len == 0
    }

    /// A write or transaction found staging full: notes it for the flush step and returns the
    /// error to give it.
    pub(crate) fn staging_full(&mut self) -> Error {
        self.writer_blocked = true;
        self.staging_wanted = true;
        Error::WouldBlock
    }

    /// `Journal::Off`: batches are written in place that no finished sync covers.
    pub(crate) fn sync_owed(&self) -> bool {
        self.unsynced.written > self.durable
    }

    /// `Journal::Off`: whether a flush step syncs what it wrote in place itself rather than
    /// leave the sync to [`Pipe::checkpoint_step`]: when nobody runs that, or on close.
    pub(crate) fn flush_step_syncs(&self) -> bool {
        !self.checkpoints.in_background || self.closing
    }

    /// `Journal::Off`: the flush step waits for a sync before writing another batch in place.
    pub(crate) fn in_place_ahead(&self) -> bool {
        self.sync_owed()
            && self.unsynced.written.get() - self.durable.get() >= Unsynced::MAX_BATCHES
    }

    /// The journal holds records no checkpoint covers (never in `Journal::Off`, which has no
    /// journal position to cover).
    pub(crate) fn journal_dirty(&self) -> bool {
        self.checkpoints.covering_all.is_some() && self.durable > self.checkpoints.checkpointed
    }

    /// Every epoch handed to a write is published: no batch is open or being committed.
    pub(crate) fn all_published(&self) -> bool {
        self.issued() <= self.durable
    }

    /// The newest epoch handed to any write.
    pub(crate) fn issued(&self) -> Epoch {
        if self.open.len > 0 {
            self.open.epoch
        } else {
            Epoch::new(self.open.epoch.get() - 1)
        }
    }

    pub(crate) fn check_writable(&self) -> Result<(), Error> {
        if let Some(e) = self.poison {
            return Err(Error::Poisoned(e));
        }
        if self.closing {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Appends a `HELD` slot to the open batch and makes it the newest value of its chunk.
    pub(crate) fn join_open(&mut self, slot: u32) {
        let chunk = self.pool.chunk_of(slot);
        self.pool.open(slot);
        let order = self.open.len as u32;
        self.open.plan[self.open.len] = PlanEntry::new(chunk, slot, order);
        self.open.len += 1;
        self.index.insert(chunk, slot);
    }
}

/// The state lock's guard. Dropping it first refreshes the read mirror, then unlocks: the
/// mirror never lags a release that another thread could observe.
pub(crate) struct StateGuard<'p, 'a> {
    guard: MutexGuard<'p, State<'a>>,
    mirror: &'p ReadMirror,
}

impl<'a> core::ops::Deref for StateGuard<'_, 'a> {
    type Target = State<'a>;

    fn deref(&self) -> &State<'a> {
        &self.guard
    }
}

impl<'a> core::ops::DerefMut for StateGuard<'_, 'a> {
    fn deref_mut(&mut self) -> &mut State<'a> {
        &mut self.guard
    }
}

impl Drop for StateGuard<'_, '_> {
    fn drop(&mut self) {
        self.mirror.refresh(&mut self.guard);
    }
}

/// What only the flush step touches, behind its own lock (held for the whole step).
pub(crate) struct FlushState<'a> {
    /// `Journal::Atomic`: the journal's append position and generation.
    pub(crate) journal: Option<JournalLog>,
    /// Buffer for a journal record's header block.
    pub(crate) header: Region<'a, u8>,
    /// One chunk of scratch space.
    pub(crate) scratch: Region<'a, u8>,
}

/// A durable, group-committing write pipeline over one [`ChunkStore`], as a state machine.
///
/// Methods never block and never start threads: writes copy into staging and return the epoch
/// of the batch they joined, and someone — a flusher thread, a main loop, the simulator — calls
/// [`flush_step`](Pipe::flush_step) to make batches durable. The blocking API
/// ([`BlockingPipe`](crate::BlockingPipe)) is a thin layer over this one.
///
/// # Visibility
/// A write is visible to reads as soon as it has joined a batch (like a file's page cache), all
/// of it at once: reads never see part of a write or transaction. Reads prefer staged bytes
/// over the store, so they never see a chunk while the flusher overwrites it in place. Once the
/// pipe is poisoned, reads fail too: a failed batch is never read back as if it were applied.
///
/// ```
/// use chunkpipe_core::{Config, Instant, Journal, MemStore, Pipe};
/// let config = Config::new().with_chunk_size(8).with_initial_chunks(4).with_staging_chunks(4);
/// let pipe = Pipe::new(MemStore::new(), config.with_journal(Journal::Off)).unwrap();
/// let epoch = pipe.try_write(1, b"8 bytes!").unwrap();
/// assert!(pipe.poll_durable(epoch).is_pending());
/// assert_eq!(pipe.flush_step(Instant::ZERO), Ok(Some(epoch)));
/// assert!(pipe.poll_durable(epoch).is_ready());
/// assert_eq!(pipe.read(1, 1).unwrap(), b"8 bytes!");
/// ```
pub struct Pipe<'a, S> {
    pub(crate) store: S,
    /// `Journal::Atomic`: the journal store beside the data store.
    pub(crate) journal: Option<S>,
    pub(crate) config: Config,
    pub(crate) state: Mutex<State<'a>>,
    /// `state` as of its last release, for reads that skip the lock.
    pub(crate) read_mirror: ReadMirror,
    /// Held by the one flush step that may run at a time.
    pub(crate) flushing: Mutex<FlushState<'a>>,
    /// Held by the one job at a time that moves batches into the data file, so they get there
    /// in epoch order: an apply (`Journal::Atomic`: writing published batches in place) or a
    /// sync of batches written in place (`Journal::Off`).
    pub(crate) data_turn: Mutex<()>,
    /// `Journal::Atomic`: the durable superblock, held by the one checkpoint that may run at a
    /// time (lock order: `flushing`, this, `data_turn`, `state`, `table`; `data_turn` is
    /// never held while this is taken).
    pub(crate) superblock: Mutex<Option<Superblock>>,
    /// `Journal::Atomic` with [`Config::chunk_checksums`]: the checksum of every chunk of the
    /// data store, which reads check (lock order: after `state`).
    pub(crate) table: Option<Mutex<ChecksumTable>>,
    /// What recovery found when the pipe was opened (`Journal::Atomic`).
    recovery: Option<RecoveryReport>,
    // Declared last: the regions in `state` point into this memory.
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
        match (config.journal, &journal) {
            (Journal::Atomic, None) => {
                return Err(Error::InvalidInput("Journal::Atomic needs a journal store"));
            }
            (Journal::Off, Some(_)) => {
                return Err(Error::InvalidInput("Journal::Off takes no journal store"));
            }
            _ => {}
        }
        let layout = StagingLayout::for_config(&config)?;
        let staging::StagingParts {
            pool,
            plans: [open_plan, spare_plans @ ..],
            index,
            header,
            scratch,
        } = staging::carve(&memory, &layout)?;
        let mut flush = FlushState {
            journal: None,
            header,
            scratch,
        };
        let opened = match journal.as_ref() {
            Some(journal) => Some(Self::open_journal(&data, journal, &config, &mut flush)?),
            None => {
                Self::prepare_store(&data, &config)?;
                None
            }
        };
        let len_chunks = data.len()? / config.chunk_bytes();
        let (recovery, superblock, table) = match opened {
            Some(o) => (Some(o.report), Some(o.superblock), o.table),
            None => (None, None, None),
        };
        let durable = recovery.map_or(Epoch::NONE, |r| r.last_epoch);
        let covering_all = flush.journal.as_ref().map(JournalLog::covering_all);
        let state = State::opened(pool, index, (open_plan, spare_plans), durable, len_chunks)
            .with_covering_all(covering_all);
        Ok(Pipe {
            store: data,
            journal,
            config,
            state: Mutex::new(state),
            read_mirror: ReadMirror::new(),
            flushing: Mutex::new(flush),
            data_turn: Mutex::new(()),
            superblock: Mutex::new(superblock),
            table: table.map(Mutex::new),
            recovery,
            _memory: memory,
        })
    }

    /// Creates or recovers the journal (see [`from_parts`](Pipe::from_parts)).
    fn open_journal(
        data: &S,
        journal: &S,
        config: &Config,
        flush: &mut FlushState<'a>,
    ) -> Result<recover::Opened, Error> {
        let mut buffers = ScanBuffers {
            header: &mut flush.header,
            chunk: &mut flush.scratch,
            check_payload: true,
        };
        let opened = recover::open(data, journal, config, &mut buffers)?;
        flush.journal = Some(JournalLog::starting_at(&opened.superblock));
        Ok(opened)
    }

    /// What recovery found and did when this pipe was opened: records replayed, the last
    /// epoch, a torn tail dropped, a superblock copy rewritten, and (with
    /// [`Recovery::PointInTime`](crate::Recovery)) the damage and the epochs dropped. `None`
    /// for `Journal::Off`.
    pub fn recovery(&self) -> Option<RecoveryReport> {
        self.recovery
    }

    /// `Journal::Off`: checks the store's length against the config and grows a short store.
    fn prepare_store(store: &S, config: &Config) -> Result<(), Error> {
        let len_bytes = store.len()?;
        if len_bytes % config.chunk_bytes() != 0 {
            return Err(Error::InvalidInput(
                "store length is not a multiple of chunk_size",
            ));
        }
        store.grow(config.initial_chunks * config.chunk_bytes())?;
        Ok(())
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
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
        self.lock().poison.map(Error::Poisoned)
    }

    /// What the pipe has done so far.
    pub fn stats(&self) -> PipeStats {
        self.lock().stats
    }

    /// Checks that `len_bytes` is a non-zero whole number of chunks and that they fit at
    /// `index`; returns the chunk count.
    pub(crate) fn check_range(
        &self,
        index: u64,
        len_bytes: usize,
        len_chunks: u64,
    ) -> Result<u64, Error> {
        let chunk = self.config.chunk_size as usize;
        if len_bytes == 0 || len_bytes % chunk != 0 {
            return Err(Error::InvalidInput(
                "buffer length must be a non-zero multiple of chunk_size",
            ));
        }
        let count = (len_bytes / chunk) as u64;
        match index.checked_add(count) {
            Some(end) if end <= len_chunks => Ok(count),
            _ => Err(Error::OutOfRange {
                index,
                count,
                len_chunks,
            }),
        }
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
        let mut state = self.lock();
        let count = self.check_range(index, data.len(), state.len_chunks)?;
        self.check_fits_staging(count)?;
        state.check_writable()?;
        if u64::from(state.pool.available()) < count {
            return Err(state.staging_full());
        }
        for (chunk, bytes) in (index..).zip(data.chunks_exact(self.config.chunk_size as usize)) {
            let slot = state.pool.take_filled(chunk, bytes, false);
            state.join_open(slot);
        }
        Ok(state.open.epoch)
    }

    pub(crate) fn check_fits_staging(&self, chunks: u64) -> Result<(), Error> {
        let capacity = u64::from(self.config.staging_chunks);
        if chunks > capacity {
            return Err(Error::TooLarge { chunks, capacity });
        }
        Ok(())
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
        let state = self.lock();
        if epoch <= state.durable {
            Poll::Ready(Ok(()))
        } else if let Some(e) = state.poison {
            Poll::Ready(Err(Error::Poisoned(e)))
        } else if epoch > state.issued() {
            Poll::Ready(Err(Error::InvalidInput("epoch was never handed out")))
        } else {
            Poll::Pending
        }
    }

    /// Asks for everything written so far to be made durable now (the open batch is sealed at the
    /// next flush step, ignoring `max_batch_delay`). Returns the epoch to wait for, or `None` when
    /// everything is already durable.
    ///
    /// # Errors
    /// [`Error::Poisoned`].
    pub fn request_sync(&self) -> Result<Option<Epoch>, Error> {
        let mut state = self.lock();
        if let Some(e) = state.poison {
            return Err(Error::Poisoned(e));
        }
        let issued = state.issued();
        if issued <= state.durable {
            return Ok(None);
        }
        state.sync_requested = true;
        Ok(Some(issued))
    }

    /// Asks for `chunks` more chunks; the flusher grows the store at its next step (the grow is
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
            .filter(|t| t.checked_mul(self.config.chunk_bytes()).is_some())
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
        if let Some(e) = state.poison {
            return Poll::Ready(Err(Error::Poisoned(e)));
        }
        if state.grow.completed >= ticket.seq {
            // A completed request short of its target failed; `last_error` says how.
            let fallback = StoreError::new(StoreErrorKind::Other, Op::Grow);
            return Poll::Ready(Err(Error::Store(state.grow.last_error.unwrap_or(fallback))));
        }
        Poll::Pending
    }

    /// Stops accepting writes, and reports whether everything accepted is durable: `Pending`
    /// while flush steps still have work.
    ///
    /// # Errors
    /// [`Error::Poisoned`] when a batch failed.
    pub fn try_close(&self) -> Poll<Result<(), Error>> {
        let mut state = self.lock();
        state.closing = true;
        if let Some(e) = state.poison {
            return Poll::Ready(Err(Error::Poisoned(e)));
        }
        let grow_pending = state.grow.completed < state.grow.requested;
        let journal_pending = !state.apply.is_empty() || state.journal_dirty();
        if state.all_published() && !grow_pending && !journal_pending {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }

    /// `Ready` once [`try_close`](Pipe::try_close) was called and has nothing left to wait for
    /// (everything durable, or poisoned); `Pending` otherwise. Does not start closing.
    pub fn try_close_if_closing(&self) -> Poll<()> {
        let closing = self.lock().closing;
        if closing && self.try_close().is_ready() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Poisons the pipe with [`StoreErrorKind::Internal`] unless it already is: nothing in
    /// flight will ever be published.
    pub fn fail_stop(&self) {
        let mut state = self.lock();
        state
            .poison
            .get_or_insert(StoreError::new(StoreErrorKind::Internal, Op::Sync));
    }
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
    /// all the RAM a pipe uses besides the [`Pipe`] value itself and the stack: there is no
    /// other queue or heap allocation. With `S` = `staging_chunks` and `C` = `chunk_size`:
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
    /// default 1024 slots of 4 KiB: 4 MiB of data plus 128.5 KiB of bookkeeping. With
    /// [`chunk_checksums`](Config::chunk_checksums), the checksum table adds 4 bytes per data
    /// chunk on the heap (1 MiB per GiB of 4 KiB chunks). The [`Pipe`]
    /// value holds the config, the locks, the counters and the recovery report (about 1 KiB,
    /// under 1.25 KiB with or without `std`; tests check both), and
    /// a flush step uses under 5 KiB of stack (the 256-entry buffer list of a journal append, a
    /// 512-byte superblock).
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

impl<'a, S> Pipe<'a, S> {
    /// The state lock, for the other modules of the core. Releasing it refreshes the mirror
    /// that reads without the lock consult (`read.rs`).
    pub(crate) fn lock(&self) -> StateGuard<'_, 'a> {
        StateGuard {
            guard: self.state.lock(),
            mirror: &self.read_mirror,
        }
    }
}

impl<S> core::fmt::Debug for Pipe<'_, S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let state = self.lock();
        f.debug_struct("Pipe")
            .field("config", &self.config)
            .field("len_chunks", &state.len_chunks)
            .field("durable", &state.durable)
            .field("issued", &state.issued())
            .field("poison", &state.poison)
            .finish_non_exhaustive()
    }
}
