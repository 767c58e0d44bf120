//! chunkpipe-linux: chunkpipe over a file on Linux.
//!
//! The shared POSIX store ([`chunkpipe_posix::FileStore`]) with Linux's own pieces:
//!
//! | operation | call |
//! |---|---|
//! | `sync` | `fdatasync(fd)` |
//! | grow | `fallocate(fd, 0, old, new - old)`, zero-fill where unsupported, `ftruncate`, `fdatasync` |
//! | writeback hint | `sync_file_range(fd, off, len, SYNC_FILE_RANGE_WRITE)` |
//! | open | `O_RDWR | O_CREAT | O_CLOEXEC`, `O_NOATIME` when permitted |
//! | journal appends | buffered by [`open`]; with [`FileStore::open_direct`], a second descriptor with `O_DIRECT` for writes aligned as `statx` `STATX_DIOALIGN` says |
//!
//! ```
//! # fn main() -> Result<(), chunkpipe_linux::Error> {
//! let dir = tempfile::tempdir().unwrap();
//! let config = chunkpipe_linux::Config::new().with_initial_chunks(16);
//! let pipe = chunkpipe_linux::open(&dir.path().join("data"), config)?;
//! let epoch = pipe.write(3, &[42u8; 4096])?;
//! pipe.wait(epoch)?; // durable: written and fdatasync'ed
//! assert_eq!(pipe.read(3, 1)?, vec![42u8; 4096]);
//! pipe.close()?;
//! # Ok(()) }
//! ```
//!
//! # References
//! - [fdatasync(2)](https://man7.org/linux/man-pages/man2/fdatasync.2.html)
//! - [fallocate(2)](https://man7.org/linux/man-pages/man2/fallocate.2.html)
//! - [sync_file_range(2)](https://man7.org/linux/man-pages/man2/sync_file_range.2.html)
//! - [flock(2)](https://man7.org/linux/man-pages/man2/flock.2.html)
//! - [open(2), O_DIRECT](https://man7.org/linux/man-pages/man2/open.2.html), [statx(2)](https://man7.org/linux/man-pages/man2/statx.2.html)
#![cfg(target_os = "linux")]
#![deny(missing_docs)]

mod writeback;

use std::path::Path;

pub use chunkpipe_core::{
    Config, Create, Damage, Durable, Epoch, Error, Journal, Op, PipeStats, Recovery,
    RecoveryReport, StoreError, StoreErrorKind, StoreRole, ThreadedPipe, WeakSyncs,
};
use chunkpipe_posix::{
    BorrowedFd, DirectAlignment, OwnedFd, Platform, full_sync_error, store_error,
};
use rustix::fs::{AtFlags, FallocateFlags, Mode, OFlags, StatxFlags};
use rustix::io::Errno;

/// Linux's way of syncing, preallocating and hinting writeback.
#[derive(Clone, Copy, Debug, Default)]
pub struct Linux;

/// A data file on Linux.
pub type FileStore = chunkpipe_posix::FileStore<Linux>;

/// A pipe over a Linux data file, with its background thread running.
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
    chunkpipe_posix::open::<Linux>(path, config)
}

impl Platform for Linux {
    /// `fdatasync(fd)` (which flushes the device's cache where it has one). Linux has nothing
    /// weaker to fall back to: a file system that refuses it (`EINVAL`, `ENOTSUP`) refuses the
    /// pipe.
    fn sync(fd: BorrowedFd<'_>) -> Result<(), StoreError> {
        rustix::fs::fdatasync(fd).map_err(full_sync_error)
    }

    /// `fallocate(fd, 0, old_len, new_len - old_len)`; `Ok(false)` where the file system has no
    /// fallocate (FUSE and some network file systems).
    fn preallocate(fd: BorrowedFd<'_>, old_len: u64, new_len: u64) -> Result<bool, StoreError> {
        match rustix::fs::fallocate(fd, FallocateFlags::empty(), old_len, new_len - old_len) {
            Ok(()) => Ok(true),
            Err(Errno::OPNOTSUPP | Errno::NOSYS) => Ok(false),
            Err(e) => Err(store_error(Op::Grow, e)),
        }
    }

    /// `sync_file_range(fd, offset, len, SYNC_FILE_RANGE_WRITE)`, skipped where unsupported.
    fn start_writeback(fd: BorrowedFd<'_>, offset: u64, len: u64) -> Result<(), StoreError> {
        match writeback::sync_file_range_write(fd, offset, len) {
            Ok(()) | Err(Errno::NOSYS | Errno::INVAL | Errno::OPNOTSUPP) => Ok(()),
            Err(e) => Err(store_error(Op::Writeback, e)),
        }
    }

    fn best_effort_open_flags() -> OFlags {
        OFlags::NOATIME
    }

    /// `open(path, O_RDWR | O_CLOEXEC | O_DIRECT)`, with the alignment `statx` reports for it
    /// (`STATX_DIOALIGN`, Linux 6.1+); `None` where either is refused or reports none.
    fn open_direct(path: &Path) -> Option<(OwnedFd, DirectAlignment)> {
        let flags = OFlags::RDWR | OFlags::CLOEXEC | OFlags::DIRECT;
        let fd = rustix::fs::open(path, flags, Mode::empty()).ok()?;
        let stat = rustix::fs::statx(&fd, "", AtFlags::EMPTY_PATH, StatxFlags::DIOALIGN).ok()?;
        let reported = StatxFlags::from_bits_retain(stat.stx_mask).contains(StatxFlags::DIOALIGN);
        let (memory, offset) = (stat.stx_dio_mem_align, stat.stx_dio_offset_align);
        let usable = reported && memory.is_power_of_two() && offset.is_power_of_two();
        usable.then(|| {
            let align = DirectAlignment {
                memory: memory as usize,
                offset: u64::from(offset),
            };
            (fd, align)
        })
    }
}
