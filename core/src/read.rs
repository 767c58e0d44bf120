//! Reads: from the store outside the lock, then patched with staged chunks under it.
//!
//! A read registers in the staging pool's grace period, reads the whole range from the store
//! without holding the lock, and then, under the lock, copies every chunk the index still holds
//! from staging over what the store returned. Any chunk a step may have been writing in
//! place during the store read is still in the index at that point (its slot cannot be freed
//! while this reader is registered), so the result is exactly the pipe's contents at that
//! moment: never a torn chunk, never part of a write or a transaction.
//!
//! **Reads while nothing is staged** (with `std`) skip the lock: every time the state lock is
//! released, [`ReadMirror`] records whether anything is staged and the store's length. A
//! reader that finds nothing staged reads the store and checks that the mirror's version did
//! not move meanwhile. Pipe data reaches the store only from staged slots, written by a thread
//! that took the lock after the writer staged them — and that writer moved the version before
//! it released the lock. So if the version is the same, even value before and after the store
//! read, no pipe write touched the store during it (the store's own synchronisation orders a
//! write the read observed after the version move), and the result is exact; otherwise the
//! read is redone the locked way.
//!
//! **Checksums** (`Journal::Atomic` with `chunk_checksums`): every chunk that comes from the
//! store, not from staging, is checked against the checksum table; one that does not match is
//! [`Error::Corrupt`]. The check runs outside the state lock, right after the store read. A
//! chunk that fails it may still be fine: a batch may have written it in place during the
//! read — but then it is staged at the patch (the grace period keeps it in the index), and the
//! patch replaces it. So a failure is checked again under the lock, skipping staged chunks, and
//! only a chunk that fails there too is damage. (A batch updates the table before it leaves the
//! index, under the state lock, so a chunk not staged at the patch has its final entry.)

use crate::engine::Engine;
use crate::journal::table::{ChecksumTable, chunk_crc};
#[cfg(feature = "std")]
use crate::mirror::ReadMirror;
use crate::state::State;
use crate::sync::Mutex;
use crate::{ChunkStore, Damage, Error, Op, Pipe, StoreError, StoreErrorKind, StoreRole, Wake};

/// Chunks whose CRCs a read computes before it takes the table's lock to compare them.
const CHECK_GROUP: usize = 32;

