//! The conformance suite on the simulator's disk: fault-free, under the real threads, in
//! both modes. Every open is a new process after a power loss: what was not synced is gone.

use std::sync::Arc;

use chunkpipe_core::{ChunkStore, Config, Error, Journal};
use chunkpipe_sim::{DATA_FILE, JOURNAL_FILE, SimDisk, SimStore};
use chunkpipe_tests::{CreationMark, Harness, TestPipe, in_mode, start, store_image};

struct SimulatedDisk {
    disk: Arc<SimDisk>,
    mode: Journal,
    created: CreationMark,
}

impl SimulatedDisk {
    fn new(mode: Journal) -> Self {
        SimulatedDisk {
            disk: Arc::new(SimDisk::new(512)),
            mode,
            created: CreationMark::default(),
        }
    }
}

impl Harness for SimulatedDisk {
    type Store = SimStore;

    fn open(&self, config: Config) -> Result<TestPipe<Self::Store>, Error> {
        self.disk.crash();
        self.disk.restart();
        let file = |n| SimStore::file(Arc::clone(&self.disk), n);
        let config = self.created.config(in_mode(config, self.mode));
        self.created
            .note(start(file(DATA_FILE), || Ok(file(JOURNAL_FILE)), config))
    }

    fn mode(&self) -> Journal {
        self.mode
    }

    fn append_raw(&self, bytes: usize) {
        let store = SimStore::file(Arc::clone(&self.disk), DATA_FILE);
        store.grow(store.len().unwrap() + bytes as u64).unwrap();
    }

    fn journal_image(&self) -> Vec<u8> {
        store_image(&SimStore::file(Arc::clone(&self.disk), JOURNAL_FILE))
    }

    fn patch_journal(&self, offset: u64, bytes: &[u8]) {
        patch(
            &SimStore::file(Arc::clone(&self.disk), JOURNAL_FILE),
            offset,
            bytes,
        );
    }

    fn data_image(&self) -> Vec<u8> {
        store_image(&SimStore::file(Arc::clone(&self.disk), DATA_FILE))
    }

    fn patch_data(&self, offset: u64, bytes: &[u8]) {
        patch(
            &SimStore::file(Arc::clone(&self.disk), DATA_FILE),
            offset,
            bytes,
        );
    }
}

fn patch(store: &SimStore, offset: u64, bytes: &[u8]) {
    store.write_at(offset, &[bytes]).unwrap();
    store.sync().unwrap();
}

mod atomic {
    use super::*;
    chunkpipe_tests::conformance!(SimulatedDisk::new(Journal::Atomic));
    chunkpipe_tests::conformance!(SimulatedDisk::new(Journal::Atomic), journal);
}

mod off {
    use super::*;
    chunkpipe_tests::conformance!(SimulatedDisk::new(Journal::Off));
}
