//! The staging pool: fixed-size chunk slots in memory the caller hands in.
//!
//! Every write is copied into staging slots before it joins a batch, and its slots are released
//! only after the batch is durable (or failed) and no reader can still need them. The pool is
//! the pipe's backpressure: when no slot is free, `try_write` says `WouldBlock`.
//!
//! # Memory
//! One byte buffer holds everything ([`StagingLayout`] gives its size):
//!
//! | region | size |
//! |---|---|
//! | slot bytes | `slots × chunk_size` |
//! | journal record header buffer | `header_block_bytes(slots)` (≈ 8 × slots) |
//! | scratch chunk (recovery, formatting) | `chunk_size` |
//! | slot records (chunk, list link, state) | `slots × 16` |
//! | four batch plans (open, committing, two published ones being written in place) | `4 × slots × 16` |
//! | chunk index (open addressing, load ≤ ½) | `next_pow2(2 × slots) × 16` |
//! | alignment slack | 7 |
//!
//! # Safety
//! This is the only module of the core with `unsafe` code. It upholds one protocol: every slot is
//! in exactly one state, and the state decides who may touch the slot's bytes.
//!
//! | state | bytes written by | bytes read by |
//! |---|---|---|
//! | `FREE` | nobody | nobody |
//! | `HELD` | [`SlotPool::fill`], under the core lock (`&mut SlotPool`) | nobody |
//! | `OPEN`, `RETIRED` | nobody | readers under the core lock (`&SlotPool`) |
//! | `SEALED` | nobody | the same, plus the holder of the [`SealedBatch`], without the lock |
//!
//! Writes go through a raw pointer to one slot and never form a reference to the whole buffer,
//! so they do not alias slices of other slots held by the flusher. A slot leaves `SEALED` only in
//! [`SlotPool::retire`], which consumes the `SealedBatch`, so no slice handed out by the batch
//! can outlive that transition. State checks are `assert!`s, not `debug_assert!`s: they are what
//! keeps the safe API sound if the pipe logic above has a bug.

#![allow(unsafe_code)]

use core::marker::PhantomData;
use core::ptr::NonNull;

use crate::index::ChunkIndex;
use crate::{Config, Error};

/// No slot: the end of a slot list, or an empty index entry.
pub(crate) const NO_SLOT: u32 = u32::MAX;

const FREE: u32 = 0;
const HELD: u32 = 1;
const OPEN: u32 = 2;
const SEALED: u32 = 3;
const RETIRED: u32 = 4;

/// One write in a batch plan: which chunk, which slot holds its bytes, and a tag.
///
/// The tag is the write's place in the batch until [`SealedBatch::prepare_write`] has ordered
/// it (later writes to the same chunk win); from then on it is free, and a journal append keeps
/// the CRC-32C of the write's bytes there for the checksum table ([`SealedBatch::set_crc`]).
/// One field for both keeps a plan entry at 16 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PlanEntry {
    chunk: u64,
    slot: u32,
    tag: u32,
}

/// One entry of the chunk index: the newest staged slot of `chunk`, or `NO_SLOT`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct IndexEntry {
    pub(crate) chunk: u64,
    pub(crate) slot: u32,
    pad: u32,
}

impl IndexEntry {
    pub(crate) const EMPTY: IndexEntry = IndexEntry {
        chunk: 0,
        slot: NO_SLOT,
        pad: 0,
    };

