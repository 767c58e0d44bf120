//! chunkpipe-tests: the conformance suite, written once and run against every backend.
//!
//! A backend provides a [`Harness`] — how to open its storage as a ready pipe — and expands
//! [`conformance!`] in its test file, which makes one `#[test]` per case so a failure names the
//! case. Every pipe is opened over a [`FaultyStore`], so the fault cases run on every backend.
//!
//! To run the suite against a new backend, implement [`Harness`] for it (and [`FileHarness`]
//! if it locks its files) and add a test file like `tests/mem.rs`. A POSIX backend needs only
//! its [`Platform`](chunkpipe_posix::Platform): [`PosixFiles`] is the harness over real files
//! (see `tests/linux.rs`, `tests/macos.rs`).
#![deny(missing_docs)]

pub mod conformance;
mod faulty;
#[cfg(unix)]
mod files;

use std::sync::atomic::{AtomicBool, Ordering};

use chunkpipe_core::{ChunkStore, Config, Create, Error, Journal, ThreadedPipe};
pub use faulty::FaultyStore;
#[cfg(unix)]
pub use files::PosixFiles;

/// A pipe under test: the backend's stores behind [`FaultyStore`]s, with its background thread
/// running.
pub type TestPipe<S> = ThreadedPipe<FaultyStore<S>>;

/// Journal size the suite gives `Journal::Atomic` pipes (small: every open writes it once).
pub const TEST_JOURNAL_BYTES: u64 = 1 << 20;

/// `config` in `mode`, with the suite's journal size.
pub fn in_mode(config: Config, mode: Journal) -> Config {
    config
        .with_journal(mode)
        .with_journal_bytes(TEST_JOURNAL_BYTES)
}

/// Starts a pipe over `data` (and, for `Journal::Atomic`, `journal`), both behind fault
/// wrappers that share their controls.
///
/// # Errors
/// As [`ThreadedPipe::start`] / [`ThreadedPipe::start_journaled`].
pub fn start<S: ChunkStore + Send + Sync + 'static>(
    data: S,
    journal: impl FnOnce() -> Result<S, Error>,
    config: Config,
) -> Result<TestPipe<S>, Error> {
    let data = FaultyStore::new(data);
    match config.journal {
        Journal::Off => ThreadedPipe::start(data, config),
        _ => {
            let journal = FaultyStore::beside(journal()?, &data);
            ThreadedPipe::start_journaled(data, journal, config)
        }
    }
}

/// As [`start`], but in the no-allocator configuration: the pipe's staging is `staging`, lent
/// through [`StagingMemory::new`](chunkpipe_core::StagingMemory::new), so the core allocates
/// nothing (the background thread is the harness's).
///
/// # Errors
/// As [`Pipe::from_parts`](chunkpipe_core::Pipe::from_parts).
pub fn start_lent<S: ChunkStore + Send + Sync + 'static>(
    data: S,
    journal: impl FnOnce() -> Result<S, Error>,
    config: Config,
    staging: &'static mut [u8],
) -> Result<TestPipe<S>, Error> {
    let data = FaultyStore::new(data);
    let journal = match config.journal {
        Journal::Off => None,
        _ => Some(FaultyStore::beside(journal()?, &data)),
    };
    let memory = chunkpipe_core::StagingMemory::new(staging);
    ThreadedPipe::from_pipe(chunkpipe_core::Pipe::from_parts(
        data, journal, config, memory,
    )?)
}

/// For harnesses over bare stores, what a file backend's `.meta` is: whether the pipe was
/// created, so that later opens require it to exist ([`Create::Never`]) and a blank or missing
/// journal is damage rather than a pipe to create again.
#[derive(Debug, Default)]
pub struct CreationMark(AtomicBool);

impl CreationMark {
    /// `config` as the next open should use it: `Create::New` until a pipe was created,
    /// `Create::Never` after (a config that asks for something else keeps it).
    pub fn config(&self, config: Config) -> Config {
        if config.create != Create::IfMissing {
            return config;
        }
        let created = self.0.load(Ordering::SeqCst);
        config.with_create(if created { Create::Never } else { Create::New })
    }

    /// Notes the outcome of an open.
    pub fn note<T>(&self, opened: Result<T, Error>) -> Result<T, Error> {
        if opened.is_ok() {
            self.0.store(true, Ordering::SeqCst);
        }
        opened
    }
}

/// Every byte of `store`, for harnesses that implement [`Harness::journal_image`] over a
/// [`ChunkStore`].
///
/// # Panics
/// If the store cannot be read.
pub fn store_image(store: &impl ChunkStore) -> Vec<u8> {
    let mut image = vec![0; store.len().expect("store length") as usize];
    store.read_at(0, &mut [&mut image]).expect("store read");
    image
}

/// How the suite reaches one backend's storage.
pub trait Harness {
    /// The backend's store.
    type Store: ChunkStore + Send + Sync + 'static;

