//! The flush step: grow if asked → seal the open batch → write it in place → sync → publish.
//!
//! One flush step handles at most one batch. Only one step runs at a time (a second concurrent
//! call gets [`Error::WouldBlock`]), so batches are published in epoch order. While a step is
//! writing and syncing, writers keep joining the next open batch: the next batch forms while the
//! sync is in flight.
//!
//! The durability mode decides what is written before the sync ([`Journal`]); `Journal::Off`
//! writes the batch in place, hints writeback and syncs the store once. Its staging is free as
//! soon as it is written in place (reads find it in the store from then on); when someone runs
//! [`Pipe::checkpoint_step`], the sync is left to it ([`Pipe::sync_step`]), so the flusher writes
//! the next batch in place while the last one syncs — at most two batches (`Unsynced`)
//! ahead, and a sync publishes every batch written before it began. `Journal::Atomic`
//! appends the batch to the journal and syncs that: the commit path holds nothing else. The
//! published batch then waits in the apply queue to be written in place — by
//! [`Pipe::checkpoint_step`] on a second thread when someone runs it, so the next batch commits
//! meanwhile, or else by the next flush step (`apply_published`), which starts writeback of
//! bulk stretches at once so the checkpoint's data sync stays short (`start_bulk_writeback`).

use crate::journal::{JournalLog, format};
use crate::pipe::{FlushState, State};
use crate::staging::SealedBatch;
use crate::{ChunkStore, Epoch, Error, Instant, Journal, Op, Pipe, StoreError, StoreErrorKind};

/// The most buffers the core puts into one vectored `write_at` call (a stack array).
const MAX_BUFS_PER_CALL: usize = 64;

/// `Journal::Atomic`: the fewest consecutive bytes of a batch whose writeback its apply starts
/// at once ([`Pipe::start_bulk_writeback`]).
const BULK_WRITEBACK_BYTES: u64 = 1 << 20;

/// What one flush step did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepReport {
    /// The epoch the step published, if any.
    pub published: Option<Epoch>,
    /// `Journal::Off`: the epoch of the batch the step wrote in place (freeing its staging),
    /// if it sealed one.
    pub written: Option<Epoch>,
    /// Whether the step freed staging a writer was waiting for (`Journal::Off`: by writing its
    /// batch in place; `Journal::Atomic`: by writing published batches in place).
    pub staging_freed: bool,
    /// `Journal::Off`: whether batches written in place wait for a sync that the step left to
    /// [`Pipe::checkpoint_step`] (wake whoever runs it, or call [`Pipe::sync_step`]).
    pub sync_owed: bool,
    /// Whether writes waited in the open batch when the step ended (the next step has work).
    pub next_batch_waiting: bool,
    /// Whether it handled grow requests (successfully or not).
    pub grew: bool,
    /// `Journal::Atomic`: whether it wrote published batches in place (freeing their staging;
    /// nobody waits for that but writers short of staging: see `staging_freed`).
    pub applied: bool,
    /// `Journal::Atomic`: whether it left published batches for [`Pipe::checkpoint_step`] to
    /// write in place while it commits the next one (wake whoever runs it).
    pub apply_owed: bool,
    /// `Journal::Atomic`: whether it checkpointed the journal.
    pub checkpointed: bool,
    /// `Journal::Atomic`: whether appends moved to the other half, so a checkpoint is owed for
    /// the half they left (wake whoever runs [`Pipe::checkpoint_step`]).
    pub checkpoint_owed: bool,
}

impl StepReport {
    /// Whether anything changed that a waiter (for an epoch, staging space, a grow or a close)
    /// may be waiting for.
    pub fn progressed(&self) -> bool {
        self.published.is_some() || self.staging_freed || self.grew || self.checkpointed
    }
}

