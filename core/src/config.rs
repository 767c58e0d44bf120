//! Pipe configuration and its validation.

use core::time::Duration;

use crate::Error;

/// How batches are made durable.
///
/// This is the seam where the crash-atomic journaled mode plugs in: a mode decides what
/// [`Pipe::flush_step`](crate::Pipe::flush_step) writes before the sync that publishes a batch.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Journal {
    /// Crash-atomic batches (the default): each batch is appended to a journal store as one
    /// checksummed record and made durable with one journal sync, then written in place. A
    /// crash leaves every batch — and so every transaction and multi-chunk write — entirely
    /// applied or entirely absent, and epochs continue across reopens. Every byte is written
    /// twice (journal, then in place). See the `journal` module for the format.
    #[default]
    Atomic,
    /// Classic in-place writes: each batch is written where its chunks live, a writeback hint is
    /// issued, then one `sync`. One sync per batch and no write amplification, but a crash
    /// during a batch can leave any subset of its sectors on disk: chunks and transactions can
    /// tear. Nothing durable records epochs: a reopened pipe starts again at epoch 1.
    Off,
}

/// Whether opening may create the pipe's storage, as `std::fs::OpenOptions` offers for files.
///
/// A pipe exists once its storage is created (journal formatted and synced; for files, once
/// `<path>.meta` is written last). Storage that exists is never created again: a journal or data
/// store of an existing pipe that is missing, blank or short is [`Error::Corrupt`], never
/// replaced by an empty one.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Create {
    /// Open the pipe, or create it when there is none (the default). For bare stores, "none"
    /// means an empty journal store (`Journal::Atomic`) or an empty data store (`Journal::Off`).
    #[default]
    IfMissing,
    /// Create a new pipe; [`Error::AlreadyExists`] if one is there.
    New,
    /// Open an existing pipe; [`Error::NotFound`] if there is none.
    Never,
}

/// What opening a `Journal::Atomic` pipe does when recovery finds damage, after RocksDB's WAL
/// recovery modes. A torn tail — the last append, cut short by a crash before its sync returned,
/// so never acknowledged — is dropped in both modes.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Recovery {
    /// Damage is an error ([`Error::Corrupt`]): the pipe does not open (the default).
    #[default]
    Strict,
    /// Open anyway: replay up to the damage, drop it and every record after it, and report
    /// exactly which epochs were dropped ([`RecoveryReport::dropped`](crate::RecoveryReport)).
    /// Epochs continue after the last one dropped, so none is handed out twice.
    PointInTime,
}

/// What a file backend does where the file system refuses its full sync — the call that flushes
/// the device's volatile cache (`F_FULLFSYNC` on macOS, refused by some network and FUSE file
/// systems). The backend finds out once, when it opens the pipe, before anything is written.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum WeakSyncs {
    /// Opening fails with a [`StoreErrorKind::Unsupported`](crate::StoreErrorKind) sync error:
    /// `wait` keeps meaning durable (the default).
    #[default]
    Refuse,
    /// Use the file system's weaker sync instead (`fsync` on macOS), which may leave
    /// acknowledged writes in the device's volatile cache: **a power loss can lose writes that
    /// `wait` reported durable**. Every such sync is counted
    /// ([`PipeStats::data_weak_syncs`](crate::PipeStats), `journal_weak_syncs`).
    AllowLosingWritesOnPowerLoss,
}

/// The largest chunk size accepted (1 GiB).
pub const MAX_CHUNK_SIZE: u32 = 1 << 30;
/// The largest staging pool accepted, in chunks.
pub const MAX_STAGING_CHUNKS: u32 = 1 << 24;

