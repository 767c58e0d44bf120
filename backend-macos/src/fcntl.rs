//! The two `fcntl`s rustix does not wrap as chunkpipe needs them, through `libc`:
//! `F_BARRIERFSYNC`, and `F_PREALLOCATE` with the request chunkpipe computes.
#![allow(unsafe_code)]

use std::os::fd::AsRawFd;

use rustix::fd::BorrowedFd;
use rustix::io::Errno;

use crate::preallocate::{self, Request};

// The request's constants are Apple's.
const _: () = assert!(preallocate::F_ALLOCATECONTIG == libc::F_ALLOCATECONTIG);
const _: () = assert!(preallocate::F_ALLOCATEALL == libc::F_ALLOCATEALL);
const _: () = assert!(preallocate::F_PEOFPOSMODE == libc::F_PEOFPOSMODE);

fn last_errno() -> Errno {
    Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::IO)
}

/// `fcntl(fd, F_BARRIERFSYNC)`: an `fsync` that also makes the drive persist every write issued
/// before it ahead of any issued after it. Ordering, not durability.
pub(crate) fn barrier_fsync(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    // SAFETY: `fd` is a borrowed, open descriptor that stays open for the whole call, and
    // F_BARRIERFSYNC takes no third argument: the call reads or writes no memory of ours.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_BARRIERFSYNC) };
    if rc != -1 { Ok(()) } else { Err(last_errno()) }
}

/// `fcntl(fd, F_PREALLOCATE, &request)`; returns the bytes the kernel allocated
/// (`fst_bytesalloc`).
pub(crate) fn preallocate(fd: BorrowedFd<'_>, request: Request) -> Result<i64, Errno> {
    let mut store = libc::fstore_t {
        fst_flags: request.flags,
        fst_posmode: request.posmode,
        fst_offset: request.offset,
        fst_length: request.length,
        fst_bytesalloc: 0,
    };
    // SAFETY: `fd` is a borrowed, open descriptor that stays open for the whole call;
    // F_PREALLOCATE reads and writes one `fstore_t`, and `store` is one, alive and exclusively
    // borrowed until the call returns.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_PREALLOCATE, &raw mut store) };
    if rc != -1 {
        Ok(store.fst_bytesalloc)
    } else {
        Err(last_errno())
    }
}
