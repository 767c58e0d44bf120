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
//! so they do not alias slices of other slots held by the step writing a batch. A slot leaves `SEALED` only in
//! [`SlotPool::retire`], which consumes the `SealedBatch`, so no slice handed out by the batch
//! can outlive that transition. State checks are `assert!`s, not `debug_assert!`s: they are what
//! keeps the safe API sound if the pipe logic above has a bug.
#![allow(unsafe_code)]

mod batch;
mod index;
mod memory;
mod pool;
mod records;
#[cfg(test)]
mod tests;

pub(crate) use batch::SealedBatch;
pub(crate) use index::ChunkIndex;
pub(crate) use memory::Region;
pub use memory::StagingMemory;
pub(crate) use pool::SlotPool;
pub(crate) use records::PlanEntry;

use crate::{Config, Error};

/// No slot: the end of a slot list, or an empty index entry.
pub(crate) const NO_SLOT: u32 = u32::MAX;

pub(super) const FREE: u32 = 0;
pub(super) const HELD: u32 = 1;
pub(super) const OPEN: u32 = 2;
pub(super) const SEALED: u32 = 3;
pub(super) const RETIRED: u32 = 4;

/// How a staging buffer is divided, for one configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StagingLayout {
    pub(super) slots: u32,
    pub(super) chunk_size: usize,
    pub(super) header_bytes: usize,
    pub(super) index_entries: usize,
    pub(super) total_bytes: usize,
}

pub(super) const RECORD_BYTES: usize = 16;
/// Batch plans: the open batch, the one being committed, and (`Journal::Atomic`) up to two
/// published ones waiting to be written in place meanwhile, so that a commit rarely has to
/// write them in place itself because the background step has not run yet.
pub(crate) const PLANS: usize = 4;
pub(super) const ALIGN_SLACK: usize = 7;

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

/// The staging memory put to use: the pool, the batch plans, the chunk index and two buffers.
pub(crate) struct StagingParts<'a> {
    pub(crate) pool: SlotPool<'a>,
    pub(crate) plans: [Region<'a, PlanEntry>; PLANS],
    pub(crate) index: ChunkIndex<'a>,
    /// The journal record header buffer.
    pub(crate) header: Region<'a, u8>,
    /// One chunk of scratch space.
    pub(crate) scratch: Region<'a, u8>,
}

/// Carves `memory` as `layout` says and builds the pool and the index over it.
pub(crate) fn carve<'a>(
    memory: &StagingMemory<'a>,
    layout: &StagingLayout,
) -> Result<StagingParts<'a>, Error> {
    let regions = memory::carve(memory, layout)?;
    Ok(StagingParts {
        pool: SlotPool::new(regions.arena, regions.records),
        plans: regions.plans,
        index: ChunkIndex::new(regions.index),
        header: regions.header,
        scratch: regions.scratch,
    })
}