/// Configuration of a pipe. Build it with [`Config::new`] and the `with_*` methods; it is checked
/// by [`Config::validate`] when a pipe is created.
///
/// ```
/// use chunkpipe_core::Config;
/// let config = Config::new().with_chunk_size(512).with_staging_chunks(64);
/// assert!(config.validate().is_ok());
/// assert!(Config::new().with_chunk_size(0).validate().is_err());
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Bytes per chunk (default 4096). Every read and write is a whole number of chunks.
    pub chunk_size: u32,
    /// Length a new store is grown to when it is created empty (default 0).
    pub initial_chunks: u64,
    /// Staging capacity in chunks (default 1024, i.e. 4 MiB at 4 KiB chunks). It bounds the
    /// memory in flight, the largest write or transaction, and the largest batch.
    pub staging_chunks: u32,
    /// How long a batch nobody waits for stays open before the background step commits it, and
    /// how long the pipe must be idle before the background step checkpoints (default 10 ms).
    /// Never a delay for a writer that waits: it commits at once.
    pub flush_interval: Duration,
    /// How long a batch nobody waits for may be held open to gather more writes (default 0). A
    /// waiter, a `sync`, a close or a writer short of staging seals it at once.
    pub max_batch_delay: Duration,
    /// The durability mode.
    pub journal: Journal,
    /// Size of a journal created by `Journal::Atomic` (default 64 MiB); an existing journal
    /// keeps its size. Each of its two halves must hold a record of a full staging pool.
    pub journal_bytes: u64,
    /// Whether opening may create the pipe (default [`Create::IfMissing`]).
    pub create: Create,
    /// What recovery does about damage (default [`Recovery::Strict`]).
    pub recovery: Recovery,
    /// `Journal::Atomic`: keep a checksum of every chunk of the data store and check every
    /// chunk read from it, so that damage there (a flipped bit, a lost or misdirected write) is
    /// [`Error::Corrupt`] instead of wrong bytes (default `true`). The checksums live in the
    /// journal store and, as 4 bytes a chunk, in memory, so they need the `alloc` feature.
    /// Fixed when the pipe is created. `Journal::Off` keeps none.
    pub chunk_checksums: bool,
    /// The id a new journal gets, which every record repeats so that records of another
    /// journal never pass for its own (default `None`: drawn at random). Set it only to make
    /// runs repeat byte for byte (simulations, tests).
    pub journal_id: Option<core::num::NonZeroU64>,
    /// What a file backend does where the file system refuses its full sync (default
    /// [`WeakSyncs::Refuse`]).
    pub weak_syncs: WeakSyncs,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            chunk_size: 4096,
            initial_chunks: 0,
            staging_chunks: 1024,
            flush_interval: Duration::from_millis(10),
            max_batch_delay: Duration::ZERO,
            journal: Journal::Atomic,
            journal_bytes: 64 << 20,
            create: Create::IfMissing,
            recovery: Recovery::Strict,
            chunk_checksums: true,
            journal_id: None,
            weak_syncs: WeakSyncs::Refuse,
        }
    }
}

impl Config {
    /// The default configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`Config::chunk_size`].
    pub fn with_chunk_size(mut self, bytes: u32) -> Self {
        self.chunk_size = bytes;
        self
    }

    /// Sets [`Config::initial_chunks`].
    pub fn with_initial_chunks(mut self, chunks: u64) -> Self {
        self.initial_chunks = chunks;
        self
    }

    /// Sets [`Config::staging_chunks`].
    pub fn with_staging_chunks(mut self, chunks: u32) -> Self {
        self.staging_chunks = chunks;
        self
    }