impl<'a, S: ChunkStore> Pipe<'a, S> {
    /// Does one flush step at `now`: handles pending grow requests, then seals the open batch,
    /// writes it, makes it durable with one `sync` and publishes its epoch. Returns the epoch
    /// published, or `None` when there was nothing to do (or `max_batch_delay` has not passed).
    /// `Journal::Off` once someone runs [`checkpoint_step`](Pipe::checkpoint_step): the step
    /// writes the batch in place and leaves its sync to that, publishing nothing itself (its
    /// [`StepReport`] says so); it syncs itself only when closing.
    ///
    /// At most one batch per call. Blocks only inside store calls.
    ///
    /// # Errors
    /// [`Error::Poisoned`] when this or an earlier step failed: the batch and every later one
    /// fail, and the pipe accepts no more writes. [`Error::WouldBlock`] when another flush step
    /// is running.
    pub fn flush_step(&self, now: Instant) -> Result<Option<Epoch>, Error> {
        self.step(now).map(|report| report.published)
    }

    /// [`flush_step`](Pipe::flush_step), reporting grow work too (so a blocking flusher knows
    /// whom to wake).
    ///
    /// # Errors
    /// As [`flush_step`](Pipe::flush_step).
    pub fn step(&self, now: Instant) -> Result<StepReport, Error> {
        let Some(mut flush) = self.flushing.try_lock() else {
            return Err(Error::WouldBlock);
        };
        let journal_bytes = flush.journal.as_ref().map(JournalLog::journal_bytes);
        let mut report = StepReport {
            grew: self.grow_step(journal_bytes)?,
            ..StepReport::default()
        };
        let (inline, queued) = {
            let state = self.lock();
            (state.flush_step_applies(), state.apply.has_waiting())
        };
        if queued && inline {
            let applied = self.apply_published().map_err(Error::Poisoned)?;
            report.applied = applied.any;
            report.staging_freed = applied.staging_freed;
        }
        // Otherwise the next batch commits while the checkpointer applies.
        report.apply_owed = queued && !inline;
        if let Some(owed) = self.owed_sync() {
            if owed.inline {
                report.published = self.sync_step(now)?;
                return Ok(report);
            }
            if owed.ahead {
                report.sync_owed = true;
                return Ok(report);
            }
        }
        let Some((mut batch, epoch)) = self.seal(now)? else {
            // The idle or closing checkpoint, unless `checkpoint_step` takes those.
            report.checkpointed = self.take_due_checkpoint(now, true)?;
            return Ok(report);
        };
        batch.prepare_write();
        match self.config.journal {
            Journal::Off => {
                if let Err(e) = self.write_in_place(&batch) {
                    return Err(self.fail_batch(batch, e));
                }
                self.hint_writeback(&batch);
                report.written = Some(epoch);
                let retired = self.retire_written(batch, epoch);
                report.staging_freed |= retired.staging_freed;
                report.next_batch_waiting = retired.next_batch_waiting;
                if retired.sync_inline {
                    report.published = self.sync_step(now)?;
                } else {
                    // The next batch can be written in place while the checkpointer syncs.
                    report.sync_owed = true;
                }
            }
            Journal::Atomic => {
                report.checkpoint_owed = self.commit_to_journal(&mut flush, batch, epoch, now)?;
                report.published = Some(epoch);
            }
        }
        Ok(report)
    }

    /// `Journal::Off`: a sync the flush step owes before it writes another batch in place, if
    /// any: whether it takes the sync itself, and whether it must wait for the checkpointer's.
    fn owed_sync(&self) -> Option<OwedSync> {
        let state = self.lock();
        state.sync_owed().then(|| OwedSync {
            inline: state.flush_step_syncs(),
            ahead: state.in_place_ahead(),
        })
    }

    /// `Journal::Off`: retires a batch written in place (its chunks are read from the store
    /// from now on, and its staging is free for writers while it syncs).
    fn retire_written(&self, batch: SealedBatch<'a>, epoch: Epoch) -> Retired {
        let chunks = batch.len() as u64;
        let in_place_bytes = batch.live_len() as u64 * self.config.chunk_bytes();
        let mut guard = self.lock();
        let state = &mut *guard;
        let plan = state.pool.retire(batch, &mut state.index);
        state.put_spare_plan(plan);
        debug_assert_eq!(
            epoch,
            state.unsynced.written.next(),
            "batches are written in epoch order"
        );
        state.unsynced.written = epoch;
        state.unsynced.chunks += chunks;
        state.stats.in_place_bytes += in_place_bytes;
        Retired {
            sync_inline: state.flush_step_syncs(),
            next_batch_waiting: state.open.len > 0,
            staging_freed: core::mem::take(&mut state.staging_wanted),
        }
    }