    pub(crate) fn new(chunk: u64, slot: u32) -> Self {
        IndexEntry {
            chunk,
            slot,
            pad: 0,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct SlotRecord {
    chunk: u64,
    next: u32,
    state: u32,
}

/// How a staging buffer is divided, for one configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StagingLayout {
    slots: u32,
    chunk_size: usize,
    header_bytes: usize,
    index_entries: usize,
    total_bytes: usize,
}

const RECORD_BYTES: usize = 16;
/// Batch plans: the open batch, the one being committed, and (`Journal::Atomic`) up to two
/// published ones waiting to be written in place meanwhile. With one fewer, a flush step often
/// found no spare plan on a busy 2-core machine (the checkpointer thread not yet scheduled to
/// apply) and had to wait for the apply: W1 at 16 threads measured 1.8× the naive peer with
/// three plans (2.0–2.2× when flush steps applied every batch themselves), 2.2–2.3× with four.
pub(crate) const PLANS: usize = 4;
const ALIGN_SLACK: usize = 7;

impl StagingLayout {
    pub(crate) fn for_config(config: &Config) -> Result<Self, Error> {
        let too_big = Error::InvalidInput("staging memory does not fit in usize");
        let slots = config.staging_chunks as usize;
        let chunk_size = config.chunk_size as usize;
        let index_entries = slots.checked_mul(2).ok_or(too_big)?.next_power_of_two();
        let header_bytes = crate::journal::format::header_block_bytes(slots as u64) as usize;
        let records = slots
            .checked_mul(1 + PLANS)
            .and_then(|r| r.checked_add(index_entries));
        let total_bytes = slots
            .checked_mul(chunk_size)
            .and_then(|d| d.checked_add(header_bytes)?.checked_add(chunk_size))
            .zip(records.and_then(|r| r.checked_mul(RECORD_BYTES)))
            .and_then(|(data, books)| data.checked_add(books)?.checked_add(ALIGN_SLACK))
            .ok_or(too_big)?;
        Ok(StagingLayout {
            slots: config.staging_chunks,
            chunk_size,
            header_bytes,
            index_entries,
            total_bytes,
        })
    }

    /// Bytes of staging memory this layout needs.
    pub(crate) fn total_bytes(&self) -> usize {
        self.total_bytes
    }
}

/// Memory for a pipe's staging pool: a buffer the caller lends, or (with `alloc`) one the pipe
/// owns. [`Config::staging_memory_bytes`] says how large it must be.
pub struct StagingMemory<'a> {
    ptr: NonNull<u8>,
    len: usize,
    #[cfg(feature = "alloc")]
    owned_pages: Option<usize>,
    _borrow: PhantomData<&'a mut [u8]>,
}

// SAFETY: a StagingMemory is either a unique borrow of a byte buffer or a unique heap buffer,
// both of which may move to and be shared between threads like `&mut [u8]` / `Box<[u8]>`.
unsafe impl Send for StagingMemory<'_> {}
// SAFETY: as above; `&StagingMemory` gives no access to the bytes.
unsafe impl Sync for StagingMemory<'_> {}

impl<'a> StagingMemory<'a> {
    /// Lends `buf` to a pipe for as long as the pipe lives. No allocator needed.
    pub fn new(buf: &'a mut [u8]) -> Self {
        StagingMemory {
            ptr: NonNull::from(&mut *buf).cast(),
            len: buf.len(),
            #[cfg(feature = "alloc")]
            owned_pages: None,
            _borrow: PhantomData,
        }
    }

    /// Size of the buffer in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A page of allocated staging memory: the allocation unit that gives [`StagingMemory::allocate`]
/// its alignment.
#[cfg(feature = "alloc")]
#[derive(Clone, Copy)]
#[repr(C, align(4096))]
struct Page([u8; PAGE_BYTES]);

#[cfg(feature = "alloc")]
const PAGE_BYTES: usize = 4096;

#[cfg(feature = "alloc")]
impl StagingMemory<'static> {
    /// Allocates `bytes` of zeroed staging memory that the pipe owns and frees.
    ///
    /// The buffer starts on a 4096-byte boundary, so slots of a chunk size that is a multiple
    /// of the device's block size are aligned for direct I/O: a store may then write journal
    /// records straight from staging, bypassing the page cache (`chunkpipe-linux` does, with
    /// `O_DIRECT`). Lent memory gets the same benefit when it is aligned likewise.
    pub fn allocate(bytes: usize) -> Self {
        let pages = bytes.div_ceil(PAGE_BYTES);
        let boxed: alloc::boxed::Box<[Page]> =
            alloc::vec![Page([0; PAGE_BYTES]); pages].into_boxed_slice();
        let raw = alloc::boxed::Box::into_raw(boxed);
        StagingMemory {
            // SAFETY: Box::into_raw never returns null.
            ptr: unsafe { NonNull::new_unchecked(raw.cast::<u8>()) },
            len: bytes,
            owned_pages: Some(pages),
            _borrow: PhantomData,
        }
    }
}

#[cfg(feature = "alloc")]
impl Drop for StagingMemory<'_> {
    fn drop(&mut self) {
        if let Some(pages) = self.owned_pages {
            let raw = core::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr().cast::<Page>(), pages);
            // SAFETY: `raw` is exactly the pointer and length `allocate` got from Box::into_raw,
            // and this is the only place that turns it back into a Box. The pipe that carved the
            // buffer declares its StagingMemory last, so nothing uses the regions after this.
            drop(unsafe { alloc::boxed::Box::from_raw(raw) });
        }
    }
}

