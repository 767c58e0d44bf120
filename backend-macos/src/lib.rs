//! chunkpipe-macos: chunkpipe over a file on macOS.
//!
//! The shared POSIX store ([`chunkpipe_posix::FileStore`]) with macOS's own pieces:
//!
//! | operation | call |
//! |---|---|
//! | `sync` | `fcntl(fd, F_FULLFSYNC)`; `fsync(fd)` where the file system refuses it, counted in [`FileStore::weak_syncs`] |
//! | `barrier` ([`MacOsBarrier`] only) | `fcntl(fd, F_BARRIERFSYNC)` |
//! | grow | `fcntl(fd, F_PREALLOCATE)` (all or nothing) + `ftruncate`, zero-fill where unsupported, then `sync` |
//! | open, lock, I/O loops | shared with Linux in `chunkpipe-posix` (`O_CLOEXEC`, `flock`, `preadv`/`pwritev`) |
//!
//! Plain `fsync` on macOS only hands the data to the drive, which may keep it in a volatile
//! cache; `F_FULLFSYNC` also asks the drive to flush that cache, so it is the durability barrier
//! chunkpipe needs. Some file systems (network and FUSE ones) refuse it; then `fsync` runs and
//! the store counts a *weak sync*: check [`FileStore::weak_syncs`] (through
//! `pipe.pipe().store()`) if you cannot choose the file system.
//!
//! `F_BARRIERFSYNC` only orders writes: it is enough for the data file's sync at a journal
//! checkpoint, because the journal's `F_FULLFSYNC` right after it flushes the same drive.
//! [`open_with_barriers`] uses it there (and nowhere else); it needs the journal on the same
//! device as the data file, which `<path>.journal` beside `<path>` normally is.
//!
//! ```
//! # #[cfg(not(target_os = "macos"))] fn main() {} // the crate is empty elsewhere
//! # #[cfg(target_os = "macos")]
//! # fn main() -> Result<(), chunkpipe_macos::Error> {
//! let dir = tempfile::tempdir().unwrap();
//! let config = chunkpipe_macos::Config::new().with_initial_chunks(16);
//! let pipe = chunkpipe_macos::open(&dir.path().join("data"), config)?;
//! let epoch = pipe.write(3, &[42u8; 4096])?;
//! pipe.wait(epoch)?; // durable: journaled and F_FULLFSYNC'ed
//! assert_eq!(pipe.read(3, 1)?, vec![42u8; 4096]);
//! assert_eq!(pipe.pipe().store().weak_syncs(), 0);
//! pipe.close()?;
//! # Ok(()) }
//! ```
//!
//! # References
//! - [fcntl(2)](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/fcntl.2.html)
//!   (`F_FULLFSYNC`, `F_BARRIERFSYNC`, `F_PREALLOCATE`)
//! - [fsync(2)](https://developer.apple.com/library/archive/documentation/System/Conceptual/ManPages_iPhoneOS/man2/fsync.2.html)
#![cfg(target_os = "macos")]
#![deny(missing_docs)]

mod barrier;

use std::path::Path;

pub use chunkpipe_core::{Config, Epoch, Error, Journal, ThreadedPipe};
use chunkpipe_core::{Op, StoreError};
use chunkpipe_posix::{BorrowedFd, Platform, SyncReach, store_error};
use rustix::fs::FallocateFlags;
use rustix::io::Errno;

/// macOS's way of syncing and preallocating: a full sync everywhere.
#[derive(Clone, Copy, Debug, Default)]
pub struct MacOs;

/// [`MacOs`], with `F_BARRIERFSYNC` for the data file's sync at journal checkpoints.
#[derive(Clone, Copy, Debug, Default)]
pub struct MacOsBarrier;

/// A data file on macOS.
pub type FileStore = chunkpipe_posix::FileStore<MacOs>;

/// A pipe over a macOS data file, with its background thread running.
pub type FilePipe = ThreadedPipe<FileStore>;

/// Opens (or creates) the data file at `path` and returns a ready pipe over it.
///
/// # Errors
/// [`Error::Locked`] when another process has it open; an invalid config or a file that does
/// not fit it; an OS error.
pub fn open(path: &Path, config: Config) -> Result<FilePipe, Error> {
    chunkpipe_posix::open::<MacOs>(path, config)
}

/// As [`open`], with the data file's checkpoint sync done by `F_BARRIERFSYNC` (see the crate
/// docs): cheaper checkpoints, for a journal on the same device as the data file.
///
/// # Errors
/// As [`open`].
pub fn open_with_barriers(
    path: &Path,
    config: Config,
) -> Result<ThreadedPipe<chunkpipe_posix::FileStore<MacOsBarrier>>, Error> {
    chunkpipe_posix::open::<MacOsBarrier>(path, config)
}

impl Platform for MacOs {
    /// `fcntl(fd, F_FULLFSYNC)`; where the file system refuses it (`ENOTSUP`, `ENOTTY`,
    /// `EINVAL`), `fsync(fd)`, reported as [`SyncReach::DeviceCache`].
    fn sync(fd: BorrowedFd<'_>) -> Result<SyncReach, StoreError> {
        match rustix::fs::fcntl_fullfsync(fd) {
            Ok(()) => Ok(SyncReach::Device),
            Err(Errno::NOTSUP | Errno::NOTTY | Errno::INVAL) => {
                rustix::fs::fsync(fd).map_err(|e| store_error(Op::Sync, e))?;
                Ok(SyncReach::DeviceCache)
            }
            Err(e) => Err(store_error(Op::Sync, e)),
        }
    }

    /// `fcntl(fd, F_PREALLOCATE)` for all of `old_len..new_len` or nothing, then `ftruncate`
    /// to `new_len` (rustix's `fallocate` on Apple platforms); `Ok(false)` where the file
    /// system cannot preallocate.
    fn preallocate(fd: BorrowedFd<'_>, old_len: u64, new_len: u64) -> Result<bool, StoreError> {
        match rustix::fs::fallocate(fd, FallocateFlags::empty(), old_len, new_len - old_len) {
            Ok(()) => Ok(true),
            Err(Errno::NOTSUP | Errno::OPNOTSUPP | Errno::INVAL) => Ok(false),
            Err(e) => Err(store_error(Op::Grow, e)),
        }
    }
}

impl Platform for MacOsBarrier {
    fn sync(fd: BorrowedFd<'_>) -> Result<SyncReach, StoreError> {
        MacOs::sync(fd)
    }

    /// `fcntl(fd, F_BARRIERFSYNC)`: the writes before it reach the drive before any after it;
    /// the journal's `F_FULLFSYNC` that follows a checkpoint makes them durable. Falls back to
    /// [`MacOs::sync`] where the file system refuses it.
    fn barrier(fd: BorrowedFd<'_>) -> Result<SyncReach, StoreError> {
        match barrier::barrier_fsync(fd) {
            Ok(()) => Ok(SyncReach::Device),
            Err(Errno::NOTSUP | Errno::NOTTY | Errno::INVAL) => MacOs::sync(fd),
            Err(e) => Err(store_error(Op::Sync, e)),
        }
    }

    fn preallocate(fd: BorrowedFd<'_>, old_len: u64, new_len: u64) -> Result<bool, StoreError> {
        MacOs::preallocate(fd, old_len, new_len)
    }
}
