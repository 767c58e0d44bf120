//! The chunk checksum table in memory, and its two slots in the journal store (the layout and
//! why it is copy-on-write are in [`format`](super::format)).
//!
//! Entries change when a batch is written in place (its record carries each chunk's CRC) and
//! when recovery replays a record. Each change marks its page dirty for both slots; a
//! checkpoint writes the pages dirty for its slot and clears them. After the pipe opens, every
//! page counts as dirty for both slots: what the slots held beyond the loaded one is unknown.

#[cfg(feature = "alloc")]
use alloc::vec::Vec;

use super::checksum::Crc32c;
#[cfg(feature = "alloc")]
use super::format::TABLE_PAGE_ENTRIES;
use super::format::{self, Superblock, TABLE_PAGE_BYTES, TableDigest};
use crate::{ChunkStore, Error, StoreError};
#[cfg(feature = "alloc")]
use crate::{Damage, StoreRole};

/// The checksum of every chunk of the data store. Boxed, so that a pipe's handle on it stays
/// one pointer.
#[cfg(feature = "alloc")]
pub(crate) struct ChecksumTable(alloc::boxed::Box<TableParts>);

#[cfg(feature = "alloc")]
pub(crate) struct TableParts {
    /// Per chunk: `CRC-32C(chunk) ^ zero_crc` (0 for a chunk of zeros).
    entries: Vec<u32>,
    digest: TableDigest,
    /// Per slot, one bit per page: changed since the slot was last written.
    dirty: [Vec<u64>; 2],
    /// CRC-32C of a chunk of zeros.
    zero_crc: u32,
}

/// The CRC-32C of `bytes` (a chunk), as records and the table use it.
pub(crate) fn chunk_crc(bytes: &[u8]) -> u32 {
    let mut crc = Crc32c::new();
    crc.update(bytes);
    crc.finalize()
}

#[cfg(feature = "alloc")]
impl ChecksumTable {
    /// A table of `chunks` chunks of zeros; `zeros` is one chunk of scratch (zeroed here).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the table does not fit in memory.
    pub(crate) fn zeroed(chunks: u64, zeros: &mut [u8]) -> Result<Self, Error> {
        zeros.fill(0);
        let mut table = ChecksumTable(alloc::boxed::Box::new(TableParts {
            entries: Vec::new(),
            digest: TableDigest::default(),
            dirty: [Vec::new(), Vec::new()],
            zero_crc: chunk_crc(zeros),
        }));
        table.grow(chunks)?;
        Ok(table)
    }

    /// Loads the slot `superblock` goes with (its `data_chunks` entries), checks it against the
    /// superblock's digest, and extends it to `chunks` (the data store's length now).
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the slot does not match the digest; a store error.
    pub(crate) fn load<S: ChunkStore>(
        journal: &S,
        superblock: &Superblock,
        chunks: u64,
        zeros: &mut [u8],
    ) -> Result<Self, Error> {
        let mut table = Self::zeroed(chunks.max(superblock.data_chunks), zeros)?;
        let mut page = [0u8; TABLE_PAGE_BYTES as usize];
        let slot = superblock.table_slot();
        for p in 0..format::table_pages(superblock.data_chunks) {
            let offset = format::table_page_offset(superblock.journal_bytes, p, slot);
            journal.read_at(offset, &mut [&mut page])?;
            let first = p * TABLE_PAGE_ENTRIES;
            let end = (first + TABLE_PAGE_ENTRIES).min(superblock.data_chunks);
            for (index, raw) in (first..end).zip(page.chunks_exact(4)) {
                let entry = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
                table.entries[index as usize] = entry;
                table.digest.replace(index, 0, entry);
            }
        }
        if Some(table.digest) != superblock.table {
            let offset = format::table_page_offset(superblock.journal_bytes, 0, slot);
            return Err(Error::Corrupt(Damage::new(
                StoreRole::Journal,
                offset,
                "the chunk checksum table does not match its superblock's digest",
            )));
        }
        table.mark_all_dirty();
        Ok(table)
    }

    fn mark_all_dirty(&mut self) {
        for bits in &mut self.dirty {
            bits.fill(u64::MAX);
        }
    }

    /// Chunks covered.
    pub(crate) fn len(&self) -> u64 {
        self.entries.len() as u64
    }

    /// The digest of every entry.
    pub(crate) fn digest(&self) -> TableDigest {
        self.digest
    }

