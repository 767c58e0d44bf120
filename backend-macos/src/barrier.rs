//! `fcntl(F_BARRIERFSYNC)`, the one call rustix does not wrap, through `libc`.
#![allow(unsafe_code)]

use std::os::fd::AsRawFd;

use rustix::fd::BorrowedFd;
use rustix::io::Errno;

/// `fcntl(fd, F_BARRIERFSYNC)`: an `fsync` that also makes the drive persist every write issued
/// before it ahead of any issued after it. Ordering, not durability.
pub(crate) fn barrier_fsync(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    // SAFETY: `fd` is a borrowed, open descriptor that stays open for the whole call, and
    // F_BARRIERFSYNC takes no third argument: the call reads or writes no memory of ours.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_BARRIERFSYNC) };
    if rc != -1 {
        Ok(())
    } else {
        Err(Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::IO))
    }
}
