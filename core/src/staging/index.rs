//! The chunk index: for each chunk that has a staged write, the slot holding its newest value.
//!
//! Readers consult it to prefer staged bytes over the store, so they see writes as soon as they
//! join a batch and never see a chunk a step is overwriting in place. An open-addressing
//! table with linear probing and backward-shift deletion, at most half full (it has two entries
//! per staging slot), in memory carved from the staging buffer.

use super::NO_SLOT;
use super::memory::Region;
use super::records::IndexEntry;

/// Chunk → newest staged slot.
pub(crate) struct ChunkIndex<'a> {
    entries: Region<'a, IndexEntry>,
    len: usize,
}

impl<'a> ChunkIndex<'a> {
    /// An empty index over `entries`, whose length must be a power of two.
    pub(crate) fn new(mut entries: Region<'a, IndexEntry>) -> Self {
        assert!(
            entries.len().is_power_of_two(),
            "index size must be a power of two"
        );
        entries.fill(IndexEntry::EMPTY);
        ChunkIndex { entries, len: 0 }
    }

    /// Whether no chunk is staged.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn mask(&self) -> usize {
        self.entries.len() - 1
    }

    fn home(&self, chunk: u64) -> usize {
        // Fibonacci hashing: sequential chunk numbers spread over the table.
        (chunk.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20) as usize & self.mask()
    }

    /// Position of `chunk`, or of the empty entry where it would go.
    fn probe(&self, chunk: u64) -> usize {
        let mut at = self.home(chunk);
        loop {
            let entry = self.entries[at];
            if entry.slot == NO_SLOT || entry.chunk == chunk {
                return at;
            }
            at = (at + 1) & self.mask();
        }
    }

    /// The newest staged slot of `chunk`.
    pub(crate) fn get(&self, chunk: u64) -> Option<u32> {
        let slot = self.entries[self.probe(chunk)].slot;
        (slot != NO_SLOT).then_some(slot)
    }

    /// Calls `f(chunk, slot)` for every staged chunk in `start..start + count`: by probing each
    /// chunk of a short range, or by scanning the table when the range is longer than it.
    pub(crate) fn for_each_in(&self, start: u64, count: u64, mut f: impl FnMut(u64, u32)) {
        if count <= self.entries.len() as u64 {
            for chunk in start..start + count {
                if let Some(slot) = self.get(chunk) {
                    f(chunk, slot);
                }
            }
        } else {
            let range = start..start + count;
            for entry in self.entries.iter().filter(|e| e.slot != NO_SLOT) {
                if range.contains(&entry.chunk) {
                    f(entry.chunk, entry.slot);
                }
            }
        }
    }

    /// Makes `slot` the newest staged slot of `chunk`.
    pub(crate) fn insert(&mut self, chunk: u64, slot: u32) {
        let at = self.probe(chunk);
        if self.entries[at].slot == NO_SLOT {
            assert!(
                self.len < self.entries.len() / 2,
                "chunk index over half full"
            );
            self.len += 1;
        }
        self.entries[at] = IndexEntry::new(chunk, slot);
    }

    /// Removes `chunk` if its newest slot is still `slot` (a newer write keeps its entry).
    pub(crate) fn remove_if(&mut self, chunk: u64, slot: u32) {
        let mut hole = self.probe(chunk);
        if self.entries[hole].slot != slot || self.entries[hole].chunk != chunk {
            return;
        }
        self.len -= 1;
        // Backward-shift deletion: pull later entries of the probe run into the hole when their
        // home position does not lie strictly between the hole and them.
        let mut at = hole;
        loop {
            at = (at + 1) & self.mask();
            let entry = self.entries[at];
            if entry.slot == NO_SLOT {
                break;
            }
            let home = self.home(entry.chunk);
            let distance_to_home = at.wrapping_sub(home) & self.mask();
            let distance_to_hole = at.wrapping_sub(hole) & self.mask();
            if distance_to_home >= distance_to_hole {
                self.entries[hole] = entry;
                hole = at;
            }
        }
        self.entries[hole] = IndexEntry::EMPTY;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::{vec, vec::Vec};

    /// Runs a deterministic mix of inserts and removals against a HashMap model.
    #[test]
    fn behaves_like_a_map_under_churn() {
        let mut memory = vec![IndexEntry::EMPTY; 64];
        let mut index = ChunkIndex::new(Region::from(&mut memory[..]));
        let mut model: HashMap<u64, u32> = HashMap::new();
        let mut x: u64 = 12345;
        let steps = if cfg!(miri) { 300 } else { 20_000u32 };
        for step in 0..steps {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Few distinct chunks, some colliding by construction (multiples of 2^44 share homes).
            let chunk = (x % 40) << if x & 1 == 0 { 0 } else { 44 };
            if x % 3 == 0 || model.len() >= 31 {
                if let Some(&slot) = model.get(&chunk) {
                    let removed_slot = if x % 5 == 0 { slot + 1 } else { slot };
                    index.remove_if(chunk, removed_slot);
                    if removed_slot == slot {
                        model.remove(&chunk);
                    }
                }
            } else {
                index.insert(chunk, step);
                model.insert(chunk, step);
            }
            assert_eq!(index.is_empty(), model.is_empty());
            assert_eq!(index.get(chunk), model.get(&chunk).copied(), "step {step}");
            let (mut short, mut long) = (Vec::new(), Vec::new());
            index.for_each_in(0, 40, |c, s| short.push((c, s)));
            index.for_each_in(0, 1 << 50, |c, s| long.push((c, s)));
            let mut expected: Vec<(u64, u32)> = model.iter().map(|(&c, &s)| (c, s)).collect();
            let mut low: Vec<(u64, u32)> =
                expected.iter().copied().filter(|&(c, _)| c < 40).collect();
            expected.sort_unstable();
            low.sort_unstable();
            long.sort_unstable();
            assert_eq!((short, long), (low, expected));
            for (&c, &s) in &model {
                assert_eq!(index.get(c), Some(s), "step {step}, chunk {c}");
            }
        }
    }
}