    /// Extends to `chunks` chunks of zeros (their entries are 0: nothing to write or digest).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the table does not fit in memory (4 bytes a chunk).
    pub(crate) fn grow(&mut self, chunks: u64) -> Result<(), Error> {
        let too_large = Error::InvalidInput("the chunk checksum table does not fit in memory");
        let chunks = usize::try_from(chunks).map_err(|_| too_large)?;
        let Some(more) = chunks.checked_sub(self.entries.len()).filter(|&n| n > 0) else {
            return Ok(());
        };
        self.entries
            .try_reserve_exact(more)
            .map_err(|_| too_large)?;
        self.entries.resize(chunks, 0);
        let words = format::table_pages(chunks as u64).div_ceil(64) as usize;
        for bits in &mut self.dirty {
            bits.try_reserve_exact(words.saturating_sub(bits.len()))
                .map_err(|_| too_large)?;
            bits.resize(words, 0);
        }
        Ok(())
    }

    /// Chunk `index` now holds bytes whose CRC-32C is `crc`.
    pub(crate) fn set(&mut self, index: u64, crc: u32) {
        let new = crc ^ self.zero_crc;
        let Some(entry) = self.entries.get_mut(index as usize) else {
            debug_assert!(false, "table entry {index} past the table");
            return;
        };
        let old = core::mem::replace(entry, new);
        if old != new {
            self.digest.replace(index, old, new);
            let page = (index / TABLE_PAGE_ENTRIES) as usize;
            for bits in &mut self.dirty {
                bits[page / 64] |= 1 << (page % 64);
            }
        }
    }

    /// Whether chunk `index` is expected to hold bytes whose CRC-32C is `crc`.
    pub(crate) fn matches(&self, index: u64, crc: u32) -> bool {
        self.entries
            .get(index as usize)
            .is_some_and(|&entry| entry == crc ^ self.zero_crc)
    }

    /// The next page at or after `from` that is dirty for `slot`.
    fn next_dirty(&self, slot: usize, from: u64) -> Option<u64> {
        let pages = format::table_pages(self.len());
        (from..pages).find(|&p| self.dirty[slot][(p / 64) as usize] & (1 << (p % 64)) != 0)
    }

    /// Copies page `page` into `out` and marks it written for `slot`.
    fn take_page(&mut self, slot: usize, page: u64, out: &mut [u8; TABLE_PAGE_BYTES as usize]) {
        out.fill(0);
        let first = (page * TABLE_PAGE_ENTRIES) as usize;
        let end = (first + TABLE_PAGE_ENTRIES as usize).min(self.entries.len());
        for (raw, entry) in out.chunks_exact_mut(4).zip(&self.entries[first..end]) {
            raw.copy_from_slice(&entry.to_le_bytes());
        }
        self.dirty[slot][(page / 64) as usize] &= !(1 << (page % 64));
    }
}

#[cfg(feature = "alloc")]
impl core::ops::Deref for ChecksumTable {
    type Target = TableParts;

    fn deref(&self) -> &TableParts {
        &self.0
    }
}

#[cfg(feature = "alloc")]
impl core::ops::DerefMut for ChecksumTable {
    fn deref_mut(&mut self) -> &mut TableParts {
        &mut self.0
    }
}

/// Without `alloc` there is no table ([`Config::validate`](crate::Config::validate) refuses
/// `chunk_checksums`): this type has no values, so every use of one is unreachable.
#[cfg(not(feature = "alloc"))]
pub(crate) enum ChecksumTable {}

#[cfg(not(feature = "alloc"))]
impl ChecksumTable {
    const NO_ALLOC: Error = Error::InvalidInput("chunk_checksums need the alloc feature");

    pub(crate) fn load<S: ChunkStore>(
        _: &S,
        _: &Superblock,
        _: u64,
        _: &mut [u8],
    ) -> Result<Self, Error> {
        Err(Self::NO_ALLOC)
    }

    pub(crate) fn len(&self) -> u64 {
        match *self {}
    }

    pub(crate) fn digest(&self) -> TableDigest {
        match *self {}
    }

    pub(crate) fn grow(&mut self, _: u64) -> Result<(), Error> {
        match *self {}
    }

    pub(crate) fn set(&mut self, _: u64, _: u32) {
        match *self {}
    }

    pub(crate) fn matches(&self, _: u64, _: u32) -> bool {
        match *self {}
    }

    fn next_dirty(&self, _: usize, _: u64) -> Option<u64> {
        match *self {}
    }

    fn take_page(&mut self, _: usize, _: u64, _: &mut [u8; TABLE_PAGE_BYTES as usize]) {
        match *self {}
    }
}

/// What a checkpoint wrote into a table slot: the digest and length the superblock records.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SlotWritten {
    pub(crate) digest: TableDigest,
    pub(crate) chunks: u64,
}

