//! [`MemStore`]: a RAM-backed [`ChunkStore`] for tests, examples and embedded users.

use crate::store::ChunkStore;
use crate::sync::Mutex;
use crate::{Op, StoreError, StoreErrorKind};

enum Bytes<'a> {
    Borrowed(&'a mut [u8]),
    #[cfg(feature = "alloc")]
    Owned(alloc::vec::Vec<u8>),
}

struct MemInner<'a> {
    bytes: Bytes<'a>,
    len: usize,
}

impl MemInner<'_> {
    fn live(&mut self) -> &mut [u8] {
        let len = self.len;
        match &mut self.bytes {
            Bytes::Borrowed(b) => &mut b[..len],
            #[cfg(feature = "alloc")]
            Bytes::Owned(v) => &mut v[..len],
        }
    }

    fn range(
        &self,
        offset: u64,
        len: usize,
        op: Op,
    ) -> Result<core::ops::Range<usize>, StoreError> {
        let out_of_bounds = StoreError::new(StoreErrorKind::OutOfBounds, op);
        let start = usize::try_from(offset).map_err(|_| out_of_bounds)?;
        let end = start.checked_add(len).ok_or(out_of_bounds)?;
        if end > self.len {
            return Err(out_of_bounds);
        }
        Ok(start..end)
    }
}

/// A store that keeps its bytes in memory. `sync` does nothing: memory is as durable as it gets.
///
/// With `alloc` it grows without limit ([`MemStore::new`]); without it, it lives in a buffer the
/// caller hands in and grows up to that buffer's size ([`MemStore::in_buffer`]).
///
/// ```
/// use chunkpipe_core::{ChunkStore, MemStore};
/// let mut backing = [0u8; 1024];
/// let store = MemStore::in_buffer(&mut backing);
/// store.grow(512).unwrap();
/// store.write_at(0, &[b"hello"]).unwrap();
/// let mut out = [0u8; 5];
/// store.read_at(0, &mut [&mut out]).unwrap();
/// assert_eq!(&out, b"hello");
/// assert!(store.grow(2048).is_err()); // past the buffer: NoSpace
/// ```
pub struct MemStore<'a> {
    inner: Mutex<MemInner<'a>>,
}

impl<'a> MemStore<'a> {
    /// An empty store living in `buf`; it can grow to `buf.len()` bytes. `buf` is zeroed.
    pub fn in_buffer(buf: &'a mut [u8]) -> Self {
        buf.fill(0);
        Self::borrowed(buf, 0)
    }

    /// A store living in `buf` whose first `len` bytes are its contents already — memory that
    /// outlived the last pipe over it (retained RAM across a reset, a test reopening a store).
    ///
    /// # Errors
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) when `len` exceeds `buf.len()`.
    pub fn resume(buf: &'a mut [u8], len: usize) -> Result<Self, crate::Error> {
        if len > buf.len() {
            return Err(crate::Error::InvalidInput("resume: len exceeds the buffer"));
        }
        Ok(Self::borrowed(buf, len))
    }

    fn borrowed(buf: &'a mut [u8], len: usize) -> Self {
        MemStore {
            inner: Mutex::new(MemInner {
                bytes: Bytes::Borrowed(buf),
                len,
            }),
        }
    }
}

#[cfg(feature = "alloc")]
impl MemStore<'static> {
    /// An empty store on the heap that grows as needed.
    pub fn new() -> Self {
        MemStore {
            inner: Mutex::new(MemInner {
                bytes: Bytes::Owned(alloc::vec::Vec::new()),
                len: 0,
            }),
        }
    }
}

#[cfg(feature = "alloc")]
impl Default for MemStore<'static> {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for MemStore<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MemStore")
            .field("len", &self.inner.lock().len)
            .finish()
    }
}

impl ChunkStore for MemStore<'_> {
    fn len(&self) -> Result<u64, StoreError> {
        Ok(self.inner.lock().len as u64)
    }

    fn read_at(&self, offset: u64, bufs: &mut [&mut [u8]]) -> Result<(), StoreError> {
        let mut inner = self.inner.lock();
        let total = bufs.iter().map(|b| b.len()).sum();
        let range = inner.range(offset, total, Op::Read)?;
        let mut src = &inner.live()[range];
        for buf in bufs.iter_mut() {
            let (head, rest) = src.split_at(buf.len());
            buf.copy_from_slice(head);
            src = rest;
        }
        Ok(())
    }

    fn write_at(&self, offset: u64, bufs: &[&[u8]]) -> Result<(), StoreError> {
        let mut inner = self.inner.lock();
        let total = bufs.iter().map(|b| b.len()).sum();
        let range = inner.range(offset, total, Op::Write)?;
        let mut dst = &mut inner.live()[range];
        for buf in bufs {
            let (head, rest) = dst.split_at_mut(buf.len());
            head.copy_from_slice(buf);
            dst = rest;
        }
        Ok(())
    }

    fn grow(&self, new_len: u64) -> Result<(), StoreError> {
        let no_space = StoreError::new(StoreErrorKind::NoSpace, Op::Grow);
        let new_len = usize::try_from(new_len).map_err(|_| no_space)?;
        let mut inner = self.inner.lock();
        if new_len <= inner.len {
            return Ok(());
        }
        match &mut inner.bytes {
            Bytes::Borrowed(b) if new_len > b.len() => return Err(no_space),
            Bytes::Borrowed(_) => {}
            #[cfg(feature = "alloc")]
            Bytes::Owned(v) => {
                v.try_reserve(new_len - v.len()).map_err(|_| no_space)?;
                v.resize(new_len, 0);
            }
        }
        inner.len = new_len;
        Ok(())
    }

    fn sync(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectored_round_trip_and_bounds() {
        let store = MemStore::new();
        store.grow(16).unwrap();
        store.write_at(2, &[b"ab", b"cde"]).unwrap();
        let (mut a, mut b) = ([0u8; 3], [0u8; 4]);
        store.read_at(1, &mut [&mut a, &mut b]).unwrap();
        assert_eq!(&a, b"\0ab");
        assert_eq!(&b, b"cde\0");
        let err = store.write_at(15, &[b"xy"]).unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::OutOfBounds);
        assert_eq!(
            store.read_at(u64::MAX, &mut [&mut a]).unwrap_err().kind,
            StoreErrorKind::OutOfBounds
        );
    }

    #[test]
    fn grow_never_shrinks() {
        let store = MemStore::new();
        store.grow(10).unwrap();
        store.grow(4).unwrap();
        assert_eq!(store.len(), Ok(10));
    }
}