    /// `Journal::Off`: syncs the data store and publishes every batch written in place before
    /// the sync started; returns the epoch published, or `None` when no sync was owed.
    ///
    /// The flush step leaves this to [`checkpoint_step`](Pipe::checkpoint_step) once someone
    /// runs that, so the next batch is written in place while this sync runs; a flusher with
    /// no batch to write meanwhile may call it itself rather than hand it over. One sync runs
    /// at a time (`data_turn`), so publication stays in epoch order. `Journal::Atomic` pipes
    /// never owe one (their batches are durable once in the journal).
    ///
    /// # Errors
    /// [`Error::Poisoned`] when the pipe is poisoned or the sync failed: every batch not yet
    /// published fails.
    pub fn sync_step(&self, now: Instant) -> Result<Option<Epoch>, Error> {
        let _turn = self.data_turn.lock();
        let (target, batches, chunks) = {
            let mut state = self.lock();
            if let Some(e) = state.poison {
                return Err(Error::Poisoned(e));
            }
            if !state.sync_owed() {
                return Ok(None);
            }
            // Epochs are consecutive: the sync covers every batch after the durable one.
            let batches = state.unsynced.written.get() - state.durable.get();
            let chunks = core::mem::take(&mut state.unsynced.chunks);
            (state.unsynced.written, batches, chunks)
        };
        // Planted bug, for the simulator's tests only (never in a normal build).
        #[cfg(chunkpipe_planted = "publish_before_sync")]
        {
            self.lock().durable = target;
        }
        let unwinding = FailStopOnDrop(self);
        let result = self.store.sync();
        core::mem::forget(unwinding);
        let mut state = self.lock();
        state.stats.syncs += 1;
        match result {
            Ok(()) => {
                state.durable = target;
                state.last_publish_at = Some(now);
                state.stats.batches += batches;
                state.stats.chunks += chunks;
                Ok(Some(target))
            }
            // Planted bug, for the simulator's tests only: forget the failure, so a later
            // successful sync releases the failed batches' waiters.
            #[cfg(chunkpipe_planted = "release_after_failure")]
            Err(e) => Err(Error::Store(e)),
            #[cfg(not(chunkpipe_planted = "release_after_failure"))]
            Err(e) => Err(Error::Poisoned(*state.poison.get_or_insert(e))),
        }
    }

    /// `Journal::Atomic`: appends the batch to the journal (moving to the other half first if it
    /// does not fit) and syncs it; the batch is then durable, its epoch published, and it joins
    /// the apply queue. Returns whether appends moved to the other half.
    fn commit_to_journal(
        &self,
        flush: &mut FlushState<'a>,
        mut batch: SealedBatch<'a>,
        epoch: Epoch,
        now: Instant,
    ) -> Result<bool, Error> {
        let chunks = batch.live_len() as u64;
        let joined = batch.len() as u64;
        let FlushState {
            journal, header, ..
        } = flush;
        let Some(log) = journal.as_mut() else {
            return Err(
                self.fail_batch(batch, StoreError::new(StoreErrorKind::Internal, Op::Write))
            );
        };
        let journal_store = self
            .journal
            .as_ref()
            .expect("Atomic pipes have a journal store");
        let mut result = Ok(());
        let switch = !log.fits(chunks, self.config.chunk_bytes());
        if switch {
            result = self.enter_other_half(log);
        }
        // Planted bug, for the simulator's tests only (never in a normal build).
        #[cfg(chunkpipe_planted = "publish_before_sync")]
        {
            self.lock().durable = epoch;
        }
        // Planted bug, for the simulator's tests only: write in place before the batch is in
        // the journal, so a crash can leave part of it there with nothing to complete it.
        #[cfg(chunkpipe_planted = "apply_before_journal")]
        let result = result.and_then(|()| self.write_in_place(&batch));
        let result = result.and_then(|()| log.append(journal_store, epoch, &mut batch, header));
        match result {
            Ok(()) => {
                let mut guard = self.lock();
                let state = &mut *guard;
                debug_assert_eq!(
                    epoch,
                    state.durable.next(),
                    "batches publish in epoch order"
                );
                if let Err(batch) = state.apply.push(batch, epoch) {
                    // The queue holds every sealed batch the plans allow; reaching this is a bug.
                    drop(guard);
                    let bug = StoreError::new(StoreErrorKind::Internal, Op::Write);
                    return Err(self.fail_batch(batch, bug));
                }
                state.durable = epoch;
                state.last_publish_at = Some(now);
                state.checkpoints.covering_all = Some(log.covering_all());
                state.stats.batches += 1;
                state.stats.chunks += joined;
                state.stats.syncs += 1;
                state.stats.journal_bytes +=
                    format::record_bytes(chunks, self.config.chunk_bytes());
                Ok(switch)
            }
            Err(e) => Err(self.fail_batch(batch, e)),
        }
    }

