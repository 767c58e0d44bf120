//! `preadv`/`pwritev` loops: whole or error, through short transfers, `EINTR` and `IOV_MAX`.

use std::io::{IoSlice, IoSliceMut};

use chunkpipe_core::{Op, StoreError, StoreErrorKind};
use rustix::fd::BorrowedFd;
use rustix::io::Errno;

use crate::store_error;

/// The most iovecs one call takes on Linux and macOS.
pub(crate) const IOV_MAX: usize = 1024;

/// Iovecs per read call these loops build on the stack: well under `IOV_MAX`, and small enough
/// that building them costs nothing next to a read from the page cache. Longer lists take
/// several calls.
const READ_IOV_GROUP: usize = 64;

/// Iovecs per write call: more than for reads, because a direct write (a journal opened with
/// `FileStore::open_direct`) waits for the device in every call, so fewer, larger calls are
/// faster.
const WRITE_IOV_GROUP: usize = 256;

/// Writes all of `bufs` at `offset` with `pwritev`, retrying short writes and `EINTR`.
pub(crate) fn write_all_at(
    fd: BorrowedFd<'_>,
    mut offset: u64,
    bufs: &[&[u8]],
) -> Result<(), StoreError> {
    if let [buf] = bufs {
        return write_one_at(fd, offset, buf);
    }
    for group in bufs.chunks(WRITE_IOV_GROUP) {
        let mut storage = [IoSlice::new(&[]); WRITE_IOV_GROUP];
        for (slice, buf) in storage.iter_mut().zip(group) {
            *slice = IoSlice::new(buf);
        }
        let mut slices = &mut storage[..group.len()];
        IoSlice::advance_slices(&mut slices, 0); // drop leading empty buffers
        while !slices.is_empty() {
            match rustix::io::pwritev(fd, slices, offset) {
                // No progress on a non-empty write: the device refuses; never spin on it.
                Ok(0) => return Err(store_error(Op::Write, Errno::IO)),
                Ok(n) => {
                    offset += n as u64;
                    IoSlice::advance_slices(&mut slices, n);
                }
                Err(Errno::INTR) => {}
                Err(e) => return Err(store_error(Op::Write, e)),
            }
        }
    }
    Ok(())
}

/// Fills all of `bufs` from `offset` with `preadv`, retrying short reads and `EINTR`. End of
/// file before the buffers are full is `OutOfBounds`.
pub(crate) fn read_exact_at(
    fd: BorrowedFd<'_>,
    mut offset: u64,
    bufs: &mut [&mut [u8]],
) -> Result<(), StoreError> {
    if let [buf] = bufs {
        return read_one_at(fd, offset, buf);
    }
    for group in bufs.chunks_mut(READ_IOV_GROUP) {
        let mut storage: [IoSliceMut<'_>; READ_IOV_GROUP] =
            std::array::from_fn(|_| IoSliceMut::new(&mut []));
        let count = group.len();
        for (slice, buf) in storage.iter_mut().zip(group.iter_mut()) {
            *slice = IoSliceMut::new(buf);
        }
        let mut slices = &mut storage[..count];
        IoSliceMut::advance_slices(&mut slices, 0);
        while !slices.is_empty() {
            match rustix::io::preadv(fd, slices, offset) {
                Ok(0) => return Err(StoreError::new(StoreErrorKind::OutOfBounds, Op::Read)),
                Ok(n) => {
                    offset += n as u64;
                    IoSliceMut::advance_slices(&mut slices, n);
                }
                Err(Errno::INTR) => {}
                Err(e) => return Err(store_error(Op::Read, e)),
            }
        }
    }
    Ok(())
}

/// `pwrite` loop for one buffer, the common case.
fn write_one_at(fd: BorrowedFd<'_>, mut offset: u64, mut buf: &[u8]) -> Result<(), StoreError> {
    while !buf.is_empty() {
        match rustix::io::pwrite(fd, buf, offset) {
            Ok(0) => return Err(store_error(Op::Write, Errno::IO)),
            Ok(n) => {
                offset += n as u64;
                buf = &buf[n..];
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(store_error(Op::Write, e)),
        }
    }
    Ok(())
}

/// `pread` loop for one buffer, the common case.
fn read_one_at(fd: BorrowedFd<'_>, mut offset: u64, mut buf: &mut [u8]) -> Result<(), StoreError> {
    while !buf.is_empty() {
        match rustix::io::pread(fd, &mut *buf, offset) {
            Ok(0) => return Err(StoreError::new(StoreErrorKind::OutOfBounds, Op::Read)),
            Ok(n) => {
                offset += n as u64;
                buf = &mut buf[n..];
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(store_error(Op::Read, e)),
        }
    }
    Ok(())
}
