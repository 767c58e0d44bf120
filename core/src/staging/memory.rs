//! The staging buffer: who owns it, how it is carved into regions, and the raw slot arena.

use core::marker::PhantomData;
use core::ptr::NonNull;

use super::records::{IndexEntry, PlanEntry, SlotRecord};
use super::{ALIGN_SLACK, PLANS, RECORD_BYTES, StagingLayout};
use crate::Error;

/// Memory for a pipe's staging pool: a buffer the caller lends, or (with `alloc`) one the pipe
/// owns. [`Config::staging_memory_bytes`](crate::Config::staging_memory_bytes) says how large it must be.
pub struct StagingMemory<'a> {
    pub(super) ptr: NonNull<u8>,
    pub(super) len: usize,
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

/// The regions carved out of a [`StagingMemory`], before they are put to use.
pub(super) struct Regions<'a> {
    pub(super) arena: SlotArena<'a>,
    pub(super) records: Region<'a, SlotRecord>,
    pub(super) plans: [Region<'a, PlanEntry>; PLANS],
    pub(super) index: Region<'a, IndexEntry>,
    pub(super) header: Region<'a, u8>,
    pub(super) scratch: Region<'a, u8>,
}

/// Carves `memory` into the regions `layout` describes.
///
/// The regions borrow the memory for `'a`; an owned memory must outlive every region, which the
/// pipe guarantees by dropping its `StagingMemory` after everything else.
pub(super) fn carve<'a>(
    memory: &StagingMemory<'a>,
    layout: &StagingLayout,
) -> Result<Regions<'a>, Error> {
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
    Ok(Regions {
        arena,
        records,
        plans,
        index,
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
pub(super) struct SlotArena<'a> {
    pub(super) base: NonNull<u8>,
    pub(super) chunk_size: usize,
    pub(super) _borrow: PhantomData<&'a mut [u8]>,
}

// SAFETY: the arena is only used through SlotPool and SealedBatch, which follow the slot
// protocol in the module docs; that protocol makes concurrent use from several threads sound.
unsafe impl Send for SlotArena<'_> {}
// SAFETY: as above.
unsafe impl Sync for SlotArena<'_> {}

impl SlotArena<'_> {
    pub(super) fn slot_ptr(&self, slot: u32) -> *mut u8 {
        // SAFETY: callers pass slots below the pool's slot count, so the offset is inside the
        // data region carved for this arena.
        unsafe { self.base.as_ptr().add(slot as usize * self.chunk_size) }
    }

    /// # Safety
    /// No `&mut` to `slot`'s bytes may be alive (the slot is not `HELD` in a `fill`).
    pub(super) unsafe fn bytes(&self, slot: u32) -> &[u8] {
        // SAFETY: in bounds (slot_ptr), and the caller rules out concurrent writers.
        unsafe { core::slice::from_raw_parts(self.slot_ptr(slot), self.chunk_size) }
    }
}