    /// `Journal::Atomic`: writes every published batch in the apply queue in place, oldest
    /// first, releasing each one's staging; says whether there was any and whether a writer
    /// waited for the staging freed. One apply runs at a time (`data_turn`): a caller waits for
    /// the one running. A failure poisons the pipe (the journal still holds the batch;
    /// reopening replays it) and returns the poison.
    pub(crate) fn apply_published(&self) -> Result<Applied, StoreError> {
        let _turn = self.data_turn.lock();
        let mut applied = Applied::default();
        loop {
            let (batch, epoch) = {
                let mut state = self.lock();
                if let Some(e) = state.poison {
                    return Err(e);
                }
                match state.apply.take_oldest() {
                    Some(oldest) => oldest,
                    None => return Ok(applied),
                }
            };
            let result = self.write_in_place(&batch);
            if result.is_ok() {
                self.start_bulk_writeback(&batch);
            }
            let in_place_bytes = batch.live_len() as u64 * self.config.chunk_bytes();
            let mut guard = self.lock();
            let state = &mut *guard;
            if result.is_ok() {
                // Before the batch leaves the index: from then on reads check these chunks
                // against the table (`read.rs`).
                self.record_checksums(&batch);
            }
            let plan = state.pool.retire(batch, &mut state.index);
            state.put_spare_plan(plan);
            state.apply.finish();
            applied.staging_freed |= core::mem::take(&mut state.staging_wanted);
            match result {
                Ok(()) => {
                    state.stats.in_place_bytes += in_place_bytes;
                    state.checkpoints.applied = epoch;
                    applied.any = true;
                }
                Err(e) => return Err(*state.poison.get_or_insert(e)),
            }
        }
    }

    /// Enters the CRCs the journal append kept with `batch` into the checksum table, once the
    /// batch is written in place. The caller holds the state lock (lock order: state, table).
    fn record_checksums(&self, batch: &SealedBatch<'a>) {
        if let Some(table) = &self.table {
            let mut table = table.lock();
            for i in 0..batch.live_len() {
                table.set(batch.chunk(i), batch.crc(i));
            }
        }
    }

    /// Retires a batch that failed and poisons the pipe; returns the poison error.
    fn fail_batch(&self, batch: SealedBatch<'a>, e: StoreError) -> Error {
        let mut guard = self.lock();
        let state = &mut *guard;
        let plan = state.pool.retire(batch, &mut state.index);
        state.put_spare_plan(plan);
        if e.op == Op::Sync {
            state.stats.syncs += 1;
        }
        // Planted bug, for the simulator's tests only: forget the failure.
        #[cfg(chunkpipe_planted = "release_after_failure")]
        return Error::Store(e);
        #[cfg(not(chunkpipe_planted = "release_after_failure"))]
        Error::Poisoned(*state.poison.get_or_insert(e))
    }

    /// When a flush step next has work: `Some(now)` or later, `None` when idle.
    pub fn next_flush_at(&self, now: Instant) -> Option<Instant> {
        let state = self.lock();
        if state.poison.is_some() {
            return None;
        }
        let apply_inline = state.apply.has_waiting() && state.flush_step_applies();
        let sync_inline = state.sync_owed() && state.flush_step_syncs();
        if state.grow.completed < state.grow.requested || apply_inline || sync_inline {
            return Some(now);
        }
        if state.in_place_ahead() {
            // The checkpointer's sync wakes this flusher when it is done.
            return None;
        }
        if state.open.len == 0 {
            let checkpoint_at = self.idle_checkpoint_at(&state).map(|at| at.max(now));
            let inline = state.closing || !state.checkpoints.in_background;
            // A batch the checkpointer is writing in place must be done before a checkpoint
            // (it wakes this flusher when it is).
            let in_place = state.apply.is_empty();
            return checkpoint_at.filter(|_| state.journal_dirty() && inline && in_place);
        }
        let delay = self.config.max_batch_delay;
        match state.open.seen_at {
            Some(seen) if !self.seal_now(&state) => Some(seen.saturating_add(delay).max(now)),
            _ => Some(now),
        }
    }

