//! [`SlotPool`]: slot states, the free list, reservations and reader grace periods.

use core::marker::PhantomData;

use super::batch::SealedBatch;
use super::index::ChunkIndex;
use super::memory::{Region, SlotArena};
use super::records::{PlanEntry, SlotRecord};
use super::{FREE, HELD, NO_SLOT, OPEN, RETIRED, SEALED};

/// Slot bookkeeping: states, the free list, reservations and reader grace periods. Lives under
/// the core lock.
pub(crate) struct SlotPool<'a> {
    arena: SlotArena<'a>,
    records: Region<'a, SlotRecord>,
    free_head: u32,
    free_count: u32,
    reserved: u32,
    grace: Grace,
}

/// Two-generation grace periods for readers (epoch-based reclamation).
///
/// A reader that reads chunks from the store, outside the lock, could see a batch being written
/// in place. It avoids that by preferring, after its store read, every chunk still present in the
/// index (staging holds the newest value). So a retired slot's index entry must stay until every
/// reader that was active when the slot retired has finished. Readers register in the current
/// generation; slots retired in generation g are freed once generations g-1 and g have drained,
/// which takes two flips. A flip needs only the previous generation to be empty, so a steady
/// stream of new readers cannot hold slots forever.
#[derive(Default)]
struct Grace {
    generation: u32,
    readers: [u32; 2],
    retired_now: u32,
    retired_before: u32,
}

/// A reader's registration in a grace generation.
#[must_use]
pub(crate) struct ReaderTicket(usize);

impl<'a> SlotPool<'a> {
    pub(super) fn new(arena: SlotArena<'a>, mut records: Region<'a, SlotRecord>) -> Self {
        let count = records.len() as u32;
        for (i, record) in records.iter_mut().enumerate() {
            let next = if i + 1 < count as usize {
                i as u32 + 1
            } else {
                NO_SLOT
            };
            *record = SlotRecord {
                chunk: 0,
                next,
                state: FREE,
            };
        }
        let free_head = if count == 0 { NO_SLOT } else { 0 };
        let grace = Grace {
            retired_now: NO_SLOT,
            retired_before: NO_SLOT,
            ..Grace::default()
        };
        SlotPool {
            arena,
            records,
            free_head,
            free_count: count,
            reserved: 0,
            grace,
        }
    }

    /// Free slots not promised to a transaction.
    pub(crate) fn available(&self) -> u32 {
        self.free_count - self.reserved
    }

    /// Promises `n` free slots to a transaction. The caller checked `available() >= n`.
    pub(crate) fn reserve(&mut self, n: u32) {
        assert!(self.available() >= n, "reserve past the free slots");
        self.reserved += n;
    }

    /// Gives back `n` promised slots that were never taken.
    pub(crate) fn unreserve(&mut self, n: u32) {
        assert!(self.reserved >= n, "unreserve more than reserved");
        self.reserved -= n;
    }

    /// Takes one free slot (from a transaction's reservation when `reserved`) and fills it with
    /// `data` for `chunk`. The slot is `HELD` by the caller until it joins a batch or is put back.
    pub(crate) fn take_filled(&mut self, chunk: u64, data: &[u8], reserved: bool) -> u32 {
        if reserved {
            self.unreserve(1);
        }
        assert!(self.available() >= 1, "take from an empty pool");
        let slot = self.free_head;
        self.free_head = self.records[slot as usize].next;
        self.free_count -= 1;
        self.records[slot as usize] = SlotRecord {
            chunk,
            next: NO_SLOT,
            state: HELD,
        };
        self.fill(slot, data);
        slot
    }

    fn fill(&mut self, slot: u32, data: &[u8]) {
        assert_eq!(
            self.records[slot as usize].state, HELD,
            "fill of a slot not held"
        );
        assert_eq!(
            data.len(),
            self.arena.chunk_size,
            "fill with a partial chunk"
        );
        // SAFETY: the slot is in bounds and HELD, so no slice of its bytes exists (readers and
        // the step writing a batch only read OPEN, SEALED or RETIRED slots), and `&mut self` excludes any
        // other fill. The pointer covers exactly one slot, so other slots' slices stay valid.
        unsafe {
            core::ptr::copy_nonoverlapping(data.as_ptr(), self.arena.slot_ptr(slot), data.len());
        }
    }

    /// The chunk a slot was filled for.
    pub(crate) fn chunk_of(&self, slot: u32) -> u64 {
        self.records[slot as usize].chunk
    }

