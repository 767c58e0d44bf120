//! The conformance suite on the simulator's disk: fault-free, under the real flusher thread.

use std::sync::Arc;

use chunkpipe_core::{ChunkStore, Config, Error, ThreadedPipe};
use chunkpipe_sim::{SimDisk, SimStore};
use chunkpipe_tests::{FaultyStore, Harness, TestPipe, conformance};

struct SimulatedDisk {
    disk: Arc<SimDisk>,
}

impl SimulatedDisk {
    fn new() -> Self {
        SimulatedDisk {
            disk: Arc::new(SimDisk::new(512)),
        }
    }
}

impl Harness for SimulatedDisk {
    type Store = SimStore;

    fn open(&self, config: Config) -> Result<TestPipe<Self::Store>, Error> {
        // Each open is a new process on the same disk: what was not synced is gone.
        self.disk.crash();
        self.disk.restart();
        ThreadedPipe::start(
            FaultyStore::new(SimStore::new(Arc::clone(&self.disk))),
            config,
        )
    }

    fn append_raw(&self, bytes: usize) {
        let store = SimStore::new(Arc::clone(&self.disk));
        store.grow(store.len().unwrap() + bytes as u64).unwrap();
    }
}

conformance!(SimulatedDisk::new());
