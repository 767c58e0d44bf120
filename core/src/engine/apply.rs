//! `Journal::Atomic`: writing published batches in place (the background step's main work),
//! and pacing their writeback so that a checkpoint's data sync finds little left to write.
//!
//! A published batch keeps its staging slots — where reads find its chunks — until it is
//! written in place; then its chunks' checksums enter the table (before the batch leaves the
//! index, so a read never checks a chunk against an entry older than what it read) and its
//! staging is retired. One apply runs at a time (`data_turn`), oldest batch first.
//!
//! **Pacing.** In-place data left dirty piles up until the next checkpoint's data sync, which
//! then writes it all at once while commits' journal syncs wait behind it on the device. So
//! after every [`PACE_BYTES`] written in place the background starts writeback of the data store
//! (a hint: `sync_file_range` on Linux), and a stretch of at least [`BULK_BYTES`] consecutive
//! bytes starts its writeback at once.

use crate::engine::atomic::AtomicEngine;
use crate::engine::{Wake, retire, write_in_place};
use crate::staging::SealedBatch;
use crate::state::Shared;
use crate::{ChunkStore, Error};

/// Bytes written in place after which the background starts writeback of the data store.
const PACE_BYTES: u64 = 8 << 20;

/// The fewest consecutive bytes of one batch whose writeback starts as soon as it is in place.
const BULK_BYTES: u64 = 1 << 20;

impl<'a, S: ChunkStore> AtomicEngine<'a, S> {
    /// Writes every published batch in the queue in place, oldest first, and retires each
    /// one's staging. Wakes writers only if one waited for staging.
    ///
    /// # Errors
    /// [`Error::Poisoned`]: a failed in-place write poisons the pipe (the journal still holds
    /// the batch; reopening replays it).
    pub(crate) fn apply(&self, shared: &Shared<'a, S>) -> Result<Wake, Error> {
        let _turn = self.data_turn.lock();
        let mut wake = Wake::default();
        loop {
            let (batch, epoch) = {
                let state = shared.lock();
                state.latch.check()?;
                match self.books.lock().queue.take_oldest() {
                    Some(oldest) => oldest,
                    None => return Ok(wake),
                }
            };
            let result = write_in_place(&shared.data, shared.chunk_bytes(), &batch);
            if result.is_ok() {
                self.start_bulk_writeback(shared, &batch);
            }
            let bytes = batch.live_len() as u64 * shared.chunk_bytes();
            let mut state = shared.lock();
            if result.is_ok() {
                self.record_checksums(&batch);
            }
            wake.writers |= retire(&mut state, batch);
            let mut books = self.books.lock();
            books.queue.finish();
            if let Err(e) = result {
                return Err(state.latch.trip(e));
            }
            books.applied = epoch;
            books.unhinted_bytes += bytes;
            state.stats.in_place_bytes += bytes;
        }
    }

    /// Enters the CRCs the journal append kept with `batch` into the checksum table, once the
    /// batch is in place. The caller holds the state lock (lock order: state, table).
    fn record_checksums(&self, batch: &SealedBatch<'a>) {
        if let Some(table) = &self.table {
            let mut table = table.lock();
            for i in 0..batch.live_len() {
                table.set(batch.chunk(i), batch.crc(i));
            }
        }
    }

    /// Starts writeback of each stretch of at least [`BULK_BYTES`] consecutive chunks of a
    /// batch just written in place. Only a hint: the checkpoint's data sync reports failures.
    fn start_bulk_writeback(&self, shared: &Shared<'a, S>, batch: &SealedBatch<'a>) {
        let chunk_bytes = shared.chunk_bytes();
        let fewest = BULK_BYTES.div_ceil(chunk_bytes);
        let live = batch.live_len();
        let mut start = 0;
        while start < live {
            let run = batch.consecutive_run(start, live);
            if run as u64 >= fewest {
                let offset = batch.chunk(start) * chunk_bytes;
                let _ = shared
                    .data
                    .start_writeback(offset, run as u64 * chunk_bytes);
            }
            start += run;
        }
    }

    /// After every [`PACE_BYTES`] written in place, starts writeback of the whole data store (a
    /// hint; see the module docs).
    pub(crate) fn pace_writeback(&self, shared: &Shared<'a, S>) {
        let due = {
            let mut books = self.books.lock();
            let due = books.unhinted_bytes >= PACE_BYTES;
            if due {
                books.unhinted_bytes = 0;
            }
            due
        };
        if due {
            let len = shared.data.len().unwrap_or(0);
            let _ = shared.data.start_writeback(0, len);
        }
    }
}