    /// Links `slot` after `prev` in a caller-owned list of `HELD` slots.
    pub(crate) fn link(&mut self, prev: u32, slot: u32) {
        assert_eq!(
            self.records[prev as usize].state, HELD,
            "link from a slot not held"
        );
        self.records[prev as usize].next = slot;
    }

    /// The slot after `slot` in its list.
    pub(crate) fn next(&self, slot: u32) -> u32 {
        self.records[slot as usize].next
    }

    /// Moves a `HELD` slot into the open batch.
    pub(crate) fn open(&mut self, slot: u32) {
        let record = &mut self.records[slot as usize];
        assert_eq!(record.state, HELD, "open of a slot not held");
        record.state = OPEN;
    }

    /// Returns a `HELD` slot to the free list (a transaction dropped before commit).
    pub(crate) fn put_back(&mut self, slot: u32) {
        assert_eq!(
            self.records[slot as usize].state, HELD,
            "put_back of a slot not held"
        );
        self.push_free(slot);
    }

    fn push_free(&mut self, slot: u32) {
        self.records[slot as usize] = SlotRecord {
            chunk: 0,
            next: self.free_head,
            state: FREE,
        };
        self.free_head = slot;
        self.free_count += 1;
    }

    /// The bytes of a staged slot (`OPEN`, `SEALED` or `RETIRED`), for a reader under the lock.
    pub(crate) fn staged_bytes(&self, slot: u32) -> &[u8] {
        let state = self.records[slot as usize].state;
        assert!(
            matches!(state, OPEN | SEALED | RETIRED),
            "read of a slot that is not staged"
        );
        // SAFETY: staged slots are never filled, and `&self` excludes `fill` on any slot.
        unsafe { self.arena.bytes(slot) }
    }

    /// Seals the open batch held in `plan[..len]`: its slots become `SEALED` and readable by the
    /// returned batch outside the lock.
    pub(crate) fn seal(&mut self, plan: Region<'a, PlanEntry>, len: usize) -> SealedBatch<'a> {
        for entry in &plan[..len] {
            let record = &mut self.records[entry.slot as usize];
            assert_eq!(record.state, OPEN, "seal of a slot not in the open batch");
            record.state = SEALED;
        }
        let arena = SlotArena {
            base: self.arena.base,
            chunk_size: self.arena.chunk_size,
            _borrow: PhantomData,
        };
        SealedBatch {
            arena,
            plan,
            len,
            live: len,
        }
    }

    /// Retires a batch that is published or failed: its slots wait out the readers' grace period
    /// and then return to the free list. Gives back the batch's plan memory.
    pub(crate) fn retire(
        &mut self,
        batch: SealedBatch<'a>,
        index: &mut ChunkIndex<'_>,
    ) -> Region<'a, PlanEntry> {
        let SealedBatch { plan, len, .. } = batch;
        for entry in &plan[..len] {
            let record = &mut self.records[entry.slot as usize];
            assert_eq!(record.state, SEALED, "retire of a slot not sealed");
            *record = SlotRecord {
                chunk: record.chunk,
                next: self.grace.retired_now,
                state: RETIRED,
            };
            self.grace.retired_now = entry.slot;
        }
        self.reclaim(index);
        plan
    }

    /// Registers a reader in the current grace generation.
    pub(crate) fn enter_reader(&mut self) -> ReaderTicket {
        let parity = (self.grace.generation & 1) as usize;
        self.grace.readers[parity] += 1;
        ReaderTicket(parity)
    }

    /// Ends a reader's registration; returns how many slots became free.
    pub(crate) fn exit_reader(&mut self, ticket: ReaderTicket, index: &mut ChunkIndex<'_>) -> u32 {
        self.grace.readers[ticket.0] -= 1;
        self.reclaim(index)
    }

    /// Flips grace generations while the previous one has no readers, freeing what waited long
    /// enough. Returns how many slots became free.
    fn reclaim(&mut self, index: &mut ChunkIndex<'_>) -> u32 {
        let mut freed = 0;
        while self.grace.retired_now != NO_SLOT || self.grace.retired_before != NO_SLOT {
            let previous = ((self.grace.generation + 1) & 1) as usize;
            if self.grace.readers[previous] != 0 {
                break;
            }
            let mut slot =
                core::mem::replace(&mut self.grace.retired_before, self.grace.retired_now);
            self.grace.retired_now = NO_SLOT;
            self.grace.generation = self.grace.generation.wrapping_add(1);
            while slot != NO_SLOT {
                let record = self.records[slot as usize];
                index.remove_if(record.chunk, slot);
                self.push_free(slot);
                freed += 1;
                slot = record.next;
            }
        }
        freed
    }
}
