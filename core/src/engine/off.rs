//! `Journal::Off`: classic in-place writes. A batch is written where its chunks live (its
//! staging is free from then on: reads find it in the store), then one `sync` of the data store
//! makes it — and every batch written before the sync began — durable.
//!
//! A flush step writes the open batch in place and syncs at once if someone asked for
//! durability (a waiter, a `sync`, a close); otherwise it leaves the sync to the background
//! step. So a writer that only needs staging back writes its batch in place and goes on
//! filling the next one while the background syncs. Meanwhile another flush step may write the
//! next batch in place: writes and syncs overlap.
//!
//! **Invariant: at most two batches are written in place ahead of the syncs** — one being
//! synced, one written meanwhile; a flush step that would write a third syncs instead (and the
//! next step writes it). That bounds the data a crash can tear beyond what staging holds.

use crate::engine::{CommitTurn, Wake, fail, grow_step, retire, seal, write_in_place};
use crate::staging::SealedBatch;
use crate::state::{Shared, State};
use crate::sync::Mutex;
use crate::{ChunkStore, Epoch, Error, Instant};

/// The most batches written in place that no finished sync covers.
const MAX_AHEAD: u64 = 2;

/// The `Journal::Off` engine.
pub(crate) struct OffEngine {
    /// Held by the one sync running, so epochs are published in order.
    sync: Mutex<()>,
    /// The batches written in place.
    written: Mutex<Written>,
}

/// The batches written in place so far.
#[derive(Default)]
struct Written {
    /// The newest (the durable epoch when none is owed a sync).
    epoch: Epoch,
    /// Chunks in those a sync has not covered yet (before dropping superseded writes).
    chunks: u64,
}

impl OffEngine {
    /// An engine for a pipe opened with `durable` published (epochs restart after a reopen,
    /// so `Epoch::NONE`).
    pub(crate) fn new(durable: Epoch) -> Self {
        OffEngine {
            sync: Mutex::new(()),
            written: Mutex::new(Written {
                epoch: durable,
                chunks: 0,
            }),
        }
    }

    /// Writes the open batch in place, then syncs if someone asked for durability.
    ///
    /// # Errors
    /// [`Error::WouldBlock`] while another flush step writes a batch in place;
    /// [`Error::Poisoned`] when this or an earlier step failed.
    pub(crate) fn flush_step<S: ChunkStore>(
        &self,
        shared: &Shared<'_, S>,
        now: Instant,
    ) -> Result<Wake, Error> {
        // One flush step at a time writes a batch in place, so batches reach the store in epoch
        // order (lock order: `sync`, the state lock, `written`).
        let turn = CommitTurn::take(shared)?;
        let mut wake = grow_step(shared, |_| Ok(()))?;
        if self.ahead(&shared.lock()) >= MAX_AHEAD {
            // The open batch waits for the next step: a step publishes once, last.
            wake |= self.sync_owed(shared)?;
            return Ok(wake);
        }
        if let Some((mut batch, epoch)) = seal(shared, now)? {
            batch.prepare_write();
            if let Err(e) = write_in_place(&shared.data, shared.chunk_bytes(), &batch) {
                return Err(fail(shared, batch, e));
            }
            hint_writeback(shared, &batch);
            wake.writers |= self.written(shared, batch, epoch);
        }
        // The next flush step may write its batch in place while this one syncs.
        drop(turn);
        let wanted = {
            let state = shared.lock();
            self.owes(&state) && (state.wanted > state.durable || state.closing)
        };
        if wanted {
            wake |= self.sync_owed(shared)?;
        } else {
            wake.background |= self.owes(&shared.lock());
        }
        Ok(wake)
    }

    /// Syncs what was written in place.
    ///
    /// # Errors
    /// [`Error::Poisoned`].
    pub(crate) fn background_step<S: ChunkStore>(
        &self,
        shared: &Shared<'_, S>,
    ) -> Result<Wake, Error> {
        self.sync_owed(shared)
    }

    /// Whether batches are written in place that no finished sync covers.
    pub(crate) fn owes(&self, state: &State<'_>) -> bool {
        self.ahead(state) > 0
    }

    /// Batches written in place ahead of the syncs. Epochs are consecutive, so they are the
    /// ones after the durable epoch.
    fn ahead(&self, state: &State<'_>) -> u64 {
        let written = self.written.lock().epoch;
        written.get().saturating_sub(state.durable.get())
    }

    /// A batch is written in place: its chunks are read from the store from now on, and its
    /// staging is free while it syncs. Returns whether a writer waited for that staging.
    fn written<'a, S>(&self, shared: &Shared<'a, S>, batch: SealedBatch<'a>, epoch: Epoch) -> bool {
        let chunks = batch.len() as u64;
        let bytes = batch.live_len() as u64 * shared.chunk_bytes();
        let mut state = shared.lock();
        let mut written = self.written.lock();
        debug_assert_eq!(
            epoch,
            written.epoch.next(),
            "batches are written in epoch order"
        );
        written.epoch = epoch;
        written.chunks += chunks;
        state.stats.in_place_bytes += bytes;
        retire(&mut state, batch)
    }

    /// Syncs the data store and publishes every batch written in place before the sync began;
    /// nothing when nothing is owed.
    fn sync_owed<S: ChunkStore>(&self, shared: &Shared<'_, S>) -> Result<Wake, Error> {
        let _turn = self.sync.lock();
        let (target, batches, chunks) = {
            let state = shared.lock();
            state.latch.check()?;
            let mut written = self.written.lock();
            let batches = written.epoch.get().saturating_sub(state.durable.get());
            if batches == 0 {
                return Ok(Wake::default());
            }
            (written.epoch, batches, core::mem::take(&mut written.chunks))
        };
        // Planted bug, for the simulator's tests only (never in a normal build).
        #[cfg(chunkpipe_planted = "publish_before_sync")]
        {
            shared.lock().durable = target;
        }
        let result = shared.data.sync();
        let mut state = shared.lock();
        state.stats.syncs += 1;
        match result {
            Ok(()) => {
                state.publish(target);
                state.stats.batches += batches;
                state.stats.chunks += chunks;
                Ok(Wake {
                    durable: Some(target),
                    ..Wake::default()
                })
            }
            Err(e) => Err(state.latch.trip(e)),
        }
    }
}

/// Hints writeback of the range a prepared batch covers. Only a hint: the sync that follows
/// reports any real failure.
fn hint_writeback<S: ChunkStore>(shared: &Shared<'_, S>, batch: &SealedBatch<'_>) {
    let chunk_bytes = shared.chunk_bytes();
    let start = batch.chunk(0) * chunk_bytes;
    let end = (batch.chunk(batch.live_len() - 1) + 1) * chunk_bytes;
    let _ = shared.data.start_writeback(start, end - start);
}
