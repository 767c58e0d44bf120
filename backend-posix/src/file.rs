//! Opening a data file: create or open, lock, and make a new file's directory entry durable.

use std::path::Path;

use chunkpipe_core::{Op, StoreError};
use rustix::fd::OwnedFd;
use rustix::fs::{FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use crate::{Platform, store_error};

/// An open, exclusively locked data file.
pub(crate) struct OpenedFile {
    pub(crate) fd: OwnedFd,
    pub(crate) len: u64,
}

/// Opens `path` read-write (creating it with mode 0o644 if needed), takes an exclusive
/// non-blocking `flock`, and fsyncs the parent directory if the file was created.
pub(crate) fn open_locked<P: Platform>(path: &Path) -> Result<OpenedFile, StoreError> {
    let (fd, created) = open_or_create::<P>(path)?;
    rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive)
        .map_err(|e| store_error(Op::Lock, e))?;
    if created {
        sync_parent_dir::<P>(path)?;
    }
    let len = rustix::fs::fstat(&fd)
        .map_err(|e| store_error(Op::Len, e))?
        .st_size;
    let len = u64::try_from(len).map_err(|_| store_error(Op::Len, Errno::OVERFLOW))?;
    Ok(OpenedFile { fd, len })
}

fn open_or_create<P: Platform>(path: &Path) -> Result<(OwnedFd, bool), StoreError> {
    let base = OFlags::RDWR | OFlags::CLOEXEC;
    let extra = P::best_effort_open_flags();
    let mode = Mode::from_raw_mode(0o644);
    let attempt = |flags: OFlags| -> Result<(OwnedFd, bool), Errno> {
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

/// The platform's sync of the directory holding `path`, so that a newly created file survives a
/// crash.
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