impl core::fmt::Debug for StagingMemory<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StagingMemory")
            .field("len", &self.len)
            .finish()
    }
}

/// The regions carved out of a [`StagingMemory`].
pub(crate) struct StagingParts<'a> {
    pub(crate) pool: SlotPool<'a>,
    pub(crate) plans: [Region<'a, PlanEntry>; PLANS],
    pub(crate) index: ChunkIndex<'a>,
    /// The journal record header buffer.
    pub(crate) header: Region<'a, u8>,
    /// One chunk of scratch space.
    pub(crate) scratch: Region<'a, u8>,
}

/// Carves `memory` into the regions `layout` describes.
///
/// The regions borrow the memory for `'a`; an owned memory must outlive every region, which the
/// pipe guarantees by dropping its `StagingMemory` after everything else.
pub(crate) fn carve<'a>(
    memory: &StagingMemory<'a>,
    layout: &StagingLayout,
) -> Result<StagingParts<'a>, Error> {
    if memory.len < layout.total_bytes {
        return Err(Error::InvalidInput(
            "staging memory is smaller than the config needs",
        ));
    }
    let slots = layout.slots as usize;
    let data_bytes = slots * layout.chunk_size;
    let base = memory.ptr.as_ptr();
    // SAFETY: the header buffer and the scratch chunk follow the slot bytes; the layout counted
    // all three before the bookkeeping, so every offset stays inside the buffer. Both regions
    // are bytes (any alignment, any bit pattern) and disjoint from everything else.
    let (header, scratch, after_data) = unsafe {
        let header_at = base.add(data_bytes);
        let scratch_at = header_at.add(layout.header_bytes);
        (
            region::<u8>(header_at, layout.header_bytes),
            region::<u8>(scratch_at, layout.chunk_size),
            scratch_at.add(layout.chunk_size),
        )
    };
    let books = after_data.align_offset(8);
    assert!(
        books <= ALIGN_SLACK,
        "align_offset(8) on a byte pointer is at most 7"
    );
    // SAFETY: the layout reserved ALIGN_SLACK bytes for this padding.
    let mut cursor = unsafe { after_data.add(books) };
    let mut take = |n: usize| -> *mut u8 {
        let at = cursor;
        // SAFETY: the regions taken below add up to ((1 + PLANS) × slots + index_entries)
        // records, exactly what the layout counted after the data and the slack.
        cursor = unsafe { cursor.add(n * RECORD_BYTES) };
        at
    };
    let records = take(slots);
    let plans: [*mut u8; PLANS] = core::array::from_fn(|_| take(slots));
    let index = take(layout.index_entries);
    // SAFETY: each region is 8-aligned (the cursor starts aligned and moves in 16-byte steps),
    // inside the buffer, disjoint from the others and from the slot bytes, and uniquely borrowed
    // for 'a through `memory`. The element types are repr(C) integers with no padding, for
    // which any bit pattern is valid, and every element is written before it is read.
    let (records, plans, index) = unsafe {
        (
            region::<SlotRecord>(records, slots),
            plans.map(|plan| region::<PlanEntry>(plan, slots)),
            region::<IndexEntry>(index, layout.index_entries),
        )
    };
    let arena = SlotArena {
        base: memory.ptr,
        chunk_size: layout.chunk_size,
        _borrow: PhantomData,
    };
    Ok(StagingParts {
        pool: SlotPool::new(arena, records),
        plans,
        index: ChunkIndex::new(index),
        header,
        scratch,
    })
}

