//! The conformance suite on the core's RAM store, shared across reopens, in both modes and in
//! two memory configurations:
//!
//! - **allocated**: growable stores (`MemStore::new`) and staging the pipe allocates;
//! - **lent** (the no-allocator configuration): stores in lent buffers (`MemStore::resume` over
//!   zeroed memory, the variant a `no_std` build without `alloc` has) and staging lent to the
//!   pipe (`StagingMemory::new`). The core allocates nothing there; the harness leaks the
//!   `'static` buffers it lends (one set per test; untouched pages stay unmapped).

use std::sync::Arc;

use chunkpipe_core::{ChunkStore, Config, Error, Journal, MemStore};
use chunkpipe_tests::{
    CreationMark, Harness, TEST_JOURNAL_BYTES, TestPipe, in_mode, start, start_lent, store_image,
};

/// Room for the largest store the suite grows to, for lent stores.
const DATA_CAPACITY: usize = 4 << 20;

/// Who provides the memory.
#[derive(Clone, Copy)]
enum Memory {
    Allocated,
    Lent,
}

struct RamStores {
    data: Arc<MemStore<'static>>,
    journal: Arc<MemStore<'static>>,
    mode: Journal,
    memory: Memory,
    created: CreationMark,
}

/// Zeroed memory lent for the rest of the process.
fn lend(bytes: usize) -> &'static mut [u8] {
    Box::leak(vec![0u8; bytes].into_boxed_slice())
}

impl RamStores {
    fn new(mode: Journal, memory: Memory) -> Self {
        let store = |bytes| match memory {
            Memory::Allocated => Arc::new(MemStore::new()),
            Memory::Lent => Arc::new(MemStore::resume(lend(bytes), 0).expect("empty store")),
        };
        RamStores {
            data: store(DATA_CAPACITY),
            journal: store(TEST_JOURNAL_BYTES as usize),
            mode,
            memory,
            created: CreationMark::default(),
        }
    }
}

impl Harness for RamStores {
    type Store = Arc<MemStore<'static>>;

    fn open(&self, config: Config) -> Result<TestPipe<Self::Store>, Error> {
        let config = self.created.config(in_mode(config, self.mode));
        let (data, journal) = (Arc::clone(&self.data), || Ok(Arc::clone(&self.journal)));
        self.created.note(match self.memory {
            Memory::Allocated => start(data, journal, config),
            Memory::Lent => {
                // As without an allocator: no chunk checksum table.
                let config = config.with_chunk_checksums(false);
                let staging = lend(config.staging_memory_bytes());
                start_lent(data, journal, config, staging)
            }
        })
    }

    fn mode(&self) -> Journal {
        self.mode
    }

    fn append_raw(&self, bytes: usize) {
        self.data
            .grow(self.data.len().unwrap() + bytes as u64)
            .unwrap();
    }

    fn journal_image(&self) -> Vec<u8> {
        store_image(&self.journal)
    }

    fn patch_journal(&self, offset: u64, bytes: &[u8]) {
        self.journal.write_at(offset, &[bytes]).unwrap();
    }

    fn data_image(&self) -> Vec<u8> {
        store_image(&self.data)
    }

    fn patch_data(&self, offset: u64, bytes: &[u8]) {
        self.data.write_at(offset, &[bytes]).unwrap();
    }
}

mod atomic {
    use super::*;
    chunkpipe_tests::conformance!(RamStores::new(Journal::Atomic, Memory::Allocated));
    chunkpipe_tests::conformance!(RamStores::new(Journal::Atomic, Memory::Allocated), journal);
}

mod off {
    use super::*;
    chunkpipe_tests::conformance!(RamStores::new(Journal::Off, Memory::Allocated));
}

mod lent_atomic {
    use super::*;
    chunkpipe_tests::conformance!(RamStores::new(Journal::Atomic, Memory::Lent));
    chunkpipe_tests::conformance!(RamStores::new(Journal::Atomic, Memory::Lent), journal);
}

mod lent_off {
    use super::*;
    chunkpipe_tests::conformance!(RamStores::new(Journal::Off, Memory::Lent));
}
