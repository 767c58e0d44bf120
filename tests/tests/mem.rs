//! The conformance suite on the core's RAM store, shared across reopens.

use std::sync::Arc;

use chunkpipe_core::{ChunkStore, Config, Error, MemStore, ThreadedPipe};
use chunkpipe_tests::{FaultyStore, Harness, TestPipe, conformance};

#[derive(Default)]
struct Memory {
    store: Arc<MemStore<'static>>,
}

impl Harness for Memory {
    type Store = Arc<MemStore<'static>>;

    fn open(&self, config: Config) -> Result<TestPipe<Self::Store>, Error> {
        ThreadedPipe::start(FaultyStore::new(Arc::clone(&self.store)), config)
    }

    fn append_raw(&self, bytes: usize) {
        self.store
            .grow(self.store.len().unwrap() + bytes as u64)
            .unwrap();
    }
}

conformance!(Memory::default());
