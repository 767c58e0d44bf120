//! `Journal::Atomic`: each batch is appended to the journal as one record and made durable by
//! one journal sync — the commit, and all the commit does. Writing the batch in place
//! (`apply.rs`) and checkpoints (`checkpoint.rs`) are the background step's.
//!
//! **Invariants.** Epochs are published in order, each by the sync of its own record. A batch
//! is written in place only after it is published (its record is durable), in epoch order, and
//! a checkpoint covers only batches already in place. Appends enter a journal half only once a
//! checkpoint has freed it: the background frees the half appends left as soon as its batches
//! are in place, long before appends come back to it; if it has not (it fell behind), the
//! commit that needs the half checkpoints first, and counts it
//! ([`PipeStats::commits_behind_checkpoints`](crate::PipeStats)).

use crate::engine::queue::ApplyQueue;
use crate::engine::{CommitTurn, Wake, fail, grow_step, seal};
use crate::journal::format::{self, Superblock};
use crate::journal::recover::Opened;
use crate::journal::table::ChecksumTable;
use crate::journal::{CheckpointTarget, JournalLog};
use crate::staging::{Region, SealedBatch};
use crate::state::{Shared, State};
use crate::sync::Mutex;
use crate::{ChunkStore, Config, Epoch, Error, Instant, Op, StoreError, StoreErrorKind};

/// The `Journal::Atomic` engine. Lock order: `commit`, `superblock`, `data_turn`, the state
/// lock, `books`, `table`.
pub(crate) struct AtomicEngine<'a, S> {
    pub(crate) journal: S,
    /// Taken by the step holding the commit turn: where the next record goes, and its header
    /// buffer.
    commit: Mutex<Commit<'a>>,
    /// What the background owes: published batches to write in place, checkpoints.
    pub(super) books: Mutex<Books<'a>>,
    /// Held by the one job at a time that moves batches into the data store (an apply) or
    /// copies the checksum table out (a checkpoint): batches reach it in epoch order, and the
    /// table a checkpoint writes matches the data its sync covers.
    pub(super) data_turn: Mutex<()>,
    /// The durable superblock, held by the one checkpoint that may run at a time.
    pub(super) superblock: Mutex<Superblock>,
    /// With [`Config::chunk_checksums`]: the checksum of every chunk of the data store.
    pub(crate) table: Option<Mutex<ChecksumTable>>,
}

/// The commit's own: the journal's append position and a buffer for record headers.
struct Commit<'a> {
    log: JournalLog,
    header: Region<'a, u8>,
}

/// What the background owes the published batches.
pub(super) struct Books<'a> {
    /// Published batches on their way into the data store, oldest first.
    pub(super) queue: ApplyQueue<'a>,
    /// The newest epoch written in place (a checkpoint may cover up to it).
    pub(super) applied: Epoch,
    /// The epoch the durable superblock checkpoints.
    pub(super) checkpointed: Epoch,
    /// The checkpoint that frees the half appends left, until it is taken.
    pub(super) half_to_free: Option<CheckpointTarget>,
    /// The checkpoint covering every record appended so far.
    pub(super) covering_all: CheckpointTarget,
    /// When the last batch was published (for the idle checkpoint).
    pub(super) last_publish_at: Option<Instant>,
    /// Bytes written in place since writeback was last started (`apply.rs`).
    pub(super) unhinted_bytes: u64,
}

/// Published batches that make writing them in place due: the background is woken for every
/// second batch rather than every one (each wake-up costs the commit that sends it a few
/// microseconds), and a commit still finds a spare batch plan while the background runs.
const APPLY_BATCHES: usize = 2;

impl Books<'_> {
    /// Whether the background should write the queue in place now: enough batches wait, or the
    /// pipe is closing. Otherwise they wait for the next batch, for the idle checkpoint, or for a
    /// commit that needs their staging or batch plans.
    pub(super) fn apply_due(&self, state: &State<'_>) -> bool {
        let waiting = self.queue.waiting();
        waiting >= APPLY_BATCHES || (waiting > 0 && state.closing)
    }
}

