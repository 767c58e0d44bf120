//! `sync_file_range`, the one call rustix does not wrap, through `libc`.
#![allow(unsafe_code)]

use std::os::fd::AsRawFd;

use rustix::fd::BorrowedFd;
use rustix::io::Errno;

/// `sync_file_range(fd, offset, len, SYNC_FILE_RANGE_WRITE)`: start writeback of dirty pages in
/// the range without waiting. No durability: it neither waits for the device nor flushes its
/// cache.
pub(crate) fn sync_file_range_write(
    fd: BorrowedFd<'_>,
    offset: u64,
    len: u64,
) -> Result<(), Errno> {
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Err(Errno::INVAL);
    };
    // SAFETY: `fd` is a borrowed, open descriptor that stays open for the whole call, and
    // sync_file_range takes plain integers: it reads or writes no memory of this process.
    let rc =
        unsafe { libc::sync_file_range(fd.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE) };
    if rc == 0 {
        Ok(())
    } else {
        Err(Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::IO))
    }
}
