//! The macOS [`Platform`]s: [`MacOs`] and [`MacOsBarrier`].

use std::path::Path;

pub use chunkpipe_core::{
    Config, Create, Damage, Durable, Epoch, Error, Journal, Op, PipeStats, Recovery,
    RecoveryReport, StoreError, StoreErrorKind, StoreRole, ThreadedPipe, WeakSyncs,
};
use chunkpipe_posix::{BorrowedFd, Platform, full_sync_error, store_error};
use rustix::io::Errno;

use crate::{fcntl, preallocate};

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

/// A transaction of a [`FilePipe`] ([`FilePipe::transaction`](chunkpipe_core::BlockingPipe::transaction)).
pub type Transaction<'p> = chunkpipe_core::BlockingTransaction<
    'p,
    'static,
    FileStore,
    chunkpipe_core::StdClock,
    chunkpipe_core::StdSignal,
>;

/// Opens (or creates) the data file at `path` and returns a ready pipe over it.
///
/// # Errors
/// [`Error::Locked`] when another process has it open; an invalid config or a file that does
/// not fit it; an OS error.
pub fn open(path: impl AsRef<Path>, config: Config) -> Result<FilePipe, Error> {
    chunkpipe_posix::open::<MacOs>(path, config)
}

/// As [`open`], with the data file's checkpoint sync done by `F_BARRIERFSYNC` (see the crate
/// docs): cheaper checkpoints, for a journal on the same device as the data file.
///
/// # Errors
/// As [`open`].
pub fn open_with_barriers(
    path: impl AsRef<Path>,
    config: Config,
) -> Result<ThreadedPipe<chunkpipe_posix::FileStore<MacOsBarrier>>, Error> {
    chunkpipe_posix::open::<MacOsBarrier>(path, config)
}

impl Platform for MacOs {
    /// `fcntl(fd, F_FULLFSYNC)`; a file system that refuses it (`ENOTSUP`, `ENOTTY`, `EINVAL`)
    /// is [`StoreErrorKind::Unsupported`].
    fn sync(fd: BorrowedFd<'_>) -> Result<(), StoreError> {
        rustix::fs::fcntl_fullfsync(fd).map_err(full_sync_error)
    }

    /// `fsync(fd)`: to the drive, perhaps only into its volatile cache.
    fn weak_sync(fd: BorrowedFd<'_>) -> Result<(), StoreError> {
        rustix::fs::fsync(fd).map_err(|e| store_error(Op::Sync, e))
    }

    /// `fcntl(fd, F_PREALLOCATE)` for exactly `new_len - old_len` bytes past the physical end,
    /// contiguous first, then any, each all or nothing ([`preallocate`]); the store then sets
    /// the length with `ftruncate`. `Ok(false)` where the file system cannot preallocate.
    fn preallocate(fd: BorrowedFd<'_>, old_len: u64, new_len: u64) -> Result<bool, StoreError> {
        let no_space = StoreError::new(StoreErrorKind::NoSpace, Op::Grow);
        let requests = preallocate::requests(old_len, new_len).ok_or(no_space)?;
        let mut last = Errno::NOSPC;
        for request in requests {
            match fcntl::preallocate(fd, request) {
                Ok(allocated) if allocated >= request.length => return Ok(true),
                // All or nothing was asked for: less than all is no space.
                Ok(_) => last = Errno::NOSPC,
                Err(Errno::NOTSUP | Errno::OPNOTSUPP | Errno::INVAL) => return Ok(false),
                Err(e) => last = e,
            }
        }
        Err(store_error(Op::Grow, last))
    }
}

impl Platform for MacOsBarrier {
    fn sync(fd: BorrowedFd<'_>) -> Result<(), StoreError> {
        MacOs::sync(fd)
    }

    fn weak_sync(fd: BorrowedFd<'_>) -> Result<(), StoreError> {
        MacOs::weak_sync(fd)
    }

    /// `fcntl(fd, F_BARRIERFSYNC)`: the writes before it reach the drive before any after it;
    /// the journal's `F_FULLFSYNC` that follows a checkpoint makes them durable. The store
    /// syncs fully where it is refused, or where the journal is on another device.
    fn barrier(fd: BorrowedFd<'_>) -> Result<(), StoreError> {
        fcntl::barrier_fsync(fd).map_err(full_sync_error)
    }

    fn preallocate(fd: BorrowedFd<'_>, old_len: u64, new_len: u64) -> Result<bool, StoreError> {
        MacOs::preallocate(fd, old_len, new_len)
    }
}
