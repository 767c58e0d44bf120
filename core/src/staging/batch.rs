//! Batch plans and [`SealedBatch`]: a batch the step writing it owns while it is written out.

use super::memory::{Region, SlotArena};
use super::records::PlanEntry;

/// A sealed batch, owned by the step writing it: its slots cannot change until it is retired, so their
/// bytes can be written out without holding the core lock.
pub(crate) struct SealedBatch<'a> {
    pub(super) arena: SlotArena<'a>,
    pub(super) plan: Region<'a, PlanEntry>,
    /// Entries in the batch (live ones first after `prepare_write`).
    pub(super) len: usize,
    /// Entries still to be written: after `prepare_write`, writes superseded by a later write to
    /// the same chunk are moved past `live`.
    pub(super) live: usize,
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
