//! Opening files: create or open, lock, and make a new file's directory entry durable.

use std::path::Path;

use chunkpipe_core::{Op, StoreError};
use rustix::fd::OwnedFd;
use rustix::fs::{FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use crate::{Platform, store_error};

/// How to open a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Read-write, created if missing, exclusively locked.
    CreateOrOpen,
    /// Read-write, must exist, exclusively locked.
    Existing,
    /// Read-only, must exist, share-locked where no writer holds it.
    ReadOnly,
}

/// An open, locked file.
pub(crate) struct OpenedFile {
    pub(crate) fd: OwnedFd,
    pub(crate) len: u64,
    /// `Access::ReadOnly`: a running pipe holds the file, so no shared lock was taken.
    pub(crate) in_use: bool,
}

/// Opens `path` as `access` says, takes a non-blocking `flock` (exclusive for writing, shared
/// for reading), and fsyncs the parent directory if the file was created.
pub(crate) fn open_locked<P: Platform>(
    path: &Path,
    access: Access,
) -> Result<OpenedFile, StoreError> {
    let (fd, created) = open_file::<P>(path, access)?;
    let lock = match access {
        Access::ReadOnly => FlockOperation::NonBlockingLockShared,
        _ => FlockOperation::NonBlockingLockExclusive,
    };
    let in_use = match rustix::fs::flock(&fd, lock) {
        Ok(()) => false,
        // A reader looks anyway, and says that what it reads may be changing.
        Err(Errno::WOULDBLOCK) if access == Access::ReadOnly => true,
        Err(e) => return Err(store_error(Op::Lock, e)),
    };
    if created {
        sync_parent_dir::<P>(path)?;
    }
    let len = rustix::fs::fstat(&fd)
        .map_err(|e| store_error(Op::Len, e))?
        .st_size;
    let len = u64::try_from(len).map_err(|_| store_error(Op::Len, Errno::OVERFLOW))?;
    Ok(OpenedFile { fd, len, in_use })
}

fn open_file<P: Platform>(path: &Path, access: Access) -> Result<(OwnedFd, bool), StoreError> {
    let base = match access {
        Access::ReadOnly => OFlags::RDONLY | OFlags::CLOEXEC,
        _ => OFlags::RDWR | OFlags::CLOEXEC,
    };
    let extra = P::best_effort_open_flags();
    let mode = Mode::from_raw_mode(0o644);
    let attempt = |flags: OFlags| -> Result<(OwnedFd, bool), Errno> {
        if access != Access::CreateOrOpen {
            return rustix::fs::open(path, flags, mode).map(|fd| (fd, false));
        }
        match rustix::fs::open(path, flags | OFlags::CREATE | OFlags::EXCL, mode) {
            Ok(fd) => Ok((fd, true)),
            Err(Errno::EXIST) => rustix::fs::open(path, flags, mode).map(|fd| (fd, false)),
            Err(e) => Err(e),
        }
    };
    match attempt(base | extra) {
        Err(Errno::PERM | Errno::INVAL) if !extra.is_empty() => attempt(base),
        other => other,
    }
    .map_err(|e| store_error(Op::Open, e))
}

/// The platform's sync of the directory holding `path`, so that a newly created or renamed file
/// survives a crash.
pub(crate) fn sync_parent_dir<P: Platform>(path: &Path) -> Result<(), StoreError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = rustix::fs::open(
        parent,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| store_error(Op::Open, e))?;
    P::sync(rustix::fd::AsFd::as_fd(&dir)).map(drop)
}
