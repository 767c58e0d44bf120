//! The conformance suite on the core's RAM store, shared across reopens, in both modes.

use std::sync::Arc;

use chunkpipe_core::{ChunkStore, Config, Error, Journal, MemStore};
use chunkpipe_tests::{Harness, TestPipe, in_mode, start};

struct Memory {
    data: Arc<MemStore<'static>>,
    journal: Arc<MemStore<'static>>,
    mode: Journal,
}

impl Memory {
    fn new(mode: Journal) -> Self {
        Memory {
            data: Arc::default(),
            journal: Arc::default(),
            mode,
        }
    }
}

impl Harness for Memory {
    type Store = Arc<MemStore<'static>>;

    fn open(&self, config: Config) -> Result<TestPipe<Self::Store>, Error> {
        start(
            Arc::clone(&self.data),
            || Ok(Arc::clone(&self.journal)),
            in_mode(config, self.mode),
        )
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
        let mut image = vec![0; self.journal.len().unwrap() as usize];
        self.journal.read_at(0, &mut [&mut image]).unwrap();
        image
    }

    fn patch_journal(&self, offset: u64, bytes: &[u8]) {
        self.journal.write_at(offset, &[bytes]).unwrap();
    }
}

mod atomic {
    use super::*;
    chunkpipe_tests::conformance!(Memory::new(Journal::Atomic));
    chunkpipe_tests::conformance!(Memory::new(Journal::Atomic), journal);
}

mod off {
    use super::*;
    chunkpipe_tests::conformance!(Memory::new(Journal::Off));
}
