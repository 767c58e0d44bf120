//! chunkpipe-core: a durable, group-committing write pipeline over chunk-addressed storage.
//!
//! Many threads write fixed-size chunks by index. Each write is copied into a bounded staging
//! pool (backpressure), joins the open batch and receives that batch's **epoch**. One commit
//! seals the batch, writes it with vectored I/O, makes it durable with one `sync`, and publishes
//! the epoch — run by whichever waiting writer finds no commit running, for everyone staged; a writer that waits on its epoch learns that its data is durable — or that it is
//! not.
//!
//! # Quick start: threads and a transaction
//!
//! With `std` (the default), [`ThreadedPipe`] is the whole pipe: any thread writes and waits,
//! the waiting threads commit for each other, and one background thread writes batches in place
//! and checkpoints. Over files, `chunkpipe_linux::open` / `chunkpipe_macos::open` return the
//! same handle; here the stores are in RAM.
//!
//! ```
//! use std::sync::Arc;
//! use chunkpipe_core::{Config, MemStore, ThreadedPipe};
//!
//! let config = Config::new().with_chunk_size(512).with_initial_chunks(64);
//! let pipe = Arc::new(ThreadedPipe::start_journaled(MemStore::new(), MemStore::new(), config)?);
//!
//! // Four threads write durably at once: whoever finds no commit running commits for all.
//! let writers: Vec<_> = (0..4u8)
//!     .map(|t| {
//!         let pipe = Arc::clone(&pipe);
//!         std::thread::spawn(move || pipe.write_durable(u64::from(t), &[t; 512]))
//!     })
//!     .collect();
//! for writer in writers {
//!     writer.join().unwrap()?;
//! }
//!
//! // A transaction: both chunks become durable (and visible) together, or neither does.
//! let mut tx = pipe.transaction(2)?;
//! tx.write(10, &[7; 512])?;
//! tx.write(11, &[8; 512])?;
//! pipe.wait(tx.commit()?)?;
//!
//! assert_eq!(pipe.read(3, 1)?, [3; 512]);
//! assert_eq!(pipe.read(11, 1)?, [8; 512]);
//! pipe.close()?; // commits what is left and joins the background thread
//! # Ok::<(), chunkpipe_core::Error>(())
//! ```
//!
//! From async code, `pipe.durable(epoch).await` waits without blocking: the future is woken by
//! the publish that makes its epoch durable, and the background (the thread above, or a driver
//! task running [`Pipe::run_background_async`]) leads the commit; see [`Pipe::durable`].
//!
//! Without `std` (an embedded main loop, a simulator, your own runtime) the same pipe is a state
//! machine you drive: see [the example below](#example-driving-the-state-machine-by-hand).
//!
//! # Layers
//!
//! | layer | what | where |
//! |---|---|---|
//! | device | [`ChunkStore`]: a byte-addressed file-like store; [`MemStore`] in RAM | `store.rs` |
//! | staging | fixed-size slots in caller-provided memory, batches, the chunk index | `staging/` |
//! | state | what every step shares: staging, the open batch, epochs, the poison latch | `state.rs`, `latch.rs` |
//! | engines | how a batch becomes durable, one per [`Journal`] mode: commit, apply, checkpoint | `engine/` |
//! | state machine | [`Pipe`]: `try_write`, [`Transaction`], `flush_step`, `background_step`, `poll_durable`, reads, grows | `pipe.rs`, `tx.rs`, `read.rs`, `grow.rs` |
//! | blocking | [`BlockingPipe`]: `write`, `wait`, `sync`, `grow`, `close`, leader/follower commits over a [`Signal`] | `blocking.rs` |
//! | async | [`Durable`]: a future woken by the publish of its epoch, no allocation per wait; [`Pipe::write_async`], [`Pipe::transaction_async`] wait for staging; [`Pipe::run_background_async`] for executors without threads | `waiters.rs`, `runner.rs` |
//! | platform (std) | [`StdSignal`], [`StdClock`], [`ThreadedPipe`] (the background thread) | `platform_std.rs` |
//!
//! The core never blocks on its own and never starts a thread by itself: time is an argument
//! (`flush_step(now)`), waiting goes through a [`Signal`]. Two steps drive a pipe:
//! [`Pipe::flush_step`] commits the open batch (the thread that waits for durability runs it
//! when no commit runs: leader/follower group commit), and [`Pipe::background_step`] does what
//! would otherwise delay a commit (writing published batches in place, checkpoints, syncs nobody
//! waits for). Each returns a [`Wake`]: whom its caller must wake. Threads, an embedded main loop
//! and a deterministic simulator all drive the same two steps. Where a batch is sealed:
//! `engine::seal` in `engine/mod.rs`; where an epoch is published: `AtomicEngine::publish` in
//! `engine/atomic.rs` and `OffEngine::sync_owed` in `engine/off.rs`; where a failure becomes
//! sticky: `latch.rs`.
//!
//! # The contract
//!
//! - Epochs start at 1; [`Pipe::durable_epoch`] is [`Epoch::NONE`] until the first batch is
//!   published, and only grows. Durability is a prefix: `durable_epoch() >= e` means every batch
//!   up to `e` is durable.
//! - A write's epoch is assigned in the same step, under the same lock, as the sealing of the
//!   batch it joined; waiting on it returns `Ok` only after that batch was written and synced.
//! - A transaction's writes join one batch and share one epoch. Two writes to one chunk in a
//!   batch leave the later one (last writer wins), in the store and in reads.
//! - Failure is sticky: when a write or sync of batch `e` fails, `e` and every later batch fail,
//!   their waiters get [`Error::Poisoned`], and the pipe takes no new writes. A later successful
//!   sync never makes the failed data count as durable.
//! - Staging is reserved all-or-nothing; a write or transaction larger than staging is
//!   [`Error::TooLarge`], never split.
//! - Bad input is an [`Error`] value, never a panic: lengths that are not whole chunks, ranges
//!   past the end (no silent extension), overflow, invalid configs.
//! - Visibility: a write is visible to reads once it has joined a batch, all at once; reads never
//!   see part of a write or transaction and never a torn chunk (see [`Pipe`]).
//! - In [`Journal::Atomic`] (the default) a crash leaves each batch entirely applied or entirely
//!   absent, and epochs continue across reopens; [`journal`] documents the on-disk format. In
//!   [`Journal::Off`] a crash may tear chunks and transactions (only what a `sync` covered is
//!   durable, at sector granularity) and a reopened pipe starts again at epoch 1.
//! - Damage is never repaired quietly: a crash leaves at most a torn tail (the last append,
//!   never acknowledged), which recovery drops; anything else wrong on disk is
//!   [`Error::Corrupt`] naming the store and offset — at open, or (a chunk that does not match
//!   its checksum) at the read. [`Recovery::PointInTime`] opens a damaged journal anyway and
//!   reports the epochs it dropped ([`Pipe::recovery`]). [`Create`] says whether opening may
//!   create the pipe; an existing one is never created again.
//!
//! # Features
//!
//! | feature | gives |
//! |---|---|
//! | (none) | everything above except the `std` row; no allocator needed ([`StagingMemory::new`]) |
//! | `alloc` | [`Pipe::new`] (allocated staging), [`Pipe::read`], `Box`/`Arc` stores, growable [`MemStore`] |
//! | `std` (default) | [`StdSignal`], [`StdClock`], [`ThreadedPipe`], `From<Error> for io::Error` |
//! | `log` | `log` events: what recovery found, a pipe poisoned, a slow background step |
//!
//! # Example: driving the state machine by hand
//!
//! ```
//! use chunkpipe_core::{Config, Instant, Journal, MemStore, Pipe, StagingMemory, Wake};
//!
//! let config = Config::new()
//!     .with_chunk_size(512)
//!     .with_initial_chunks(8)
//!     .with_staging_chunks(4)
//!     .with_journal(Journal::Atomic)
//!     .with_journal_bytes(64 * 1024);
//! // No allocator needed: staging lives in a buffer we lend.
//! let mut staging = vec![0u8; config.staging_memory_bytes()];
//! let (data, journal) = (MemStore::new(), MemStore::new());
//! let pipe = Pipe::from_parts(data, Some(journal), config, StagingMemory::new(&mut staging)).unwrap();
//!
//! let mut tx = pipe.transaction(2).unwrap();
//! tx.write(0, &[1; 512]).unwrap();
//! tx.write(5, &[2; 512]).unwrap();
//! let epoch = tx.commit().unwrap();
//!
//! assert!(pipe.poll_durable(epoch).is_pending());
//! // One flush step: the batch is appended to the journal and synced: durable, published. Its
//! // `Wake` says so (and, once two batches wait to be written in place, wakes the background).
//! let wake = pipe.flush_step(Instant::ZERO).unwrap();
//! assert_eq!(wake, Wake { durable: Some(epoch), ..Wake::default() });
//! assert_eq!(pipe.durable_epoch(), epoch);
//! assert_eq!(pipe.read(5, 1).unwrap(), [2; 512]);
//!
//! // The background step writes the batch in place and, once the pipe has been idle for
//! // `flush_interval`, checkpoints (a data sync that lets the journal forget records). It runs
//! // beside the flush steps — from a second thread or the same loop.
//! let later = Instant::ZERO.saturating_add(config.flush_interval);
//! assert_eq!(pipe.next_background_at(Instant::ZERO), Some(later));
//! let syncs = pipe.stats().syncs;
//! assert_eq!(pipe.background_step(later), Ok(Wake::default()));
//! assert!(pipe.stats().syncs > syncs, "written in place and checkpointed");
//! assert_eq!(pipe.next_background_at(later), None, "nothing left to do");
//! ```
#![no_std]
#![deny(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod blocking;
mod config;
mod engine;
mod epoch;
mod error;
mod events;
mod grow;
pub mod journal;
mod latch;
#[cfg(all(test, loom))]
mod loom_tests;
mod mem_store;
mod meta;
mod mirror;
mod pipe;
#[cfg(feature = "std")]
mod platform_std;
mod read;
mod runner;
mod signal;
mod staging;
mod state;
mod store;
mod sync;
#[cfg(test)]
mod tests;
mod time;
mod tx;
mod waiters;

pub use blocking::{BlockingPipe, BlockingTransaction};
pub use config::{
    Config, Create, Journal, MAX_CHUNK_SIZE, MAX_STAGING_CHUNKS, Recovery, WeakSyncs,
};
pub use engine::Wake;
pub use epoch::Epoch;
pub use error::{Damage, Errno, Error, Op, StoreError, StoreErrorKind, StoreRole};
pub use grow::GrowTicket;
pub use journal::{Dropped, RecoveryReport};
pub use mem_store::MemStore;
pub use meta::{META_MAX_BYTES, META_VERSION, Meta};
pub use pipe::Pipe;
#[cfg(feature = "std")]
pub use platform_std::{StdClock, StdPipe, StdSignal, ThreadedPipe};
pub use signal::Signal;
pub use staging::StagingMemory;
pub use state::PipeStats;
pub use store::{Capabilities, ChunkStore};
pub use time::{Clock, Instant};
pub use tx::Transaction;
pub use waiters::Durable;