/// Access to a table: owned (recovery) or behind the pipe's lock, taken for each page and
/// never across a store call.
pub(crate) trait TableAccess {
    /// Runs `f` on the table.
    fn with<R>(&mut self, f: impl FnOnce(&mut ChecksumTable) -> R) -> R;
}

impl TableAccess for &mut ChecksumTable {
    fn with<R>(&mut self, f: impl FnOnce(&mut ChecksumTable) -> R) -> R {
        f(self)
    }
}

impl TableAccess for &crate::sync::Mutex<ChecksumTable> {
    fn with<R>(&mut self, f: impl FnOnce(&mut ChecksumTable) -> R) -> R {
        f(&mut self.lock())
    }
}

/// Writes every page of `table` dirty for `slot` into that slot of `journal` (not synced).
/// The caller keeps the entries from changing meanwhile (it holds the data turn, so no batch
/// is written in place).
pub(crate) fn write_slot<S: ChunkStore>(
    mut table: impl TableAccess,
    journal: &S,
    journal_bytes: u64,
    slot: usize,
) -> Result<SlotWritten, StoreError> {
    let written = table.with(|t| SlotWritten {
        digest: t.digest(),
        chunks: t.len(),
    });
    let mut page = [0u8; TABLE_PAGE_BYTES as usize];
    let mut next = 0;
    loop {
        let dirty = table.with(|t| {
            let p = t.next_dirty(slot, next)?;
            t.take_page(slot, p, &mut page);
            Some(p)
        });
        let Some(at) = dirty else {
            return Ok(written);
        };
        journal.write_at(format::table_page_offset(journal_bytes, at, slot), &[&page])?;
        next = at + 1;
    }
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::*;
    use crate::{Epoch, MemStore};

    fn superblock(seq: u64, data_chunks: u64, digest: TableDigest) -> Superblock {
        Superblock {
            id: 1,
            seq,
            lap: 2,
            checkpoint: Epoch::NONE,
            chunk_size: 64,
            max_record_chunks: 4,
            journal_bytes: 8192,
            records_at: 1024,
            data_chunks,
            table: Some(digest),
        }
    }

    #[test]
    fn a_slot_written_at_a_checkpoint_loads_back_and_damage_is_found() {
        let journal = MemStore::new();
        journal
            .grow(format::journal_len(8192, Some(3000)).unwrap())
            .unwrap();
        let mut zeros = [0u8; 64];
        let mut table = ChecksumTable::zeroed(3000, &mut zeros).unwrap();
        table.set(5, chunk_crc(&[1; 64]));
        table.set(2500, chunk_crc(&[2; 64]));
        let lock = crate::sync::Mutex::new(table);
        let written = write_slot(&lock, &journal, 8192, 1).unwrap();
        assert_eq!(written.chunks, 3000);
        let sb = superblock(3, written.chunks, written.digest);
        let loaded = ChecksumTable::load(&journal, &sb, 3100, &mut zeros).unwrap();
        assert!(loaded.matches(5, chunk_crc(&[1; 64])));
        assert!(loaded.matches(2500, chunk_crc(&[2; 64])));
        assert!(loaded.matches(3099, chunk_crc(&[0; 64])), "grown: zeros");
        assert!(!loaded.matches(5, chunk_crc(&[0; 64])));

        // Only the pages that changed were written; the other slot was never touched.
        let untouched = superblock(4, written.chunks, written.digest);
        assert!(matches!(
            ChecksumTable::load(&journal, &untouched, 3000, &mut zeros),
            Err(Error::Corrupt(_))
        ));
        // A flipped bit in the slot is found by the digest.
        let at = format::table_page_offset(8192, 2, 1) + 4 * (2500 % 1024);
        journal.write_at(at, &[&[0xFF]]).unwrap();
        assert!(matches!(
            ChecksumTable::load(&journal, &sb, 3000, &mut zeros),
            Err(Error::Corrupt(Damage {
                file: StoreRole::Journal,
                ..
            }))
        ));
    }

    #[test]
    fn a_second_checkpoint_writes_only_what_changed_since_its_slot_was_written() {
        let journal = MemStore::new();
        journal
            .grow(format::journal_len(8192, Some(4096)).unwrap())
            .unwrap();
        let mut zeros = [0u8; 64];
        let mut table = ChecksumTable::zeroed(4096, &mut zeros).unwrap();
        table.set(1, 7);
        write_slot(&mut table, &journal, 8192, 0).unwrap();
        table.set(3000, 9);
        assert_eq!(table.next_dirty(0, 0), Some(2));
        assert_eq!(table.next_dirty(1, 0), Some(0), "slot 1 still owes page 0");
        write_slot(&mut table, &journal, 8192, 1).unwrap();
        assert_eq!(table.next_dirty(1, 0), None);
    }
}
