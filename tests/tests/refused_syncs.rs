//! The POSIX backends' durability checks, run on Linux through platforms that act out file
//! systems the tests cannot mount here: one that refuses the full sync (as SMB refuses macOS's
//! `F_FULLFSYNC`, with `ENOTSUP`, `ENOTTY` or `EINVAL`), and one whose every other sync, barrier,
//! preallocation and writeback hint is interrupted by a signal (`EINTR`).
//!
//! A pipe is refused where the full sync is, unless the config allows weak syncs; then every
//! weak sync is counted, for the data file and the journal; interrupted calls are retried, never
//! a failure. Each runs through the conformance suite.
#![cfg(target_os = "linux")]

use std::sync::atomic::{AtomicU64, Ordering};

use chunkpipe_core::{Config, Error, Journal, Op, StoreError, StoreErrorKind, WeakSyncs};
use chunkpipe_linux::Linux;
use chunkpipe_posix::{BorrowedFd, Platform, full_sync_error, store_error};
use chunkpipe_tests::PosixFiles;
use rustix::io::Errno;

/// A file system that refuses the full sync with `ERRNO` and takes the weak one.
struct Refusing<const ERRNO: i32>;

impl<const ERRNO: i32> Platform for Refusing<ERRNO> {
    fn sync(_fd: BorrowedFd<'_>) -> Result<(), StoreError> {
        Err(full_sync_error(Errno::from_raw_os_error(ERRNO)))
    }

    fn weak_sync(fd: BorrowedFd<'_>) -> Result<(), StoreError> {
        Linux::sync(fd)
    }

    fn preallocate(fd: BorrowedFd<'_>, old_len: u64, new_len: u64) -> Result<bool, StoreError> {
        Linux::preallocate(fd, old_len, new_len)
    }
}

const ENOTSUP: i32 = Errno::NOTSUP.raw_os_error();
const ENOTTY: i32 = Errno::NOTTY.raw_os_error();
const EINVAL: i32 = Errno::INVAL.raw_os_error();

/// Calls of [`Interrupted`]'s methods; every other one is interrupted.
static CALLS: AtomicU64 = AtomicU64::new(0);
/// Calls that were interrupted.
static INTERRUPTED: AtomicU64 = AtomicU64::new(0);

/// A file system on which every other sync, barrier, preallocation and writeback hint fails
/// with `EINTR` (a signal arrived), and the rest are Linux's.
struct Interrupted;

impl Interrupted {
    fn or_interrupted<T>(
        op: Op,
        call: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if CALLS.fetch_add(1, Ordering::SeqCst) % 2 == 0 {
            INTERRUPTED.fetch_add(1, Ordering::SeqCst);
            return Err(store_error(op, Errno::INTR));
        }
        call()
    }
}

impl Platform for Interrupted {
    fn sync(fd: BorrowedFd<'_>) -> Result<(), StoreError> {
        Self::or_interrupted(Op::Sync, || Linux::sync(fd))
    }

    fn barrier(fd: BorrowedFd<'_>) -> Result<(), StoreError> {
        Self::or_interrupted(Op::Sync, || Linux::barrier(fd))
    }

    fn preallocate(fd: BorrowedFd<'_>, old_len: u64, new_len: u64) -> Result<bool, StoreError> {
        Self::or_interrupted(Op::Grow, || Linux::preallocate(fd, old_len, new_len))
    }

    fn start_writeback(fd: BorrowedFd<'_>, offset: u64, len: u64) -> Result<(), StoreError> {
        Self::or_interrupted(Op::Writeback, || Linux::start_writeback(fd, offset, len))
    }
}

fn config() -> Config {
    Config::new()
        .with_chunk_size(4096)
        .with_initial_chunks(16)
        .with_staging_chunks(16)
        .with_journal_bytes(1 << 20)
}

/// By default a refused full sync refuses the pipe, before anything is written: no pipe exists
/// afterwards (no `.meta`), whatever the file system answered.
#[test]
fn a_refused_full_sync_refuses_the_pipe_by_default() {
    fn refused<P: Platform>(errno: Errno) {
        for journal in [Journal::Atomic, Journal::Off] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("data");
            let opened = chunkpipe_posix::open::<P>(&path, config().with_journal(journal));
            let Err(Error::Store(e)) = opened else {
                panic!("{errno:?}, {journal:?}: opened over a refused full sync");
            };
            assert_eq!(
                (e.kind, e.op),
                (StoreErrorKind::Unsupported, Op::Sync),
                "{errno:?}"
            );
            assert_eq!(e.errno.map(|c| c.raw()), Some(errno.raw_os_error()));
            assert!(
                !chunkpipe_posix::meta_path(&path).exists(),
                "no pipe was created"
            );
        }
    }
    refused::<Refusing<ENOTSUP>>(Errno::NOTSUP);
    refused::<Refusing<ENOTTY>>(Errno::NOTTY);
    refused::<Refusing<EINVAL>>(Errno::INVAL);
}

/// Allowed, weak syncs are counted for the data file (with its metadata and directory) and the
/// journal, from the open on.
#[test]
fn allowed_weak_syncs_are_counted_for_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let allowed = config().with_weak_syncs(WeakSyncs::AllowLosingWritesOnPowerLoss);
    let pipe = chunkpipe_posix::open::<Refusing<ENOTSUP>>(&path, allowed).unwrap();
    let opened = pipe.pipe().stats();
    assert!(
        opened.data_weak_syncs > 0,
        "creating syncs the data file: {opened:?}"
    );
    assert!(
        opened.journal_weak_syncs > 0,
        "and formats the journal: {opened:?}"
    );
    pipe.write_durable(3, &[7; 4096]).unwrap();
    let after = pipe.pipe().stats();
    assert_eq!(
        after.journal_weak_syncs,
        opened.journal_weak_syncs + 1,
        "the commit's sync"
    );
    pipe.close().unwrap();
}

/// Interrupted calls are retried: the pipe works and is never poisoned by them.
#[test]
fn interrupted_syncs_are_retried() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let pipe = chunkpipe_posix::open::<Interrupted>(&path, config()).unwrap();
    for i in 0..8 {
        pipe.write_durable(i, &[i as u8; 4096]).unwrap();
    }
    pipe.grow(4).unwrap();
    let stats = pipe.pipe().stats();
    assert_eq!((stats.data_weak_syncs, stats.journal_weak_syncs), (0, 0));
    pipe.close().unwrap();
    assert!(
        INTERRUPTED.load(Ordering::SeqCst) > 0,
        "no call was interrupted"
    );
}

/// The conformance suite where the full sync is refused and weak syncs are allowed.
mod weak {
    use super::*;
    chunkpipe_tests::conformance!(
        PosixFiles::<Refusing<ENOTSUP>>::allowing_weak_syncs(Journal::Atomic),
        files
    );
    chunkpipe_tests::conformance!(
        PosixFiles::<Refusing<ENOTSUP>>::allowing_weak_syncs(Journal::Atomic),
        journal
    );
    mod off {
        use super::*;
        chunkpipe_tests::conformance!(
            PosixFiles::<Refusing<EINVAL>>::allowing_weak_syncs(Journal::Off),
            files
        );
    }
}

/// The conformance suite where every other call is interrupted.
mod interrupted {
    use super::*;
    chunkpipe_tests::conformance!(PosixFiles::<Interrupted>::new(Journal::Atomic), files);
    chunkpipe_tests::conformance!(PosixFiles::<Interrupted>::new(Journal::Atomic), journal);
}