impl<'a, S: ChunkStore> AtomicEngine<'a, S> {
    /// The engine over `journal`, as recovery left it (`opened`, with `durable` published).
    pub(crate) fn new(journal: S, opened: Opened, header: Region<'a, u8>, durable: Epoch) -> Self {
        let log = JournalLog::starting_at(&opened.superblock);
        let books = Books {
            queue: ApplyQueue::EMPTY,
            applied: durable,
            checkpointed: durable,
            half_to_free: None,
            covering_all: log.covering_all(),
            last_publish_at: None,
            unhinted_bytes: 0,
        };
        AtomicEngine {
            journal,
            commit: Mutex::new(Commit { log, header }),
            books: Mutex::new(books),
            data_turn: Mutex::new(()),
            superblock: Mutex::new(opened.superblock),
            table: opened.table.map(Mutex::new),
        }
    }

    /// The commit: seals the open batch, appends it to the journal, syncs the journal and
    /// publishes the batch's epoch. At most one batch per call.
    ///
    /// # Errors
    /// [`Error::WouldBlock`] while another commit runs; [`Error::Poisoned`] when this or an
    /// earlier step failed.
    pub(crate) fn flush_step(&self, shared: &Shared<'a, S>, now: Instant) -> Result<Wake, Error> {
        let _turn = CommitTurn::take(shared)?;
        // Never contended: the turn is this step's.
        let mut commit = self.commit.lock();
        let journal_bytes = commit.log.journal_bytes();
        let mut wake = grow_step(shared, |chunks| self.grow_table(journal_bytes, chunks))?;
        if self.needs_apply_now(&shared.lock()) {
            wake |= self.apply(shared)?;
        }
        let Some((mut batch, epoch)) = seal(shared, now)? else {
            return Ok(wake);
        };
        batch.prepare_write();
        wake |= self.commit(shared, &mut commit, batch, epoch, now)?;
        Ok(wake)
    }

    /// Whether the commit writes the published batches in place itself rather than leave them
    /// to the background step: they hold every spare batch plan (nothing could be sealed), or
    /// a writer waits for the staging they hold. Either way the commit cannot go on without
    /// it, and doing it here costs no hand-off.
    fn needs_apply_now(&self, state: &State<'_>) -> bool {
        let published = !self.books.lock().queue.is_empty();
        published && (!state.has_spare_plan() || state.writers_waiting)
    }

    /// Appends `batch` as the record of `epoch` (entering the other half first if it does not
    /// fit), syncs it and publishes it.
    fn commit(
        &self,
        shared: &Shared<'a, S>,
        commit: &mut Commit<'a>,
        mut batch: SealedBatch<'a>,
        epoch: Epoch,
        now: Instant,
    ) -> Result<Wake, Error> {
        let chunks = batch.live_len() as u64;
        if !commit.log.fits(chunks, shared.chunk_bytes()) {
            if let Err(e) = self.enter_other_half(shared, &mut commit.log) {
                return Err(fail(shared, batch, e));
            }
        }
        // Planted bug, for the simulator's tests only (never in a normal build).
        #[cfg(chunkpipe_planted = "publish_before_sync")]
        {
            shared.lock().durable = epoch;
        }
        // Planted bug, for the simulator's tests only: write in place before the batch is in
        // the journal, so a crash can leave part of it there with nothing to complete it.
        #[cfg(chunkpipe_planted = "apply_before_journal")]
        if let Err(e) = super::write_in_place(&shared.data, shared.chunk_bytes(), &batch) {
            return Err(fail(shared, batch, e));
        }
        let Commit { log, header } = commit;
        if let Err(e) = log.append(&self.journal, epoch, &mut batch, header) {
            return Err(fail(shared, batch, e));
        }
        let background = self.publish(shared, log, batch, epoch, now)?;
        Ok(Wake {
            durable: Some(epoch),
            background,
            ..Wake::default()
        })
    }

