//! chunkpipe-posix: the file [`ChunkStore`](chunkpipe_core::ChunkStore) that the Linux and macOS
//! backends share.
//!
//! Everything POSIX gives both platforms lives here, once: opening with `O_CLOEXEC`, the
//! exclusive `flock`, the parent-directory `fsync` after creating a file, `preadv`/`pwritev`
//! loops that handle short I/O, `EINTR` and `IOV_MAX`, and the errno → [`StoreError`] mapping.
//! What differs — the durability barrier, space preallocation, the writeback hint, extra open
//! flags — is a [`Platform`], implemented by `chunkpipe-linux` and `chunkpipe-macos`.
//!
//! | file | concern |
//! |---|---|
//! | `direct.rs` | direct writes that bypass the page cache (the journal's appends) |
//! | `durability.rs` | full or (allowed) weak syncs, decided at open; the `EINTR` retry of every sync and `fcntl` |
//! | `errno.rs` | errno → [`StoreError`] |
//! | `file.rs` | open, lock, directory sync |
//! | `meta.rs` | the `<path>.meta` file: format version, chunk size, journal mode, length |
//! | `io.rs` | vectored read/write loops |
//! | `pipe_files.rs` | [`PipeFiles`]: a pipe's files, created in an order that tells a half-created pipe from a damaged one |
//! | `store.rs` | [`FileStore`]: the `ChunkStore` over a file |
#![cfg(unix)]
#![deny(missing_docs)]

mod direct;
mod durability;
mod errno;
mod file;
mod io;
mod meta;
mod pipe_files;
mod store;

use std::path::Path;

use chunkpipe_core::{Config, Error, StoreError, ThreadedPipe};
pub use direct::DirectAlignment;
pub use durability::{Durability, full_sync_error, full_sync_refused, retry_interrupted};
pub use errno::store_error;
pub use meta::{meta_path, read_meta};
pub use pipe_files::PipeFiles;
pub use rustix::fd::{BorrowedFd, OwnedFd};
pub use store::FileStore;

/// What a platform does its own way. Every method gets the open file. The store retries each
/// call that fails with `EINTR`.
pub trait Platform: Send + Sync + 'static {
    /// The durability barrier for every write that returned before the call, past the device's
    /// volatile cache (`fdatasync` on Linux, `F_FULLFSYNC` on macOS).
    ///
    /// # Errors
    /// The store error, with [`Op::Sync`](chunkpipe_core::Op::Sync); of kind
    /// [`Unsupported`](chunkpipe_core::StoreErrorKind::Unsupported) where the file system
    /// refuses the call ([`full_sync_error`]).
    fn sync(fd: BorrowedFd<'_>) -> Result<(), StoreError>;

    /// What runs instead of [`sync`](Platform::sync) where the file system refuses it and the
    /// config allows weak syncs ([`WeakSyncs`](chunkpipe_core::WeakSyncs)): the writes reach the
    /// device but may stay in its volatile cache (macOS: `fsync`). The default is
    /// [`sync`](Platform::sync) itself.
    ///
    /// # Errors
    /// As [`sync`](Platform::sync).
    fn weak_sync(fd: BorrowedFd<'_>) -> Result<(), StoreError> {
        Self::sync(fd)
    }

    /// The ordering barrier [`ChunkStore::barrier`](chunkpipe_core::ChunkStore::barrier)
    /// asks for; a full [`sync`](Platform::sync) unless the platform has a cheaper one. The
    /// store calls it only for a data file whose journal is on the same device, and syncs
    /// fully where it is refused ([`Unsupported`](chunkpipe_core::StoreErrorKind::Unsupported)).
    ///
    /// # Errors
    /// As [`sync`](Platform::sync).
    fn barrier(fd: BorrowedFd<'_>) -> Result<(), StoreError> {
        Self::sync(fd)
    }

    /// Allocates space for bytes `old_len..new_len` where the file system can (the file's length
    /// may grow as a side effect). Returns `Ok(false)` when the file system cannot preallocate,
    /// so the caller zero-fills instead.
    ///
    /// # Errors
    /// The store error (`NoSpace` above all).
    fn preallocate(fd: BorrowedFd<'_>, old_len: u64, new_len: u64) -> Result<bool, StoreError>;

    /// Hints the kernel to start writing back `len` bytes at `offset`. Never durability.
    ///
    /// # Errors
    /// The store error; callers treat it as a hint that failed.
    fn start_writeback(fd: BorrowedFd<'_>, offset: u64, len: u64) -> Result<(), StoreError> {
        let _ = (fd, offset, len);
        Ok(())
    }

    /// Open flags to try in addition to `O_RDWR | O_CREAT | O_CLOEXEC`, dropped if the open
    /// fails with them (`O_NOATIME` on Linux, which only the file's owner may use).
    fn best_effort_open_flags() -> rustix::fs::OFlags {
        rustix::fs::OFlags::empty()
    }

    /// Opens `path` (which exists) a second time for direct writes that bypass the page cache,
    /// with the alignment they need; `None` where the platform or the file system has none.
    /// Only [`FileStore::open_direct`] asks.
    fn open_direct(path: &Path) -> Option<(OwnedFd, DirectAlignment)> {
        let _ = path;
        None
    }
}

/// Opens the pipe at `path` (the data file; `<path>.journal` and `<path>.meta` beside it) — or
/// creates it, as [`Config::create`](chunkpipe_core::Config::create) allows — and returns it
/// with its background thread running.
///
/// A pipe exists once its `<path>.meta` does: creating one makes the data file (a plain file
/// already there is adopted, its bytes kept) and grows it to `config.initial_chunks`, formats
/// and syncs the journal, and writes `.meta` last. So a crash while creating leaves no `.meta`,
/// and the next open creates the pipe again; an existing pipe whose data file or journal is
/// missing, blank or short is [`Error::Corrupt`], never re-created. See [`PipeFiles`].
///
/// Journal appends are buffered writes, which the journal's sync writes out and flushes.
/// To have them bypass the page cache instead, open the files with [`PipeFiles`] and call
/// [`PipeFiles::with_direct_journal`] before [`PipeFiles::start`]: on the virtual disk chunkpipe is developed on that was slower
/// (the README's Performance section has the numbers), but a disk where a direct write costs
/// less than the writeback in a sync may gain.
///
/// # Errors
/// [`Error::Locked`] when another process has the pipe open; [`Error::AlreadyExists`],
/// [`Error::NotFound`] as `config.create` says; an invalid config; files that do not fit it
/// ([`Error::InvalidInput`], [`Error::Mismatch`]); damage ([`Error::Corrupt`]); an OS error.
pub fn open<P: Platform>(
    path: impl AsRef<Path>,
    config: Config,
) -> Result<ThreadedPipe<FileStore<P>>, Error> {
    PipeFiles::<P>::open(path.as_ref(), &config)?.start()
}

/// The journal path of the data file at `path` (`<path>.journal`).
pub fn journal_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".journal");
    std::path::PathBuf::from(name)
}
