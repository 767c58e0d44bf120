//! The 16-byte records staging memory holds besides the slot bytes: one [`SlotRecord`] per slot,
//! the [`PlanEntry`]s of the batch plans and the [`IndexEntry`]s of the chunk index.
//!
//! Each is `#[repr(C)]` integers without padding, so any bit pattern is a valid value: carving
//! them out of raw staging memory (`memory.rs`) relies on that.

use super::NO_SLOT;

/// A slot's bookkeeping: the chunk it holds, its link in the free list or a transaction's list,
/// and its state (`FREE` … `RETIRED`, see the module docs of `staging`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub(crate) struct SlotRecord {
    pub(super) chunk: u64,
    pub(super) next: u32,
    pub(super) state: u32,
}

/// One write in a batch plan: which chunk, which slot holds its bytes, and a tag.
///
/// The tag is the write's place in the batch until
/// [`SealedBatch::prepare_write`](super::SealedBatch::prepare_write) has ordered it (later writes
/// to the same chunk win); from then on it is free, and a journal append keeps the CRC-32C of
/// the write's bytes there for the checksum table. One field for both keeps a plan entry at 16
/// bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PlanEntry {
    pub(super) chunk: u64,
    pub(super) slot: u32,
    pub(super) tag: u32,
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
