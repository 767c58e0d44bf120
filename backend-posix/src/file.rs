//! Opening files: create or open, and lock.

use std::path::Path;

use chunkpipe_core::{Op, StoreError};
use rustix::fd::OwnedFd;
use rustix::fs::{FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use crate::durability::retry_errno;
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
    /// The open created the file: its directory entry is not durable until the directory is
    /// synced.
    pub(crate) created: bool,
}

/// Opens `path` as `access` says and takes a non-blocking `flock` (exclusive for writing, shared
/// for reading).
pub(crate) fn open_locked<P: Platform>(
    path: &Path,
    access: Access,
) -> Result<OpenedFile, StoreError> {
    let (fd, created) = open_file::<P>(path, access)?;
    let lock = match access {
        Access::ReadOnly => FlockOperation::NonBlockingLockShared,
        _ => FlockOperation::NonBlockingLockExclusive,
    };
    let in_use = match retry_errno(|| rustix::fs::flock(&fd, lock)) {
        Ok(()) => false,
        // A reader looks anyway, and says that what it reads may be changing.
        Err(Errno::WOULDBLOCK) if access == Access::ReadOnly => true,
        Err(e) => return Err(store_error(Op::Lock, e)),
    };
    let len = retry_errno(|| rustix::fs::fstat(&fd))
        .map_err(|e| store_error(Op::Len, e))?
        .st_size;
    let len = u64::try_from(len).map_err(|_| store_error(Op::Len, Errno::OVERFLOW))?;
    Ok(OpenedFile {
        fd,
        len,
        in_use,
        created,
    })
}

fn open_file<P: Platform>(path: &Path, access: Access) -> Result<(OwnedFd, bool), StoreError> {
    let base = match access {
        Access::ReadOnly => OFlags::RDONLY | OFlags::CLOEXEC,
        _ => OFlags::RDWR | OFlags::CLOEXEC,
    };
    let extra = P::best_effort_open_flags();
    let mode = Mode::from_raw_mode(0o644);
    let attempt = |flags: OFlags| -> Result<(OwnedFd, bool), Errno> {
        let open = |flags| retry_errno(|| rustix::fs::open(path, flags, mode));
        if access != Access::CreateOrOpen {
            return open(flags).map(|fd| (fd, false));
        }
        match open(flags | OFlags::CREATE | OFlags::EXCL) {
            Ok(fd) => Ok((fd, true)),
            Err(Errno::EXIST) => open(flags).map(|fd| (fd, false)),
            Err(e) => Err(e),
        }
    };
    match attempt(base | extra) {
        Err(Errno::PERM | Errno::INVAL) if !extra.is_empty() => attempt(base),
        other => other,
    }
    .map_err(|e| store_error(Op::Open, e))
}
