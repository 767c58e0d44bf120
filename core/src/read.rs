//! Reads: from the store outside the lock, then patched with staged chunks under it.
//!
//! A read registers in the staging pool's grace period, reads the whole range from the store
//! without holding the lock, and then, under the lock, copies every chunk the index still holds
//! from staging over what the store returned. Any chunk the flusher may have been writing in
//! place during the store read is still in the index at that point (its slot cannot be freed
//! while this reader is registered), so the result is exactly the pipe's contents at that
//! moment: never a torn chunk, never part of a write or a transaction.

use crate::{ChunkStore, Error, Pipe};

impl<S: ChunkStore> Pipe<'_, S> {
    /// Fills `buf` (a whole number of chunks) with chunks `index..`: the newest value of each,
    /// durable or not.
    ///
    /// # Errors
    /// Bad length or range; a store read error ([`Error::Store`]); [`Error::Poisoned`].
    pub fn read_into(&self, index: u64, buf: &mut [u8]) -> Result<(), Error> {
        self.read_reporting_freed(index, buf).map(|_| ())
    }

    /// [`read_into`](Pipe::read_into), also returning how many staging slots the read's
    /// grace period held back and freed on exit (the blocking layer wakes blocked writers then).
    pub(crate) fn read_reporting_freed(&self, index: u64, buf: &mut [u8]) -> Result<u32, Error> {
        let ticket = {
            let mut state = self.lock();
            self.check_range(index, buf.len(), state.len_chunks)?;
            if let Some(e) = state.poison {
                return Err(Error::Poisoned(e));
            }
            state.pool.enter_reader()
        };
        let read = self
            .store
            .read_at(index * self.config.chunk_bytes(), &mut [&mut *buf]);
        let mut guard = self.lock();
        let state = &mut *guard;
        let result = match (read, state.poison) {
            (_, Some(e)) => Err(Error::Poisoned(e)),
            (Err(e), None) => Err(Error::Store(e)),
            (Ok(()), None) => {
                self.patch_from_staging(state, index, buf);
                Ok(())
            }
        };
        let freed = state.pool.exit_reader(ticket, &mut state.index);
        result.map(|()| freed)
    }

    /// Copies every staged chunk of the range over `buf`. Probes the index per chunk, or scans
    /// the index when the range is larger than it.
    fn patch_from_staging(&self, state: &crate::pipe::State<'_>, index: u64, buf: &mut [u8]) {
        if state.index.is_empty() {
            return;
        }
        let chunk = self.config.chunk_size as usize;
        let count = (buf.len() / chunk) as u64;
        state.index.for_each_in(index, count, |at, slot| {
            let offset = (at - index) as usize * chunk;
            buf[offset..offset + chunk].copy_from_slice(state.pool.staged_bytes(slot));
        });
    }

    /// Reads `count` chunks starting at `index` into a new vector.
    ///
    /// # Errors
    /// As [`read_into`](Pipe::read_into); [`Error::InvalidInput`] when the size overflows.
    #[cfg(feature = "alloc")]
    pub fn read(&self, index: u64, count: u64) -> Result<alloc::vec::Vec<u8>, Error> {
        let mut buf = self.read_buffer(index, count)?;
        self.read_into(index, &mut buf)?;
        Ok(buf)
    }

    /// A zeroed buffer for `count` chunks at `index`, after checking the range (so a bad request
    /// allocates nothing).
    #[cfg(feature = "alloc")]
    pub(crate) fn read_buffer(&self, index: u64, count: u64) -> Result<alloc::vec::Vec<u8>, Error> {
        let len_chunks = self.len_chunks();
        if index.checked_add(count).is_none_or(|end| end > len_chunks) {
            return Err(Error::OutOfRange {
                index,
                count,
                len_chunks,
            });
        }
        let len = usize::try_from(count)
            .ok()
            .and_then(|c| c.checked_mul(self.config.chunk_size as usize))
            .ok_or(Error::InvalidInput("read size overflows usize"))?;
        let mut buf = alloc::vec::Vec::new();
        buf.try_reserve_exact(len)
            .map_err(|_| Error::InvalidInput("read size too large to allocate"))?;
        buf.resize(len, 0);
        Ok(buf)
    }
}