/// # Safety
/// `ptr` must be valid, aligned for `T` and unaliased for `len` values of `T` for `'a`, and `T`
/// must be valid for any bit pattern.
unsafe fn region<'a, T>(ptr: *mut u8, len: usize) -> Region<'a, T> {
    Region {
        // SAFETY: the caller passes a valid, so non-null, pointer.
        ptr: unsafe { NonNull::new_unchecked(ptr.cast::<T>()) },
        len,
        _borrow: PhantomData,
    }
}

/// A region carved out of staging memory: `len` values of `T` at `ptr`, uniquely borrowed for
/// `'a`, used through `Deref<Target = [T]>`.
///
/// Why not a `&'a mut [T]`: a pipe that owns its memory frees it in its own drop glue, and a
/// reference stored in a field stays live (and, under the aliasing model Miri checks, protected)
/// for as long as the pipe is an argument of the function dropping it — `drop(pipe)` would free
/// memory under a live `&mut`. A raw pointer makes no such claim; the `&mut [T]` exists only while
/// the region is borrowed.
pub(crate) struct Region<'a, T> {
    ptr: NonNull<T>,
    len: usize,
    _borrow: PhantomData<&'a mut [T]>,
}

// SAFETY: a Region is a unique borrow of `[T]`, which may move between threads when `T: Send`.
unsafe impl<T: Send> Send for Region<'_, T> {}
// SAFETY: `&Region` only gives `&[T]`, shareable when `T: Sync`.
unsafe impl<T: Sync> Sync for Region<'_, T> {}

impl<'a, T> From<&'a mut [T]> for Region<'a, T> {
    fn from(slice: &'a mut [T]) -> Self {
        Region {
            ptr: NonNull::from(&mut *slice).cast(),
            len: slice.len(),
            _borrow: PhantomData,
        }
    }
}

impl<T> core::ops::Deref for Region<'_, T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        // SAFETY: `region`'s caller promised `len` valid values at `ptr`, unaliased for 'a; the
        // shared borrow of `self` keeps every `&mut` from `deref_mut` away meanwhile.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> core::ops::DerefMut for Region<'_, T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; the unique borrow of `self` makes this the only access.
        unsafe { core::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

/// The slot bytes, addressed through a raw pointer so that one slot can be written while slices
/// of other slots are alive.
struct SlotArena<'a> {
    base: NonNull<u8>,
    chunk_size: usize,
    _borrow: PhantomData<&'a mut [u8]>,
}

// SAFETY: the arena is only used through SlotPool and SealedBatch, which follow the slot
// protocol in the module docs; that protocol makes concurrent use from several threads sound.
unsafe impl Send for SlotArena<'_> {}
// SAFETY: as above.
unsafe impl Sync for SlotArena<'_> {}

impl SlotArena<'_> {
    fn slot_ptr(&self, slot: u32) -> *mut u8 {
        // SAFETY: callers pass slots below the pool's slot count, so the offset is inside the
        // data region carved for this arena.
        unsafe { self.base.as_ptr().add(slot as usize * self.chunk_size) }
    }

    /// # Safety
    /// No `&mut` to `slot`'s bytes may be alive (the slot is not `HELD` in a `fill`).
    unsafe fn bytes(&self, slot: u32) -> &[u8] {
        // SAFETY: in bounds (slot_ptr), and the caller rules out concurrent writers.
        unsafe { core::slice::from_raw_parts(self.slot_ptr(slot), self.chunk_size) }
    }
}

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
    fn new(arena: SlotArena<'a>, mut records: Region<'a, SlotRecord>) -> Self {
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
        // the flusher only read OPEN, SEALED or RETIRED slots), and `&mut self` excludes any
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

impl PlanEntry {
    pub(crate) fn new(chunk: u64, slot: u32, order: u32) -> Self {
        PlanEntry {
            chunk,
            slot,
            tag: order,
        }
    }
}

/// A sealed batch, owned by the flusher: its slots cannot change until it is retired, so their
/// bytes can be written out without holding the core lock.
pub(crate) struct SealedBatch<'a> {
    arena: SlotArena<'a>,
    plan: Region<'a, PlanEntry>,
    /// Entries in the batch (live ones first after `prepare_write`).
    len: usize,
    /// Entries still to be written: after `prepare_write`, writes superseded by a later write to
    /// the same chunk are moved past `live`.
    live: usize,
}