    /// Whether the open batch is sealed without waiting out `max_batch_delay`: no delay is
    /// configured, someone asked for durability now, the pipe is closing, or a writer is
    /// blocked on full staging (nobody more can join).
    fn seal_now(&self, state: &State<'_>) -> bool {
        self.config.max_batch_delay.is_zero()
            || state.sync_requested
            || state.closing
            || state.writer_blocked
    }

    /// Grows the store to the pending target — and, with a checksum table, the table and its
    /// space in the journal (`journal_bytes`: where the table starts). A failed grow fails its
    /// requests but does not poison the pipe, unless the failure was the sync that makes the
    /// length durable.
    fn grow_step(&self, journal_bytes: Option<u64>) -> Result<bool, Error> {
        let (seq, target_chunks) = {
            let state = self.lock();
            if let Some(e) = state.poison {
                return Err(Error::Poisoned(e));
            }
            if state.grow.completed == state.grow.requested {
                return Ok(false);
            }
            (state.grow.requested, state.grow.target_chunks)
        };
        let result = self.grow_stores(target_chunks, journal_bytes);
        let mut state = self.lock();
        state.grow.completed = seq;
        match result {
            Ok(()) => state.len_chunks = state.len_chunks.max(target_chunks),
            Err(e) if e.op == Op::Sync => {
                return Err(Error::Poisoned(*state.poison.get_or_insert(e)));
            }
            Err(e) => {
                state.grow.last_error = Some(e);
                if state.grow.requested == seq {
                    state.grow.target_chunks = state.len_chunks;
                }
            }
        }
        Ok(true)
    }

    /// Grows the data store to `chunks`, then the checksum table's journal space and the table.
    /// The table grows last: until it covers the new chunks, no write can reach them.
    fn grow_stores(&self, chunks: u64, journal_bytes: Option<u64>) -> Result<(), StoreError> {
        // request_grow checked that the byte length does not overflow.
        self.store.grow(chunks * self.config.chunk_bytes())?;
        let (Some(table), Some(journal), Some(journal_bytes)) =
            (&self.table, &self.journal, journal_bytes)
        else {
            return Ok(());
        };
        let no_space = StoreError::new(StoreErrorKind::NoSpace, Op::Grow);
        journal.grow(format::journal_len(journal_bytes, Some(chunks)).ok_or(no_space)?)?;
        table.lock().grow(chunks).map_err(|_| no_space)
    }

    /// Seals the open batch and assigns its epoch, in one step under the lock.
    fn seal(&self, now: Instant) -> Result<Option<(SealedBatch<'a>, Epoch)>, Error> {
        let mut guard = self.lock();
        let state = &mut *guard;
        if let Some(e) = state.poison {
            return Err(Error::Poisoned(e));
        }
        if state.open.len == 0 {
            return Ok(None);
        }
        let seen = *state.open.seen_at.get_or_insert(now);
        if !self.seal_now(state) && now < seen.saturating_add(self.config.max_batch_delay) {
            return Ok(None);
        }
        let Some(spare) = state.take_spare_plan() else {
            // The step applied the published batches (freeing their plans) if none was spare.
            let bug = StoreError::new(StoreErrorKind::Internal, Op::Write);
            return Err(Error::Poisoned(*state.poison.get_or_insert(bug)));
        };
        let plan = core::mem::replace(&mut state.open.plan, spare);
        let len = core::mem::replace(&mut state.open.len, 0);
        let epoch = state.open.epoch;
        state.open.epoch = epoch.next();
        state.open.seen_at = None;
        state.sync_requested = false;
        state.writer_blocked = false;
        Ok(Some((state.pool.seal(plan, len), epoch)))
    }

