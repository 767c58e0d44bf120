//! The flush step: grow if asked → seal the open batch → write it in place → sync → publish.
//!
//! One flush step handles at most one batch. Only one step runs at a time (a second concurrent
//! call gets [`Error::WouldBlock`]), so batches are published in epoch order. While a step is
//! writing and syncing, writers keep joining the next open batch: the next batch forms while the
//! sync is in flight.
//!
//! The durability mode decides what is written before the sync ([`Journal`]); `Journal::Off`
//! writes the batch in place, hints writeback and syncs the store once. `Journal::Atomic`
//! appends the batch to the journal and syncs that: the commit path holds nothing else. The
//! published batch then waits in the apply queue to be written in place — by
//! [`Pipe::checkpoint_step`] on a second thread when someone runs it, so the next batch commits
//! meanwhile, or else by the next flush step (`apply_published`).

use crate::journal::format;
use crate::pipe::{FlushState, State};
use crate::staging::SealedBatch;
use crate::{ChunkStore, Epoch, Error, Instant, Journal, Op, Pipe, StoreError, StoreErrorKind};

/// The most buffers the core puts into one vectored `write_at` call (a stack array).
const MAX_BUFS_PER_CALL: usize = 64;

/// What one flush step did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StepReport {
    /// The epoch the step published, if it sealed a batch.
    pub published: Option<Epoch>,
    /// Whether it handled grow requests (successfully or not).
    pub grew: bool,
    /// `Journal::Atomic`: whether it wrote published batches in place (freeing their staging).
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
        self.published.is_some() || self.grew || self.applied || self.checkpointed
    }
}

impl<'a, S: ChunkStore> Pipe<'a, S> {
    /// Does one flush step at `now`: handles pending grow requests, then seals the open batch,
    /// writes it, makes it durable with one `sync` and publishes its epoch. Returns the epoch
    /// published, or `None` when there was nothing to do (or `max_batch_delay` has not passed).
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
        let mut report = StepReport {
            grew: self.grow_step()?,
            ..StepReport::default()
        };
        let (inline, queued) = {
            let state = self.lock();
            (state.flush_step_applies(), state.apply.has_waiting())
        };
        if queued && inline {
            report.applied = self.apply_published().map_err(Error::Poisoned)?;
        }
        // Otherwise the next batch commits while the checkpointer applies.
        report.apply_owed = queued && !inline;
        let Some((mut batch, epoch)) = self.seal(now)? else {
            // The idle or closing checkpoint, unless `checkpoint_step` takes those.
            report.checkpointed = self.take_due_checkpoint(now, true)?;
            return Ok(report);
        };
        batch.prepare_write();
        match self.config.journal {
            Journal::Off => {
                let result = self.write_in_place(&batch).and_then(|()| {
                    // Planted bug, for the simulator's tests only (never in a normal build).
                    #[cfg(chunkpipe_planted = "publish_before_sync")]
                    {
                        self.lock().durable = epoch;
                    }
                    self.hint_writeback(&batch);
                    self.store.sync()
                });
                self.publish(batch, epoch, result)?;
            }
            Journal::Atomic => {
                report.checkpoint_owed = self.commit_to_journal(&mut flush, batch, epoch, now)?;
            }
        }
        report.published = Some(epoch);
        Ok(report)
    }

    /// `Journal::Atomic`: appends the batch to the journal (moving to the other half first if it
    /// does not fit) and syncs it; the batch is then durable, its epoch published, and it joins
    /// the apply queue. Returns whether appends moved to the other half.
    fn commit_to_journal(
        &self,
        flush: &mut FlushState<'a>,
        batch: SealedBatch<'a>,
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
        let result = result.and_then(|()| log.append(journal_store, epoch, &batch, header));
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
    /// first, releasing each one's staging; returns whether there was any. One apply runs at a
    /// time (`apply_turn`): a caller waits for the one running. A failure poisons the pipe (the
    /// journal still holds the batch; reopening replays it) and returns the poison.
    pub(crate) fn apply_published(&self) -> Result<bool, StoreError> {
        let _turn = self.apply_turn.lock();
        let mut applied = false;
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
            let in_place_bytes = batch.live_len() as u64 * self.config.chunk_bytes();
            let mut guard = self.lock();
            let state = &mut *guard;
            let plan = state.pool.retire(batch, &mut state.index);
            state.put_spare_plan(plan);
            state.apply.finish();
            match result {
                Ok(()) => {
                    state.stats.in_place_bytes += in_place_bytes;
                    state.checkpoints.applied = epoch;
                    applied = true;
                }
                Err(e) => return Err(*state.poison.get_or_insert(e)),
            }
        }
    }

    /// Retires a batch that failed and poisons the pipe; returns the poison error.
    fn fail_batch(&self, batch: SealedBatch<'a>, e: StoreError) -> Error {
        let mut guard = self.lock();
        let state = &mut *guard;
        let plan = state.pool.retire(batch, &mut state.index);
        state.put_spare_plan(plan);
        state.stats.syncs += 1;
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
        if state.grow.completed < state.grow.requested || apply_inline {
            return Some(now);
        }
        if state.open.len == 0 {
            let checkpoint_at = self.idle_checkpoint_at(&state).max(now);
            let inline = state.closing || !state.checkpoints.in_background;
            // A batch the checkpointer is writing in place must be done before a checkpoint
            // (it wakes this flusher when it is).
            let in_place = state.apply.is_empty();
            return (state.journal_dirty() && inline && in_place).then_some(checkpoint_at);
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

    /// Grows the store to the pending target. A failed grow fails its requests but does not
    /// poison the pipe, unless the failure was the sync that makes the length durable.
    fn grow_step(&self) -> Result<bool, Error> {
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
        // request_grow checked that the byte length does not overflow.
        let result = self.store.grow(target_chunks * self.config.chunk_bytes());
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
            let first = batch.chunk(i);
            let mut run = 0;
            while i + run < live && run < max_bufs && batch.chunk(i + run) == first + run as u64 {
                bufs[run] = batch.bytes(i + run);
                run += 1;
            }
            self.store.write_at(first * chunk_bytes, &bufs[..run])?;
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

    /// Retires the batch's slots and publishes its epoch, or poisons the pipe if it failed.
    fn publish(
        &self,
        batch: SealedBatch<'a>,
        epoch: Epoch,
        result: Result<(), StoreError>,
    ) -> Result<(), Error> {
        let chunks = batch.len() as u64;
        let in_place_bytes = batch.live_len() as u64 * self.config.chunk_bytes();
        let mut guard = self.lock();
        let state = &mut *guard;
        let plan = state.pool.retire(batch, &mut state.index);
        state.put_spare_plan(plan);
        state.stats.syncs += 1;
        match result {
            Ok(()) => {
                state.stats.in_place_bytes += in_place_bytes;
                debug_assert_eq!(
                    epoch,
                    state.durable.next(),
                    "batches publish in epoch order"
                );
                state.durable = epoch;
                state.stats.batches += 1;
                state.stats.chunks += chunks;
                Ok(())
            }
            // Planted bug, for the simulator's tests only: forget the failure, so a later
            // successful batch releases the failed one's waiters.
            #[cfg(chunkpipe_planted = "release_after_failure")]
            Err(e) => Err(Error::Store(e)),
            #[cfg(not(chunkpipe_planted = "release_after_failure"))]
            Err(e) => Err(Error::Poisoned(*state.poison.get_or_insert(e))),
        }
    }
}
