//! chunkpipe the way an embedded user runs it: `#![no_std]`, no allocator, every buffer lent
//! by the caller (statics on a microcontroller), and the flush and checkpoint steps called from
//! the firmware's main loop instead of a thread.
//!
//! [`SensorLog`] keeps the last [`SLOTS`] readings of a sensor, one chunk each, crash-atomically
//! (`Journal::Atomic`): after a reset, every reading [`SensorLog::record`] reported durable is
//! there, whole. The stores are RAM ([`MemStore`] over lent buffers); a port to flash implements
//! [`ChunkStore`](chunkpipe_core::ChunkStore) over the flash driver instead and keeps the rest.
//!
//! CI builds this crate for `thumbv7em-none-eabihf`; its tests run the same code on the host.
//!
//! ```
//! use chunkpipe_embedded_example::{Buffers, SensorLog};
//! let mut buffers = Buffers::new();
//! let (staging, data, journal) = buffers.split();
//! let log = SensorLog::start(staging, data, journal).unwrap();
//! for tick in 0..100 {
//!     log.record(tick, tick as u16 * 3).unwrap();
//! }
//! assert_eq!(log.latest(99).unwrap(), Some(297));
//! log.close().unwrap();
//! ```
#![no_std]
#![deny(missing_docs)]

use core::task::Poll;

use chunkpipe_core::{
    ChunkStore, Config, Create, Epoch, Error, Instant, Journal, MemStore, Pipe, StagingMemory,
};

/// Bytes per chunk: one reading record.
pub const CHUNK: usize = 64;
/// Readings kept (chunks in the data store); reading `tick` lives in chunk `tick % SLOTS`.
pub const SLOTS: u64 = 32;
/// Staging slots: writes in flight before `record` has to run a flush step itself.
pub const STAGING_CHUNKS: u32 = 4;
/// Journal size: two halves of a few records each.
pub const JOURNAL_BYTES: usize = 8 * 1024;
/// Staging memory the config needs ([`Config::staging_memory_bytes`]; checked by a test).
pub const STAGING_BYTES: usize = 1_287;

/// The pipe's configuration. Without an allocator there is no chunk checksum table (it takes
/// 4 bytes of RAM per data chunk, on the heap): the journal's records stay checksummed, the
/// data store's chunks do not.
pub fn config() -> Config {
    Config::new()
        .with_chunk_size(CHUNK as u32)
        .with_initial_chunks(SLOTS)
        .with_staging_chunks(STAGING_CHUNKS)
        .with_journal(Journal::Atomic)
        .with_journal_bytes(JOURNAL_BYTES as u64)
        .with_chunk_checksums(false)
}

/// Every byte the log uses, in one place (a `static mut` or a `.bss` section on a device).
pub struct Buffers {
    staging: [u8; STAGING_BYTES],
    data: [u8; CHUNK * SLOTS as usize],
    journal: [u8; JOURNAL_BYTES],
}

impl Buffers {
    /// Zeroed buffers.
    pub const fn new() -> Self {
        Buffers {
            staging: [0; STAGING_BYTES],
            data: [0; CHUNK * SLOTS as usize],
            journal: [0; JOURNAL_BYTES],
        }
    }

    /// The three buffers, lent separately.
    pub fn split(&mut self) -> (&mut [u8], &mut [u8], &mut [u8]) {
        (&mut self.staging, &mut self.data, &mut self.journal)
    }
}

impl Default for Buffers {
    fn default() -> Self {
        Self::new()
    }
}

/// Stores over lent RAM.
type Store<'a> = MemStore<'a>;

/// A crash-atomic log of sensor readings over lent memory, driven by its caller. The stores
/// are RAM by default; any [`ChunkStore`] will do ([`over_stores`](SensorLog::over_stores)).
pub struct SensorLog<'a, S = Store<'a>> {
    pipe: Pipe<'a, S>,
    /// The firmware's clock; here one millisecond per `record`.
    now: core::cell::Cell<Instant>,
}

impl<'a> SensorLog<'a> {
    /// Starts a log over fresh (zeroed) stores.
    ///
    /// # Errors
    /// A buffer too small for [`config`].
    pub fn start(
        staging: &'a mut [u8],
        data: &'a mut [u8],
        journal: &'a mut [u8],
    ) -> Result<Self, Error> {
        Self::over(
            staging,
            MemStore::in_buffer(data),
            MemStore::in_buffer(journal),
            Create::New,
        )
    }