    /// Writes a prepared batch where its chunks live, in runs of consecutive chunks, one
    /// vectored call per run (split at the store's buffer limit).
    fn write_in_place(&self, batch: &SealedBatch<'a>) -> Result<(), StoreError> {
        let chunk_bytes = self.config.chunk_bytes();
        let max_bufs = self
            .store
            .capabilities()
            .max_bufs
            .clamp(1, MAX_BUFS_PER_CALL);
        let mut bufs: [&[u8]; MAX_BUFS_PER_CALL] = [&[]; MAX_BUFS_PER_CALL];
        let live = batch.live_len();
        let mut i = 0;
        while i < live {
            let run = batch.consecutive_run(i, max_bufs);
            for (k, buf) in bufs[..run].iter_mut().enumerate() {
                *buf = batch.bytes(i + k);
            }
            self.store
                .write_at(batch.chunk(i) * chunk_bytes, &bufs[..run])?;
            i += run;
        }
        Ok(())
    }

    /// `Journal::Off`: hints writeback of the range a prepared batch covers. Only a hint: the
    /// sync that follows reports any real failure.
    fn hint_writeback(&self, batch: &SealedBatch<'a>) {
        let chunk_bytes = self.config.chunk_bytes();
        let start = batch.chunk(0) * chunk_bytes;
        let end = (batch.chunk(batch.live_len() - 1) + 1) * chunk_bytes;
        let _ = self.store.start_writeback(start, end - start);
    }

    /// `Journal::Atomic`: after a batch is written in place, starts writeback of each stretch of
    /// at least [`BULK_WRITEBACK_BYTES`] consecutive chunks in it. Only a hint: the
    /// checkpoint's data sync reports any real failure.
    ///
    /// Why: bulk data left dirty for the next checkpoint made its data sync long (7 ms on
    /// average in W2 of `chunkpipe bench`, 0.9 ms with this), and while the checkpointer waits
    /// in it, published batches wait to be applied and writers for their staging. Scattered
    /// chunks are left to the checkpoint, which writes them together: hinting every batch
    /// cost W1, W4 and W5 7–38 % of their throughput here.
    fn start_bulk_writeback(&self, batch: &SealedBatch<'a>) {
        let chunk_bytes = self.config.chunk_bytes();
        let fewest = BULK_WRITEBACK_BYTES.div_ceil(chunk_bytes);
        let live = batch.live_len();
        let mut start = 0;
        while start < live {
            let run = batch.consecutive_run(start, live);
            if run as u64 >= fewest {
                let offset = batch.chunk(start) * chunk_bytes;
                let _ = self.store.start_writeback(offset, run as u64 * chunk_bytes);
            }
            start += run;
        }
    }
}

/// `Journal::Off`: what [`Pipe::owed_sync`] found.
struct OwedSync {
    /// The flush step syncs itself (see [`State::flush_step_syncs`]).
    inline: bool,
    /// Too many batches wait for a sync to write another ([`State::in_place_ahead`]).
    ahead: bool,
}

/// Poisons the pipe when dropped: armed around a sync that decided what it covers, so that if
/// the store panics in it, a later sync cannot publish those batches as durable (the panic may
/// have been a failure; a successful sync after a failed one proves nothing). Disarmed with
/// `mem::forget` once the sync returns.
struct FailStopOnDrop<'p, 'a, S: ChunkStore>(&'p Pipe<'a, S>);

impl<S: ChunkStore> Drop for FailStopOnDrop<'_, '_, S> {
    fn drop(&mut self) {
        self.0.fail_stop();
    }
}

/// `Journal::Atomic`: what [`Pipe::apply_published`] did.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Applied {
    /// It wrote published batches in place.
    pub(crate) any: bool,
    /// A writer waited for the staging they freed.
    pub(crate) staging_freed: bool,
}

/// `Journal::Off`: what [`Pipe::retire_written`] found.
struct Retired {
    /// The flush step syncs the batch itself ([`State::flush_step_syncs`]).
    sync_inline: bool,
    /// The open batch holds writes.
    next_batch_waiting: bool,
    /// A writer waited for the staging the batch freed.
    staging_freed: bool,
}
