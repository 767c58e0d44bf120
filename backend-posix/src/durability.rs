//! [`Durability`]: how a file is made durable, decided once when it is opened, before anything
//! is written; and the `EINTR` retry every sync and `fcntl` goes through.
//!
//! The platform's full sync ([`Platform::sync`]) is the only call that satisfies the
//! `ChunkStore::sync` contract. Some file systems refuse it (macOS: `F_FULLFSYNC` on SMB, some
//! FUSE and exFAT mounts). The kernel decides that per mount, so a store asks once, with a sync
//! of the file it just opened: if the full sync works it is used for every sync from then on, and
//! a later refusal is a failure like any other (the pipe poisons itself). If it is refused, the
//! store does not open — unless the config allows weak syncs
//! ([`WeakSyncs::AllowLosingWritesOnPowerLoss`]): then every sync is the platform's weaker one
//! ([`Platform::weak_sync`]) and is counted, for the file and for the metadata and directory
//! entries that belong with it.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use chunkpipe_core::{Op, StoreError, StoreErrorKind, WeakSyncs};
use rustix::fd::{AsFd, BorrowedFd};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::{Platform, store_error};

/// How a file (and the files that belong with it) is synced, and how many weak syncs it took.
#[derive(Debug)]
pub struct Durability {
    weak: bool,
    weak_syncs: AtomicU64,
}

impl Durability {
    /// Full syncs, never probed: for a file opened read-only (never synced by a pipe) and for
    /// tests.
    pub(crate) fn full() -> Self {
        Durability {
            weak: false,
            weak_syncs: AtomicU64::new(0),
        }
    }

    /// Decides how `fd` is synced: one full sync, now. Where the file system refuses it, weak
    /// syncs if `allow` says so (this first one counted), else the refusal.
    ///
    /// # Errors
    /// The refused sync ([`StoreErrorKind::Unsupported`]) unless weak syncs are allowed; any
    /// other sync error.
    pub(crate) fn probe<P: Platform>(
        fd: BorrowedFd<'_>,
        allow: WeakSyncs,
    ) -> Result<Self, StoreError> {
        match retry_interrupted(|| P::sync(fd)) {
            Ok(()) => Ok(Self::full()),
            Err(e) if e.kind == StoreErrorKind::Unsupported => match allow {
                WeakSyncs::AllowLosingWritesOnPowerLoss => {
                    let weak = Durability {
                        weak: true,
                        weak_syncs: AtomicU64::new(0),
                    };
                    weak.sync::<P>(fd)?;
                    Ok(weak)
                }
                _ => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// Whether the file takes weak syncs.
    pub fn is_weak(&self) -> bool {
        self.weak
    }

    /// Weak syncs so far.
    pub fn weak_syncs(&self) -> u64 {
        self.weak_syncs.load(Ordering::Relaxed)
    }

    /// Syncs `fd` the way decided at open.
    ///
    /// # Errors
    /// The sync's error: a refusal of the full sync included, once the file was found to take it.
    pub(crate) fn sync<P: Platform>(&self, fd: BorrowedFd<'_>) -> Result<(), StoreError> {
        if !self.weak {
            return retry_interrupted(|| P::sync(fd));
        }
        retry_interrupted(|| P::weak_sync(fd))?;
        self.weak_syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// The platform's ordering barrier on `fd` where it has one and `shares_device` (the journal
    /// whose sync completes it is on the same device); a [`sync`](Self::sync) otherwise, and
    /// where the file system refuses the barrier.
    ///
    /// # Errors
    /// As [`sync`](Self::sync).
    pub(crate) fn barrier<P: Platform>(
        &self,
        fd: BorrowedFd<'_>,
        shares_device: bool,
    ) -> Result<(), StoreError> {
        if self.weak || !shares_device {
            return self.sync::<P>(fd);
        }
        match retry_interrupted(|| P::barrier(fd)) {
            Err(e) if e.kind == StoreErrorKind::Unsupported => self.sync::<P>(fd),
            other => other,
        }
    }

    /// Syncs the directory holding `path`, so that a newly created or renamed file survives a
    /// crash.
    ///
    /// # Errors
    /// Opening the directory, or its sync.
    pub(crate) fn sync_parent_dir<P: Platform>(&self, path: &Path) -> Result<(), StoreError> {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let dir = retry_errno(|| rustix::fs::open(parent, flags, Mode::empty()))
            .map_err(|e| store_error(Op::Open, e))?;
        self.sync::<P>(dir.as_fd())
    }
}

/// Runs `call` until it fails with something other than `EINTR` (a signal arrived during a sync
/// or an `fcntl`; the call did not happen, or may be repeated).
///
/// # Errors
/// `call`'s error, if not `EINTR`.
pub fn retry_interrupted<T>(
    mut call: impl FnMut() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let eintr = Errno::INTR.raw_os_error();
    loop {
        match call() {
            Err(e) if e.errno.map(|code| code.raw()) == Some(eintr) => {}
            other => return other,
        }
    }
}

/// [`retry_interrupted`] for a rustix call.
pub(crate) fn retry_errno<T>(mut call: impl FnMut() -> Result<T, Errno>) -> Result<T, Errno> {
    loop {
        match call() {
            Err(Errno::INTR) => {}
            other => return other,
        }
    }
}

/// Whether `errno`, from a platform's full sync, means the file system refuses it: `ENOTSUP`,
/// `EOPNOTSUPP`, `ENOTTY` (no such `fcntl` on this file) or `EINVAL` (not for this file).
pub fn full_sync_refused(errno: Errno) -> bool {
    errno == Errno::NOTSUP
        || errno == Errno::OPNOTSUPP
        || errno == Errno::NOTTY
        || errno == Errno::INVAL
}

/// The store error of a full sync that failed with `errno`: [`StoreErrorKind::Unsupported`]
/// where the file system refuses the call ([`full_sync_refused`]).
pub fn full_sync_error(errno: Errno) -> StoreError {
    let error = store_error(Op::Sync, errno);
    if full_sync_refused(errno) {
        StoreError {
            kind: StoreErrorKind::Unsupported,
            ..error
        }
    } else {
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eintr_is_retried_and_nothing_else() {
        let mut calls = 0;
        let result = retry_interrupted(|| {
            calls += 1;
            match calls {
                1 | 2 => Err(store_error(Op::Sync, Errno::INTR)),
                _ => Ok(calls),
            }
        });
        assert_eq!(result, Ok(3));
        let mut calls = 0;
        let result: Result<(), _> = retry_interrupted(|| {
            calls += 1;
            Err(store_error(Op::Sync, Errno::IO))
        });
        assert_eq!(
            (result.map_err(|e| e.kind), calls),
            (Err(StoreErrorKind::Io), 1)
        );
    }

    #[test]
    fn a_refused_full_sync_is_unsupported() {
        for errno in [Errno::NOTSUP, Errno::OPNOTSUPP, Errno::NOTTY, Errno::INVAL] {
            assert_eq!(
                full_sync_error(errno).kind,
                StoreErrorKind::Unsupported,
                "{errno:?}"
            );
        }
        assert_eq!(full_sync_error(Errno::IO).kind, StoreErrorKind::Io);
    }
}
