//! The conformance suite on real files (Linux backend, in a temp dir).
#![cfg(target_os = "linux")]

use std::path::PathBuf;

use chunkpipe_core::{Config, Error, ThreadedPipe};
use chunkpipe_tests::{FaultyStore, FileHarness, Harness, TestPipe, conformance};

struct LinuxFiles {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl LinuxFiles {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        LinuxFiles { _dir: dir, path }
    }
}

impl Harness for LinuxFiles {
    type Store = chunkpipe_linux::FileStore;

    fn open(&self, config: Config) -> Result<TestPipe<Self::Store>, Error> {
        config.validate()?;
        let store = chunkpipe_linux::FileStore::open_for(&self.path, &config)?;
        ThreadedPipe::start(FaultyStore::new(store), config)
    }

    fn append_raw(&self, bytes: usize) {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .unwrap();
        file.write_all(&vec![1u8; bytes]).unwrap();
    }
}

impl FileHarness for LinuxFiles {
    fn open_again(&self) -> Result<(), Error> {
        chunkpipe_linux::FileStore::open(&self.path).map(drop)
    }

    fn replace_meta(&self, bytes: &[u8]) {
        std::fs::write(chunkpipe_posix::meta_path(&self.path), bytes).unwrap();
    }
}

conformance!(LinuxFiles::new(), files);