    /// Reopens a log over stores that survived a reset (`data_len`/`journal_len` bytes of them
    /// are contents): recovery replays what the journal holds.
    ///
    /// # Errors
    /// As [`start`](Self::start); what recovery reports.
    pub fn resume(
        staging: &'a mut [u8],
        (data, data_len): (&'a mut [u8], usize),
        (journal, journal_len): (&'a mut [u8], usize),
    ) -> Result<Self, Error> {
        Self::over(
            staging,
            MemStore::resume(data, data_len)?,
            MemStore::resume(journal, journal_len)?,
            Create::Never,
        )
    }

    fn over(
        staging: &'a mut [u8],
        data: Store<'a>,
        journal: Store<'a>,
        create: Create,
    ) -> Result<Self, Error> {
        Self::over_stores(staging, data, journal, create)
    }
}

impl<'a, S: ChunkStore> SensorLog<'a, S> {
    /// A log over stores of the caller's (a flash driver's, or RAM with fault injection):
    /// `Create::New` for fresh ones, `Create::Never` for ones that survived a reset.
    ///
    /// # Errors
    /// As [`start`](SensorLog::start) and [`resume`](SensorLog::resume).
    pub fn over_stores(
        staging: &'a mut [u8],
        data: S,
        journal: S,
        create: Create,
    ) -> Result<Self, Error> {
        let config = config().with_create(create);
        let pipe = Pipe::from_parts(data, Some(journal), config, StagingMemory::new(staging))?;
        Ok(SensorLog {
            pipe,
            now: core::cell::Cell::new(Instant::ZERO),
        })
    }

    /// One main-loop iteration: records `value` as reading `tick` and runs the pipe's steps
    /// (a flush step, which makes the batch durable, and a checkpoint step). Returns once the
    /// reading is durable.
    ///
    /// # Errors
    /// What the pipe reports: a poisoned pipe after a store failure.
    pub fn record(&self, tick: u32, value: u16) -> Result<Epoch, Error> {
        let (index, chunk) = reading(tick, value);
        let epoch = loop {
            match self.pipe.try_write(index, &chunk) {
                Ok(epoch) => break epoch,
                // Staging full: run a step to free it, as a thread-less caller must.
                Err(Error::WouldBlock) => self.steps()?,
                Err(e) => return Err(e),
            }
        };
        self.pipe.request_durable(epoch);
        while self.pipe.poll_durable(epoch).is_pending() {
            self.steps()?;
        }
        Ok(epoch)
    }

    /// Records `value` as reading `tick` and waits, asynchronously, until it is durable: for an
    /// async executor (embassy) whose driver task runs the pipe's background
    /// ([`Pipe::run_background_async`]), which commits the reading and whose publish wakes this
    /// task.
    ///
    /// # Errors
    /// A poisoned pipe.
    pub async fn record_async(&self, tick: u32, value: u16) -> Result<Epoch, Error> {
        let (index, chunk) = reading(tick, value);
        let epoch = self.pipe.write_async(index, &chunk).await?;
        self.pipe.durable(epoch).await?;
        Ok(epoch)
    }

    /// The value of reading `tick`, if the slot still holds that tick.
    ///
    /// # Errors
    /// As [`Pipe::read_into`].
    pub fn latest(&self, tick: u32) -> Result<Option<u16>, Error> {
        let mut chunk = [0u8; CHUNK];
        self.pipe.read_into(u64::from(tick) % SLOTS, &mut chunk)?;
        let stored = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        Ok((stored == tick).then(|| u16::from_le_bytes([chunk[4], chunk[5]])))
    }

    /// Flushes, checkpoints and closes the log.
    ///
    /// # Errors
    /// The error that poisoned the pipe, if any.
    pub fn close(&self) -> Result<(), Error> {
        loop {
            match self.pipe.try_close() {
                Poll::Ready(result) => return result,
                Poll::Pending => self.steps()?,
            }
        }
    }

    /// The pipe, for its statistics, durable epoch and recovery report.
    pub fn pipe(&self) -> &Pipe<'a, S> {
        &self.pipe
    }

    fn steps(&self) -> Result<(), Error> {
        let now = self.now.get();
        self.pipe.flush_step(now)?;
        self.pipe.background_step(now)?;
        self.now
            .set(now.saturating_add(core::time::Duration::from_millis(1)));
        Ok(())
    }
}

/// Reading `tick` as the chunk it is stored in, and that chunk's index.
fn reading(tick: u32, value: u16) -> (u64, [u8; CHUNK]) {
    let mut chunk = [0u8; CHUNK];
    chunk[..4].copy_from_slice(&tick.to_le_bytes());
    chunk[4..6].copy_from_slice(&value.to_le_bytes());
    (u64::from(tick) % SLOTS, chunk)
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::*;

    #[test]
    fn the_staging_constant_matches_the_config() {
        assert_eq!(config().staging_memory_bytes(), STAGING_BYTES);
    }

    /// The core without features keeps the `Pipe` value (staging aside) about 1 KiB, under
    /// 1.25 KiB (its docs say so).
    #[test]
    fn a_pipe_value_stays_small() {
        let size = core::mem::size_of::<Pipe<'static, Store<'static>>>();
        assert!(
            size < 1280,
            "Pipe<MemStore> is {size} bytes without features"
        );
    }

    #[test]
    fn readings_survive_a_reset_whole() {
        let mut buffers = std::boxed::Box::new(Buffers::new());
        let (staging, data, journal) = buffers.split();
        let (data_len, journal_len) = (data.len(), journal.len());
        {
            let log = SensorLog::start(staging, data, journal).unwrap();
            for tick in 0..200u32 {
                log.record(tick, (tick * 7) as u16).unwrap();
            }
            assert!(log.pipe().stats().batches >= 200 / STAGING_CHUNKS as u64);
            // A reset: the log is dropped without closing; the RAM keeps its contents.
        }
        let (staging, data, journal) = buffers.split();
        let log = SensorLog::resume(staging, (data, data_len), (journal, journal_len)).unwrap();
        for tick in 200 - SLOTS as u32..200 {
            assert_eq!(
                log.latest(tick).unwrap(),
                Some((tick * 7) as u16),
                "tick {tick}"
            );
        }
        assert!(
            log.pipe().durable_epoch() >= Epoch::new(200),
            "epochs continue"
        );
        log.close().unwrap();
    }
}