    /// Sets [`Config::flush_interval`].
    pub fn with_flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval;
        self
    }

    /// Sets [`Config::max_batch_delay`].
    pub fn with_max_batch_delay(mut self, delay: Duration) -> Self {
        self.max_batch_delay = delay;
        self
    }

    /// Sets [`Config::journal`].
    pub fn with_journal(mut self, journal: Journal) -> Self {
        self.journal = journal;
        self
    }

    /// Sets [`Config::journal_bytes`].
    pub fn with_journal_bytes(mut self, bytes: u64) -> Self {
        self.journal_bytes = bytes;
        self
    }

    /// Sets [`Config::create`].
    pub fn with_create(mut self, create: Create) -> Self {
        self.create = create;
        self
    }

    /// Sets [`Config::recovery`].
    pub fn with_recovery(mut self, recovery: Recovery) -> Self {
        self.recovery = recovery;
        self
    }

    /// Sets [`Config::chunk_checksums`].
    pub fn with_chunk_checksums(mut self, on: bool) -> Self {
        self.chunk_checksums = on;
        self
    }

    /// Sets [`Config::weak_syncs`].
    pub fn with_weak_syncs(mut self, weak_syncs: WeakSyncs) -> Self {
        self.weak_syncs = weak_syncs;
        self
    }

    /// Sets [`Config::journal_id`] (0: drawn at random).
    pub fn with_journal_id(mut self, id: u64) -> Self {
        self.journal_id = core::num::NonZeroU64::new(id);
        self
    }

    /// Whether this config keeps a chunk checksum table (`Journal::Atomic` with
    /// [`chunk_checksums`](Config::chunk_checksums)).
    pub(crate) fn checksummed(&self) -> bool {
        self.journal == Journal::Atomic && self.chunk_checksums
    }

    /// Checks every field and the sizes derived from them.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the first rule that is broken.
    pub fn validate(&self) -> Result<(), Error> {
        if self.chunk_size == 0 {
            return Err(Error::InvalidInput("chunk_size must not be zero"));
        }
        if self.chunk_size > MAX_CHUNK_SIZE {
            return Err(Error::InvalidInput("chunk_size must be at most 1 GiB"));
        }
        if self.staging_chunks == 0 {
            return Err(Error::InvalidInput("staging_chunks must not be zero"));
        }
        if self.staging_chunks > MAX_STAGING_CHUNKS {
            return Err(Error::InvalidInput("staging_chunks must be at most 2^24"));
        }
        if self
            .initial_chunks
            .checked_mul(u64::from(self.chunk_size))
            .is_none()
        {
            return Err(Error::InvalidInput(
                "initial_chunks * chunk_size overflows u64",
            ));
        }
        if self.flush_interval.is_zero() {
            return Err(Error::InvalidInput("flush_interval must not be zero"));
        }
        if self.max_batch_delay > self.flush_interval {
            return Err(Error::InvalidInput(
                "max_batch_delay must not exceed flush_interval",
            ));
        }
        if self.journal == Journal::Atomic {
            let record = crate::journal::format::record_bytes(
                u64::from(self.staging_chunks),
                self.chunk_bytes(),
            );
            if !crate::journal::format::holds_record(self.journal_bytes, record) {
                return Err(Error::InvalidInput(
                    "journal_bytes: each half must hold a record of a full staging pool",
                ));
            }
        }
        if self.checksummed() && !cfg!(feature = "alloc") {
            return Err(Error::InvalidInput(
                "chunk_checksums need the alloc feature; turn them off without it",
            ));
        }
        crate::staging::StagingLayout::for_config(self).map(|_| ())
    }

    /// Bytes per chunk as a `u64`, for offset arithmetic.
    pub(crate) fn chunk_bytes(&self) -> u64 {
        u64::from(self.chunk_size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn each_rule_is_enforced() {
        let bad = [
            Config::new().with_chunk_size(0),
            Config::new().with_chunk_size(MAX_CHUNK_SIZE + 1),
            Config::new().with_staging_chunks(0),
            Config::new().with_staging_chunks(MAX_STAGING_CHUNKS + 1),
            Config::new().with_initial_chunks(u64::MAX),
            Config::new().with_flush_interval(Duration::ZERO),
            Config::new().with_max_batch_delay(Duration::from_secs(1)),
            Config::new().with_journal_bytes(4096),
        ];
        for config in bad {
            assert!(
                matches!(config.validate(), Err(Error::InvalidInput(_))),
                "{config:?} passed validation"
            );
        }
    }
}
