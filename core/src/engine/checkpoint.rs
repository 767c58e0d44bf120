//! `Journal::Atomic` checkpoints: when one is due, which one, and taking it.
//!
//! A checkpoint makes the data store alone hold every batch up to some epoch (one data sync),
//! then records that in the journal's superblock (with the checksum table's slot), so the
//! records before it are never replayed and their half of the journal can take new appends.
//! Two kinds are due, both taken by the background step:
//!
//! - **a half to free**: appends moved to the other half; the half they left must be covered
//!   before appends come back to it. Due as soon as every batch in it is in place — early, so
//!   that no commit waits for it.
//! - **idle or closing**: no batch open or being committed, nothing published for
//!   `flush_interval` (or the pipe closing), and records no checkpoint covers; covering them all
//!   keeps recovery short.
//!
//! A commit takes one itself only when appends need a half no checkpoint has freed yet (the
//! background fell behind): `enter_other_half`.

use crate::engine::Wake;
use crate::engine::atomic::{AtomicEngine, Books};
use crate::journal::format::Superblock;
use crate::journal::{self, CheckpointTarget, JournalLog};
use crate::state::{Shared, State};
use crate::{ChunkStore, Config, Error, Instant, StoreError};

impl<'a, S: ChunkStore> AtomicEngine<'a, S> {
    /// Takes the checkpoint due at `now`, if any. Wakes a close that waits for it.
    ///
    /// # Errors
    /// [`Error::Poisoned`]: a failed checkpoint poisons the pipe (the journal may no longer be
    /// trusted to cover what it must).
    pub(crate) fn checkpoint_if_due(
        &self,
        shared: &Shared<'a, S>,
        now: Instant,
    ) -> Result<Wake, Error> {
        let mut superblock = self.superblock.lock();
        let due = {
            let state = shared.lock();
            state.latch.check()?;
            let books = self.books.lock();
            self.due(&shared.config, &state, &books, now)
        };
        let Some(target) = due else {
            return Ok(Wake::default());
        };
        if let Err(e) = self.take(shared, &mut superblock, target) {
            return Err(shared.trip(e));
        }
        Ok(Wake {
            settled: shared.lock().closing,
            ..Wake::default()
        })
    }

    /// The checkpoint due at `now`, if any (see the module docs).
    fn due(
        &self,
        config: &Config,
        state: &State<'_>,
        books: &Books<'_>,
        now: Instant,
    ) -> Option<CheckpointTarget> {
        // Planted bug, for the simulator's tests only: checkpoint batches not yet in place.
        let in_place =
            |epoch| books.applied >= epoch || cfg!(chunkpipe_planted = "checkpoint_before_apply");
        if let Some(target) = books.half_to_free.filter(|t| in_place(t.epoch)) {
            return Some(target);
        }
        let idle = self
            .idle_checkpoint_at(config, state, books)
            .is_some_and(|at| now >= at);
        let queue_empty =
            books.queue.is_empty() || cfg!(chunkpipe_planted = "checkpoint_before_apply");
        (idle && queue_empty && in_place(state.durable)).then_some(books.covering_all)
    }

    /// When an idle checkpoint is due: `flush_interval` after the last publish, or at once
    /// when closing — as long as records no checkpoint covers remain and no batch is open or
    /// being committed (a pipe with work in hand is not idle however long its last commit
    /// took, and a data sync then would only slow the journal syncs it competes with).
    pub(super) fn idle_checkpoint_at(
        &self,
        config: &Config,
        state: &State<'_>,
        books: &Books<'_>,
    ) -> Option<Instant> {
        if books.checkpointed >= state.durable || !state.all_published() {
            return None;
        }
        if state.closing {
            return Some(Instant::ZERO);
        }
        let idle_since = books.last_publish_at.unwrap_or(Instant::ZERO);
        Some(idle_since.saturating_add(config.flush_interval))
    }

    /// The commit, `Journal::Atomic`: moves appends to the other half because the next record
    /// does not fit. If no checkpoint has freed that half yet, takes one first, covering every
    /// record — after writing every published batch in place.
    pub(crate) fn enter_other_half(
        &self,
        shared: &Shared<'a, S>,
        log: &mut JournalLog,
    ) -> Result<(), StoreError> {
        let is_free = || self.books.lock().checkpointed >= log.other_half_last();
        // Planted bug, for the simulator's tests only: overwrite a half no checkpoint freed.
        let is_free = || is_free() || cfg!(chunkpipe_planted = "reuse_unfreed_half");
        if !is_free() {
            self.apply(shared).map_err(|e| match e {
                Error::Poisoned(e) | Error::Store(e) => e,
                _ => StoreError::new(crate::StoreErrorKind::Internal, crate::Op::Write),
            })?;
            let mut superblock = self.superblock.lock();
            if !is_free() {
                shared.lock().stats.commits_behind_checkpoints += 1;
                self.take(shared, &mut superblock, log.fresh_lap())?;
            }
        }
        let target = log.switch_half();
        let mut books = self.books.lock();
        if books.checkpointed < target.epoch {
            books.half_to_free = Some(target);
        }
        books.covering_all = log.covering_all();
        Ok(())
    }

    /// Takes `target` unless a checkpoint at least as new was taken; the caller holds the
    /// superblock lock, so one checkpoint runs at a time. The checksum table's pages are copied
    /// out under the data turn, so no batch is written in place meanwhile: every entry copied
    /// belongs to a chunk whose in-place write returned, which the data sync that follows
    /// covers.
    fn take(
        &self,
        shared: &Shared<'a, S>,
        superblock: &mut Superblock,
        target: CheckpointTarget,
    ) -> Result<(), StoreError> {
        if superblock.checkpoint >= target.epoch {
            return Ok(());
        }
        let write_table = |slot| {
            let Some(table) = &self.table else {
                return Ok(None);
            };
            let _turn = self.data_turn.lock();
            journal::table::write_slot(table, &self.journal, superblock.journal_bytes, slot)
                .map(Some)
        };
        let result =
            journal::checkpoint(&shared.data, &self.journal, superblock, target, write_table);
        let mut state = shared.lock();
        state.stats.syncs += if self.table.is_some() { 3 } else { 2 };
        *superblock = result?;
        drop(state);
        let mut books = self.books.lock();
        books.checkpointed = target.epoch;
        if books.half_to_free.is_some_and(|t| t.epoch <= target.epoch) {
            books.half_to_free = None;
        }
        Ok(())
    }
}

impl Books<'_> {
    /// The checkpoint that frees the half appends left, once every batch in it is in place.
    pub(super) fn half_due(&self) -> Option<CheckpointTarget> {
        self.half_to_free
            .filter(|target| self.applied >= target.epoch)
    }
}