impl SealedBatch<'_> {
    /// Entries in the batch, superseded writes included.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Orders the live entries by chunk and drops every write that a later write to the same
    /// chunk in this batch supersedes (last writer wins).
    pub(crate) fn prepare_write(&mut self) {
        let entries = &mut self.plan[..self.len];
        entries.sort_unstable_by_key(|e| (e.chunk, core::cmp::Reverse(e.tag)));
        // Keep the first entry of each chunk (the latest write); move the others to the tail.
        let mut live = 0;
        for i in 0..entries.len() {
            if live == 0 || entries[live - 1].chunk != entries[i].chunk {
                entries.swap(live, i);
                live += 1;
            }
        }
        self.live = live;
    }

    /// Entries to write.
    pub(crate) fn live_len(&self) -> usize {
        self.live
    }

    /// The chunk of live entry `i`.
    pub(crate) fn chunk(&self, i: usize) -> u64 {
        self.plan[..self.live][i].chunk
    }

    /// How many live entries from `i` on, at most `limit`, hold consecutive chunks (at least
    /// one while `i` is live and `limit` is not zero): a run one vectored call can write.
    pub(crate) fn consecutive_run(&self, i: usize, limit: usize) -> usize {
        let rest = self.plan[..self.live].get(i..).unwrap_or(&[]);
        let longest = limit.min(rest.len());
        let mut run = usize::from(longest > 0);
        while run < longest && rest[run - 1].chunk.checked_add(1) == Some(rest[run].chunk) {
            run += 1;
        }
        run
    }

    /// Keeps the CRC-32C of live entry `i`'s bytes with the batch (after `prepare_write`).
    pub(crate) fn set_crc(&mut self, i: usize, crc: u32) {
        self.plan[..self.live][i].tag = crc;
    }

    /// The CRC-32C [`set_crc`](Self::set_crc) kept for live entry `i`.
    pub(crate) fn crc(&self, i: usize) -> u32 {
        self.plan[..self.live][i].tag
    }

    /// The bytes of live entry `i`.
    pub(crate) fn bytes(&self, i: usize) -> &[u8] {
        let slot = self.plan[..self.live][i].slot;
        // SAFETY: every slot in the plan was SEALED by `seal` and stays so until `retire`
        // consumes this batch, which ends this borrow first; sealed slots are never filled.
        unsafe { self.arena.bytes(slot) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn with_parts<R>(config: &Config, f: impl FnOnce(StagingParts<'_>) -> R) -> R {
        let layout = StagingLayout::for_config(config).unwrap();
        let memory = StagingMemory::allocate(layout.total_bytes());
        let parts = carve(&memory, &layout).unwrap();
        f(parts)
    }

    fn open_batch(
        pool: &mut SlotPool<'_>,
        index: &mut ChunkIndex<'_>,
        plan: &mut [PlanEntry],
        writes: &[(u64, u8)],
    ) -> usize {
        for (order, &(chunk, byte)) in writes.iter().enumerate() {
            let data = [byte; 8];
            let slot = pool.take_filled(chunk, &data, false);
            pool.open(slot);
            index.insert(chunk, slot);
            plan[order] = PlanEntry::new(chunk, slot, order as u32);
        }
        writes.len()
    }

    #[test]
    fn allocated_memory_is_page_aligned_for_direct_io() {
        for bytes in [1, 4096, 4097, 1 << 20] {
            let memory = StagingMemory::allocate(bytes);
            assert_eq!(memory.len(), bytes);
            assert_eq!(memory.ptr.as_ptr() as usize % 4096, 0, "{bytes} bytes");
        }
    }

    #[test]
    fn too_small_memory_is_an_error() {
        let config = Config::new().with_chunk_size(8).with_staging_chunks(4);
        let layout = StagingLayout::for_config(&config).unwrap();
        let memory = StagingMemory::allocate(layout.total_bytes() - 1);
        assert!(matches!(
            carve(&memory, &layout),
            Err(Error::InvalidInput(_))
        ));
    }

    #[test]
    fn borrowed_memory_at_an_odd_address_is_carved_aligned() {
        let config = Config::new().with_chunk_size(3).with_staging_chunks(5);
        let layout = StagingLayout::for_config(&config).unwrap();
        let mut bytes = [0u8; 2048];
        let memory = StagingMemory::new(&mut bytes[1..=layout.total_bytes()]);
        let mut parts = carve(&memory, &layout).unwrap();
        let slot = parts.pool.take_filled(9, &[1, 2, 3], false);
        parts.pool.open(slot);
        assert_eq!(parts.pool.staged_bytes(slot), &[1, 2, 3]);
    }

    #[test]
    fn prepare_write_keeps_the_last_write_per_chunk_in_chunk_order() {
        let config = Config::new().with_chunk_size(8).with_staging_chunks(8);
        with_parts(
            &config,
            |StagingParts {
                 mut pool,
                 plans: [mut plan, ..],
                 mut index,
                 ..
             }| {
                let len = open_batch(
                    &mut pool,
                    &mut index,
                    &mut plan,
                    &[(5, 1), (2, 2), (5, 3), (3, 4), (2, 5)],
                );
                let mut batch = pool.seal(plan, len);
                batch.prepare_write();
                let got: Vec<(u64, u8)> = (0..batch.live_len())
                    .map(|i| (batch.chunk(i), batch.bytes(i)[0]))
                    .collect();
                assert_eq!(got, [(2, 5), (3, 4), (5, 3)]);
                assert_eq!(pool.available(), 3);
                pool.retire(batch, &mut index);
                assert_eq!(
                    pool.available(),
                    8,
                    "every slot, superseded ones too, is freed"
                );
            },
        );
    }

    #[test]
    fn retired_slots_wait_only_for_readers_active_at_retirement() {
        let config = Config::new().with_chunk_size(8).with_staging_chunks(4);
        with_parts(
            &config,
            |StagingParts {
                 mut pool,
                 plans: [mut plan_a, mut plan_b, ..],
                 mut index,
                 ..
             }| {
                let first = pool.enter_reader();
                let len = open_batch(&mut pool, &mut index, &mut plan_a, &[(1, 1), (2, 2)]);
                let batch_a = pool.seal(plan_a, len);
                pool.retire(batch_a, &mut index);
                assert_eq!(pool.available(), 2, "the active reader holds batch A");
                let second = pool.enter_reader();
                let len = open_batch(&mut pool, &mut index, &mut plan_b, &[(3, 3), (1, 4)]);
                let batch_b = pool.seal(plan_b, len);
                pool.retire(batch_b, &mut index);
                assert_eq!(pool.available(), 0);
                assert_eq!(
                    pool.exit_reader(first, &mut index),
                    2,
                    "A is free; B waits for the second"
                );
                assert_eq!(
                    index.get(1),
                    Some(3),
                    "chunk 1's newest slot (from B) is still indexed"
                );
                assert_eq!(index.get(2), None, "A's entries left with its slots");
                assert_eq!(pool.exit_reader(second, &mut index), 2);
                assert_eq!(pool.available(), 4);
                assert!(index.is_empty());
            },
        );
    }

    #[test]
    fn reservations_are_all_or_nothing_bookkeeping() {
        let config = Config::new().with_chunk_size(8).with_staging_chunks(4);
        with_parts(&config, |StagingParts { mut pool, .. }| {
            pool.reserve(3);
            assert_eq!(pool.available(), 1);
            let slot = pool.take_filled(0, &[0; 8], true);
            assert_eq!(pool.available(), 1);
            pool.put_back(slot);
            pool.unreserve(2);
            assert_eq!(pool.available(), 4);
        });
    }
}
