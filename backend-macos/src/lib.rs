//! chunkpipe-macos: chunkpipe over a file on macOS.
//!
//! The shared POSIX store ([`chunkpipe_posix::FileStore`]) with macOS's own pieces:
//!
//! | operation | call |
//! |---|---|
//! | `sync` | `fcntl(fd, F_FULLFSYNC)` |
//! | weak sync (only with [`WeakSyncs::AllowLosingWritesOnPowerLoss`]) | `fsync(fd)`, counted |
//! | `barrier` ([`MacOsBarrier`] only) | `fcntl(fd, F_BARRIERFSYNC)` where the journal is on the same device |
//! | grow | `fcntl(fd, F_PREALLOCATE)` for exactly the new bytes, contiguous then not, all or nothing; `ftruncate`; zero-fill where unsupported; then `sync` |
//! | open, lock, I/O loops, `EINTR` | shared with Linux in `chunkpipe-posix` (`O_CLOEXEC`, `flock`, `preadv`/`pwritev`) |
//!
//! Plain `fsync` on macOS only hands the data to the drive, which may keep it in a volatile
//! cache; `F_FULLFSYNC` also asks the drive to flush that cache, so it is the durability barrier
//! chunkpipe needs. Some file systems (SMB, some FUSE and exFAT mounts) refuse it. The pipe
//! finds out when it opens, with one `F_FULLFSYNC` of each file before anything is written, and
//! by default refuses to open there (a sync error of kind `Unsupported`): `wait` keeps meaning
//! durable. [`Config::with_weak_syncs`] with [`WeakSyncs::AllowLosingWritesOnPowerLoss`] opens
//! anyway with `fsync` instead, and counts every such sync in `PipeStats::data_weak_syncs` and
//! `journal_weak_syncs` (`pipe.pipe().stats()`): a power loss can then lose acknowledged writes.
//!
//! `F_BARRIERFSYNC` only orders writes: it is enough for the data file's sync at a journal
//! checkpoint, because the journal's `F_FULLFSYNC` right after it flushes the same drive.
//! [`open_with_barriers`] uses it there (and nowhere else), and only where the journal is on the
//! same device as the data file (`st_dev`); elsewhere the data file gets a full sync.
//!
//! ```standalone_crate
//! # #[cfg(not(target_os = "macos"))] fn main() {} // the crate is empty elsewhere
//! # #[cfg(target_os = "macos")]
//! # fn main() -> Result<(), chunkpipe_macos::Error> {
//! let dir = tempfile::tempdir().unwrap();
//! let config = chunkpipe_macos::Config::new().with_initial_chunks(16);
//! let pipe = chunkpipe_macos::open(&dir.path().join("data"), config)?;
//! let epoch = pipe.write(3, &[42u8; 4096])?;
//! pipe.wait(epoch)?; // durable: journaled and F_FULLFSYNC'ed
//! assert_eq!(pipe.read(3, 1)?, vec![42u8; 4096]);
//! assert_eq!(pipe.pipe().stats().journal_weak_syncs, 0);
//! pipe.close()?;
//! # Ok(()) }
//! ```
//!
//! # References
//! - [fcntl(2)](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/fcntl.2.html)
//!   (`F_FULLFSYNC`, `F_BARRIERFSYNC`, `F_PREALLOCATE`)
//! - [fsync(2)](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/fsync.2.html)
#![deny(missing_docs)]

#[cfg(target_os = "macos")]
mod fcntl;
#[cfg(target_os = "macos")]
mod platform;
pub mod preallocate;

#[cfg(target_os = "macos")]
pub use platform::*;