impl<S: ChunkStore> Pipe<'_, S> {
    /// Fills `buf` (a whole number of chunks) with chunks `index..`: the newest value of each,
    /// durable or not.
    ///
    /// # Errors
    /// Bad length or range; a store read error ([`Error::Store`]); [`Error::Poisoned`];
    /// [`Error::Corrupt`] for a chunk of the data store that does not match its checksum, or a
    /// data store cut shorter than the pipe.
    pub fn read_into(&self, index: u64, buf: &mut [u8]) -> Result<(), Error> {
        self.read_freeing(index, buf).map(|_| ())
    }

    /// [`read_into`](Pipe::read_into), also saying whom to wake: writers, if the read's grace
    /// period held back staging one waited for, freed as the read left.
    pub(crate) fn read_freeing(&self, index: u64, buf: &mut [u8]) -> Result<Wake, Error> {
        if let Some(unstaged) = self.read_unstaged(index, buf) {
            return unstaged.map(|()| Wake::default());
        }
        let ticket = {
            let mut state = self.lock();
            self.shared
                .check_range(index, buf.len(), state.len_chunks)?;
            state.latch.check()?;
            state.pool.enter_reader()
        };
        let read = self.read_store(index, buf);
        let suspect = read.is_ok() && self.check_chunks(index, buf).is_err();
        let mut guard = self.lock();
        let state = &mut *guard;
        let result = match (read, state.latch.check()) {
            (_, Err(e)) | (Err(e), Ok(())) => Err(e),
            (Ok(()), Ok(())) => {
                self.patch_from_staging(state, index, buf);
                if suspect {
                    self.check_unstaged(state, index, buf)
                } else {
                    Ok(())
                }
            }
        };
        let freed = state.pool.exit_reader(ticket, &mut state.index) > 0;
        let wake = Wake {
            writers: freed && state.staging_freed(),
            ..Wake::default()
        };
        drop(guard);
        if wake.writers {
            self.shared.wake_waiters(true);
        }
        result.map(|()| wake)
    }

    /// The read without the lock, when nothing is staged before or during it (module docs);
    /// `None` when that cannot be shown, or the request needs the locked path's checks.
    #[cfg(feature = "std")]
    fn read_unstaged(&self, index: u64, buf: &mut [u8]) -> Option<Result<(), Error>> {
        let mirror = self.shared.mirror();
        let before = mirror.version();
        if !ReadMirror::is_unstaged(before) {
            return None;
        }
        let len_chunks = mirror.len_chunks();
        self.shared.check_range(index, buf.len(), len_chunks).ok()?;
        let read = self
            .read_store(index, buf)
            .and_then(|()| self.check_chunks(index, buf));
        let after = mirror.version();
        (after == before).then_some(read)
    }

    #[cfg(not(feature = "std"))]
    fn read_unstaged(&self, _index: u64, _buf: &mut [u8]) -> Option<Result<(), Error>> {
        None
    }

    /// Reads chunks `index..` from the store into `buf` as it is, staging aside. A store that
    /// ends before chunks the pipe holds is damage (it was cut short under the pipe).
    fn read_store(&self, index: u64, buf: &mut [u8]) -> Result<(), Error> {
        let offset = index * self.shared.chunk_bytes();
        self.shared
            .data
            .read_at(offset, &mut [buf])
            .map_err(|e| match e {
                StoreError {
                    kind: StoreErrorKind::OutOfBounds,
                    op: Op::Read,
                    ..
                } => Error::Corrupt(Damage::new(
                    StoreRole::Data,
                    offset,
                    "the data store is shorter than the pipe recorded",
                )),
                e => Error::Store(e),
            })
    }

    /// Checks every chunk of `buf` (chunks `index..`, as the store returned them) against the
    /// checksum table; the first that fails is [`Error::Corrupt`]. Nothing to check without a
    /// table.
    fn check_chunks(&self, index: u64, buf: &[u8]) -> Result<(), Error> {
        let Some(table) = self.table() else {
            return Ok(());
        };
        let chunk = self.shared.config.chunk_size as usize;
        let mut crcs = [0u32; CHECK_GROUP];
        for (g, group) in buf.chunks(chunk * CHECK_GROUP).enumerate() {
            let first = index + (g * CHECK_GROUP) as u64;
            let count = group.len() / chunk;
            for (crc, bytes) in crcs.iter_mut().zip(group.chunks_exact(chunk)) {
                *crc = chunk_crc(bytes);
            }
            let table = table.lock();
            if let Some(bad) = (0..count).find(|&i| !table.matches(first + i as u64, crcs[i])) {
                return Err(self.damaged_chunk(first + bad as u64));
            }
        }
        Ok(())
    }

    /// Under the state lock, after the patch: checks again every chunk of `buf` that did not
    /// come from staging (see the module docs).
    fn check_unstaged(&self, state: &State<'_>, index: u64, buf: &[u8]) -> Result<(), Error> {
        let Some(table) = self.table() else {
            return Ok(());
        };
        let table = table.lock();
        let chunk = self.shared.config.chunk_size as usize;
        for (i, bytes) in buf.chunks_exact(chunk).enumerate() {
            let at = index + i as u64;
            if state.index.get(at).is_none() && !table.matches(at, chunk_crc(bytes)) {
                return Err(self.damaged_chunk(at));
            }
        }
        Ok(())
    }

    fn damaged_chunk(&self, chunk: u64) -> Error {
        Error::Corrupt(Damage::new(
            StoreRole::Data,
            chunk * self.shared.chunk_bytes(),
            "the chunk does not match its checksum",
        ))
    }

    /// The chunk checksum table, where the pipe keeps one.
    fn table(&self) -> Option<&Mutex<ChecksumTable>> {
        match &self.engine {
            Engine::Atomic(atomic) => atomic.table.as_ref(),
            Engine::Off(_) => None,
        }
    }

    /// Copies every staged chunk of the range over `buf`. Probes the index per chunk, or scans
    /// the index when the range is larger than it.
    fn patch_from_staging(&self, state: &State<'_>, index: u64, buf: &mut [u8]) {
        if state.index.is_empty() {
            return;
        }
        let chunk = self.shared.config.chunk_size as usize;
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
            .and_then(|c| c.checked_mul(self.shared.config.chunk_size as usize))
            .ok_or(Error::InvalidInput("read size overflows usize"))?;
        let mut buf = alloc::vec::Vec::new();
        buf.try_reserve_exact(len)
            .map_err(|_| Error::InvalidInput("read size too large to allocate"))?;
        buf.resize(len, 0);
        Ok(buf)
    }
}
