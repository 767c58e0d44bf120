//! `Journal::Atomic` checkpoints: when one is due, which one, and taking it.
//!
//! A checkpoint makes the data file alone hold every batch up to some epoch (one data sync),
//! then records that in the journal's superblock, so the records before it are never replayed
//! and their half of the journal can take new appends.
//!
//! Two kinds of work ask for one:
//! - **a half to free**: appends moved to the other half ([`JournalLog::switch_half`]); the half
//!   they left must be covered before appends come back to it. Due as soon as every batch in it
//!   is written in place.
//! - **idle or closing**: the pipe has been idle — no batch open or being committed, nothing
//!   published — for `flush_interval` (or is closing) with records no checkpoint covers;
//!   covering them all keeps recovery short.
//!
//! [`Pipe::checkpoint_step`] does this work off the commit path — it writes published batches
//! in place, then takes due checkpoints: under `std` the `ThreadedPipe` runs it on its own
//! thread, so commits go on while batches are written in place and the data file syncs. The
//! flush step applies batches itself when nobody runs `checkpoint_step` (or when the batches
//! waiting hold every spare batch plan), and takes a checkpoint itself only on close, when idle
//! without anyone running `checkpoint_step`, or when it needs a half that no checkpoint has
//! freed yet.

use crate::journal::{self, CheckpointTarget, JournalLog};
use crate::pipe::State;
use crate::{ChunkStore, Error, Instant, Pipe, StoreError};