    /// Opens this harness's storage — created empty the first time, the same storage on every
    /// later call — as a ready pipe, in the harness's durability mode (whatever
    /// `config.journal` says; see [`Harness::mode`]).
    ///
    /// # Errors
    /// Whatever the backend's open reports.
    fn open(&self, config: Config) -> Result<TestPipe<Self::Store>, Error>;

    /// The durability mode the harness runs the suite in.
    fn mode(&self) -> Journal;

    /// Appends `bytes` raw bytes to the storage while no pipe is open (to make its length not
    /// fit a config).
    fn append_raw(&self, bytes: usize);

    /// The journal's bytes as a reader of the journal store sees them now (empty before the
    /// first `Journal::Atomic` open).
    fn journal_image(&self) -> Vec<u8>;

    /// Overwrites journal bytes at `offset`, durably, while no pipe is open (to damage it).
    fn patch_journal(&self, offset: u64, bytes: &[u8]);

    /// The data store's bytes as a reader sees them now.
    fn data_image(&self) -> Vec<u8>;

    /// Overwrites data store bytes at `offset`, durably (to damage it; a pipe may be open).
    fn patch_data(&self, offset: u64, bytes: &[u8]);
}

/// A harness over files: storage that is locked while a pipe has it open and that records the
/// configuration it was created with.
pub trait FileHarness: Harness {
    /// Tries to open the storage a second time, bypassing nothing.
    ///
    /// # Errors
    /// [`Error::Locked`] while a pipe holds it.
    fn open_again(&self) -> Result<(), Error>;

    /// Overwrites the storage's metadata record with `bytes`.
    fn replace_meta(&self, bytes: &[u8]);

    /// Deletes one of the pipe's files while no pipe is open.
    fn remove(&self, file: chunkpipe_core::StoreRole);

    /// Cuts (or extends) the journal to `len` bytes while no pipe is open.
    fn set_journal_len(&self, len: u64);

    /// Cuts (or extends) the data file to `len` bytes while no pipe is open.
    fn set_data_len(&self, len: u64);
}

/// Expands to one `#[test]` per conformance case, each on a fresh harness from `$make`.
/// `files` adds the cases that need a [`FileHarness`]; `journal` adds the cases of
/// `Journal::Atomic` (recovery from a crash, torn and damaged journals, damaged chunks);
/// `journal_files` the `Journal::Atomic` cases that need a [`FileHarness`].
#[macro_export]
macro_rules! conformance {
    ($make:expr) => {
        $crate::conformance!(@cases $make;
            round_trips_of_1_2_4_and_many_chunks, overwrite_returns_the_newest_value,
            multi_chunk_write_is_one_epoch, reopen_keeps_data,
            reopen_after_a_crash_keeps_what_was_acknowledged, grow_then_write,
            sync_forces_durability_and_returns_at_once_when_idle, epochs_are_monotone,
            transaction_shares_one_epoch, transaction_last_writer_wins,
            concurrent_disjoint_transactions, empty_commit_is_an_error,
            many_threads_write_and_read_values, backpressure_with_a_tiny_staging_pool,
            reads_never_see_part_of_a_write, read_completes_while_a_sync_is_blocked,
            bad_input_returns_errors, store_of_the_wrong_length_is_refused,
            failed_sync_fails_exactly_the_affected_waiters, failed_write_poisons_the_pipe,
            close_reports_the_last_error, a_panicking_store_poisons_instead_of_hanging);
    };
    ($make:expr, files) => {
        $crate::conformance!($make);
        $crate::conformance!(@cases $make;
            second_open_is_locked, reopen_with_another_config_is_a_mismatch,
            a_cut_data_file_is_corrupt, deleted_metadata_of_an_opened_pipe_is_corrupt,
            a_half_created_pipe_is_created_again, create_modes_refuse_what_they_must);
    };
    ($make:expr, journal) => {
        $crate::conformance!(@cases $make;
            reopen_after_a_crash_replays_writes_the_data_file_lost,
            a_torn_last_record_is_not_replayed,
            a_damaged_record_followed_by_a_valid_one_is_damage,
            a_journal_of_another_format_version_is_refused,
            a_journal_of_another_chunk_size_is_refused,
            damage_control_every_acknowledged_write_is_replayed,
            both_superblock_copies_damaged_is_corrupt, a_zeroed_journal_is_corrupt,
            one_damaged_superblock_copy_is_enough_to_open,
            a_damaged_record_header_before_valid_records_is_corrupt,
            a_damaged_record_payload_before_valid_records_is_corrupt,
            a_record_of_more_than_256_chunks_is_replayed_after_a_crash,
            a_damaged_chunk_is_corrupt_when_read);
    };
    ($make:expr, journal_files) => {
        $crate::conformance!(@cases $make; a_cut_or_deleted_journal_is_corrupt);
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let harness = $make;
                $crate::conformance::$case(&harness);
            }
        )*
    };
}