    /// The batch of `epoch` is durable: publishes it and queues it to be written in place.
    /// Returns whether the background must be woken: writing the queue in place is due now
    /// ([`Books::apply_due`]), or it sleeps without a deadline — it went to sleep while this
    /// batch was being committed, and the publish starts the idle checkpoint's clock.
    fn publish(
        &self,
        shared: &Shared<'a, S>,
        log: &JournalLog,
        batch: SealedBatch<'a>,
        epoch: Epoch,
        now: Instant,
    ) -> Result<bool, Error> {
        let (joined, live) = (batch.len() as u64, batch.live_len() as u64);
        let mut state = shared.lock();
        let mut books = self.books.lock();
        debug_assert_eq!(
            epoch,
            state.durable.next(),
            "batches publish in epoch order"
        );
        if let Err(batch) = books.queue.push(batch, epoch) {
            // The queue holds every sealed batch the plans allow; reaching this is a bug.
            drop(books);
            super::retire(&mut state, batch);
            return Err(state
                .latch
                .trip(StoreError::new(StoreErrorKind::Internal, Op::Write)));
        }
        state.publish(epoch);
        books.covering_all = log.covering_all();
        books.last_publish_at = Some(now);
        let stats = &mut state.stats;
        stats.batches += 1;
        stats.chunks += joined;
        stats.syncs += 1;
        stats.journal_bytes += format::record_bytes(live, shared.chunk_bytes());
        let rouse = state.rouse_background();
        Ok(books.apply_due(&state) || rouse)
    }

    /// Writes published batches in place, paces their writeback, takes a checkpoint if one is
    /// due.
    ///
    /// # Errors
    /// [`Error::Poisoned`].
    pub(crate) fn background_step(
        &self,
        shared: &Shared<'a, S>,
        now: Instant,
    ) -> Result<Wake, Error> {
        // Planted bug, for the simulator's tests only: checkpoint before writing the published
        // batches in place (`due` then ignores them too).
        #[cfg(chunkpipe_planted = "checkpoint_before_apply")]
        let early = self.checkpoint_if_due(shared, now)?;
        let mut wake = self.apply(shared)?;
        self.pace_writeback(shared);
        #[cfg(chunkpipe_planted = "checkpoint_before_apply")]
        {
            wake |= early;
        }
        wake |= self.checkpoint_if_due(shared, now)?;
        Ok(wake)
    }

    /// When the background step next has work (see [`Engine::next_background_at`]).
    ///
    /// [`Engine::next_background_at`]: crate::engine::Engine::next_background_at
    pub(crate) fn next_background_at(
        &self,
        config: &Config,
        state: &State<'_>,
        now: Instant,
    ) -> Option<Instant> {
        let books = self.books.lock();
        if books.apply_due(state) || books.half_due().is_some() {
            return Some(now);
        }
        self.idle_checkpoint_at(config, state, &books)
            .map(|at| at.max(now))
    }

    /// Every published batch is in place and checkpointed: with nothing open or being
    /// committed (the close checks that), a close has nothing left to wait for.
    pub(crate) fn settled(&self, state: &State<'_>) -> bool {
        let books = self.books.lock();
        books.queue.is_empty() && books.checkpointed >= state.durable
    }

    /// Grows the checksum table, and its space in the journal, to `chunks` (the data store has
    /// grown). The table grows last: until it covers the new chunks, no write can reach them.
    fn grow_table(&self, journal_bytes: u64, chunks: u64) -> Result<(), StoreError> {
        let Some(table) = &self.table else {
            return Ok(());
        };
        let no_space = StoreError::new(StoreErrorKind::NoSpace, Op::Grow);
        let len = format::journal_len(journal_bytes, Some(chunks)).ok_or(no_space)?;
        self.journal.grow(len)?;
        table.lock().grow(chunks).map_err(|_| no_space)
    }
}