impl<S: ChunkStore> Pipe<'_, S> {
    /// `Journal::Atomic`: writes published batches in place (freeing their staging), then takes
    /// a checkpoint if one is due (see the module docs); returns whether it did either. Call it
    /// from a second thread or a main loop, beside the flush steps: it blocks only in its store
    /// calls (in-place writes; one data sync, one superblock write and sync), and flush steps go
    /// on meanwhile. Calling it once tells the flush step to leave both jobs to it (a flush step
    /// still applies batches when they hold every spare batch plan).
    ///
    /// `Journal::Off` has no checkpoints; there this is [`sync_step`](Pipe::sync_step) (the
    /// data sync of the batches the flush step wrote in place), and calling it once likewise
    /// tells the flush step to leave those syncs to it. It then publishes what it synced.
    ///
    /// # Errors
    /// [`Error::Poisoned`] when the pipe is poisoned or the checkpoint failed (which poisons
    /// it: the journal may no longer be trusted to cover what it must).
    pub fn checkpoint_step(&self, now: Instant) -> Result<bool, Error> {
        self.checkpoint_work(now).map(|work| work.done)
    }

    /// [`checkpoint_step`](Pipe::checkpoint_step), saying whether its work may be what a
    /// waiter waits for.
    pub(crate) fn checkpoint_work(&self, now: Instant) -> Result<CheckpointWork, Error> {
        {
            let mut state = self.lock();
            state.checkpoints.in_background = true;
            if let Some(e) = state.poison {
                return Err(Error::Poisoned(e));
            }
        }
        if self.journal.is_none() {
            let synced = self.sync_step(now)?.is_some();
            return Ok(CheckpointWork {
                done: synced,
                wakes_waiters: synced,
            });
        }
        // Planted bug, for the simulator's tests only: checkpoint before writing the published
        // batches in place (`due_checkpoint` then ignores them too).
        #[cfg(chunkpipe_planted = "checkpoint_before_apply")]
        let checkpointed = self.take_due_checkpoint(now, false)?;
        let applied = self.apply_published().map_err(Error::Poisoned)?;
        #[cfg(not(chunkpipe_planted = "checkpoint_before_apply"))]
        let checkpointed = self.take_due_checkpoint(now, false)?;
        Ok(CheckpointWork {
            done: checkpointed || applied.any,
            // Writing batches in place frees staging, which only writers short of it wait for;
            // a closing pipe waits for the checkpoint that follows.
            wakes_waiters: checkpointed || applied.staging_freed,
        })
    }

    /// When [`checkpoint_step`](Pipe::checkpoint_step) next has work: `Some(now)` or later;
    /// `None` while nothing is owed or only an idle checkpoint that waits for the open batch
    /// (the flush step publishing a batch may change that).
    pub fn next_checkpoint_at(&self, now: Instant) -> Option<Instant> {
        let state = self.lock();
        if state.poison.is_some() {
            return None;
        }
        if self.journal.is_none() {
            return state.sync_owed().then_some(now);
        }
        if !state.apply.is_empty() || state.checkpoints.half_due().is_some() {
            return Some(now);
        }
        if !state.journal_dirty() {
            return None;
        }
        self.idle_checkpoint_at(&state).map(|at| at.max(now))
    }

    /// The checkpoint due at `now`, if any. `inline`: asked by the flush step, which leaves
    /// idle checkpoints to `checkpoint_step` when someone runs it.
    pub(crate) fn due_checkpoint(
        &self,
        state: &State<'_>,
        now: Instant,
        inline: bool,
    ) -> Option<CheckpointTarget> {
        let owed = &state.checkpoints;
        if let Some(target) = owed.half_due().filter(|_| !inline) {
            return Some(target);
        }
        let idle = self.idle_checkpoint_at(state).is_some_and(|at| now >= at)
            && !(inline && owed.in_background);
        let everything_applied = state.apply.is_empty() && owed.applied == state.durable;
        // Planted bug, for the simulator's tests only: checkpoint a batch not yet in place.
        let everything_applied =
            everything_applied || cfg!(chunkpipe_planted = "checkpoint_before_apply");
        if state.journal_dirty() && everything_applied && (state.closing || idle) {
            return owed.covering_all;
        }
        None
    }

    /// When an idle checkpoint is due: `flush_interval` after the last publish, or at once
    /// when closing; never while a batch is open or being committed. A pipe with work in hand
    /// is not idle however long its last commit took, and a data sync then would only slow
    /// the journal appends it competes with.
    pub(crate) fn idle_checkpoint_at(&self, state: &State<'_>) -> Option<Instant> {
        if state.closing {
            return Some(Instant::ZERO);
        }
        if !state.all_published() {
            return None;
        }
        let idle_since = state.last_publish_at.unwrap_or(Instant::ZERO);
        Some(idle_since.saturating_add(self.config.flush_interval))
    }

    /// Flush step, `Journal::Atomic`: moves appends to the other half because the next record
    /// does not fit. If no checkpoint has freed that half yet, takes one here first (waiting for
    /// one in progress), covering every record — after writing every published batch in place.
    pub(crate) fn enter_other_half(&self, log: &mut JournalLog) -> Result<(), StoreError> {
        let is_free = || self.lock().checkpoints.checkpointed >= log.other_half_last();
        // Planted bug, for the simulator's tests only: overwrite a half no checkpoint freed.
        #[cfg(chunkpipe_planted = "reuse_unfreed_half")]
        let is_free = || true;
        if !is_free() {
            self.apply_published()?;
            let mut superblock = self.superblock.lock();
            if !is_free() {
                self.take_checkpoint(&mut superblock, log.fresh_lap())?;
            }
        }
        let target = log.switch_half();
        let mut state = self.lock();
        let owed = &mut state.checkpoints;
        if owed.checkpointed < target.epoch {
            owed.half_to_free = Some(target);
        }
        owed.covering_all = Some(log.covering_all());
        Ok(())
    }

    /// Takes the checkpoint due at `now` (see [`due_checkpoint`](Self::due_checkpoint) for
    /// `inline`), if any; a failure poisons the pipe.
    pub(crate) fn take_due_checkpoint(&self, now: Instant, inline: bool) -> Result<bool, Error> {
        let mut superblock = self.superblock.lock();
        let Some(target) = self.due_checkpoint(&self.lock(), now, inline) else {
            return Ok(false);
        };
        self.take_checkpoint(&mut superblock, target)
            .map_err(|e| self.poison_with(e))
    }

    /// Takes `target` unless a checkpoint at least as new was taken; the caller holds the
    /// superblock lock, so one checkpoint runs at a time.
    fn take_checkpoint(
        &self,
        superblock: &mut Option<journal::format::Superblock>,
        target: CheckpointTarget,
    ) -> Result<bool, StoreError> {
        let (Some(current), Some(journal)) = (superblock.as_ref(), self.journal.as_ref()) else {
            return Ok(false);
        };
        if current.checkpoint >= target.epoch {
            return Ok(false);
        }
        let write_table = |slot| {
            let Some(table) = &self.table else {
                return Ok(None);
            };
            // No batch is written in place while the table's pages are copied out: every entry
            // written then belongs to a chunk whose in-place write returned, which the data
            // sync that follows covers.
            let _turn = self.data_turn.lock();
            journal::table::write_slot(table, journal, current.journal_bytes, slot).map(Some)
        };
        let result = journal::checkpoint(&self.store, journal, current, target, write_table);
        let mut state = self.lock();
        state.stats.syncs += 2;
        let next = result?;
        *superblock = Some(next);
        let owed = &mut state.checkpoints;
        owed.checkpointed = target.epoch;
        if owed.half_to_free.is_some_and(|t| t.epoch <= target.epoch) {
            owed.half_to_free = None;
        }
        Ok(true)
    }

    /// Poisons the pipe with `e` (unless already poisoned) and returns the poison error.
    pub(crate) fn poison_with(&self, e: StoreError) -> Error {
        Error::Poisoned(*self.lock().poison.get_or_insert(e))
    }
}

/// What [`Pipe::checkpoint_work`] did.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CheckpointWork {
    /// It wrote batches in place, took a checkpoint or (`Journal::Off`) synced.
    pub(crate) done: bool,
    /// Waiters may be waiting for it: it published epochs, freed staging a writer waited for,
    /// or took a checkpoint (which a closing pipe waits for).
    pub(crate) wakes_waiters: bool,
}
