//! The conformance suite on real files (Linux backend, in a temp dir), in both durability modes.
#![cfg(target_os = "linux")]

use std::path::PathBuf;

use chunkpipe_core::{Config, Error, Journal};
use chunkpipe_linux::FileStore;
use chunkpipe_tests::{FileHarness, Harness, TestPipe, in_mode, start};

struct LinuxFiles {
    _dir: tempfile::TempDir,
    path: PathBuf,
    mode: Journal,
}

impl LinuxFiles {
    fn new(mode: Journal) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        LinuxFiles {
            _dir: dir,
            path,
            mode,
        }
    }
}

impl Harness for LinuxFiles {
    type Store = FileStore;

    fn open(&self, config: Config) -> Result<TestPipe<Self::Store>, Error> {
        let config = in_mode(config, self.mode);
        let data = FileStore::open_for(&self.path, &config)?;
        start(
            data,
            || FileStore::open(&chunkpipe_posix::journal_path(&self.path)),
            config,
        )
    }

    fn mode(&self) -> Journal {
        self.mode
    }

    fn append_raw(&self, bytes: usize) {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .unwrap();
        file.write_all(&vec![1u8; bytes]).unwrap();
    }

    fn journal_image(&self) -> Vec<u8> {
        std::fs::read(chunkpipe_posix::journal_path(&self.path)).unwrap_or_default()
    }

    fn patch_journal(&self, offset: u64, bytes: &[u8]) {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(chunkpipe_posix::journal_path(&self.path))
            .unwrap();
        file.write_all_at(bytes, offset).unwrap();
        file.sync_data().unwrap();
    }
}

impl FileHarness for LinuxFiles {
    fn open_again(&self) -> Result<(), Error> {
        FileStore::open(&self.path).map(drop)
    }

    fn replace_meta(&self, bytes: &[u8]) {
        std::fs::write(chunkpipe_posix::meta_path(&self.path), bytes).unwrap();
    }
}

mod atomic {
    use super::*;
    chunkpipe_tests::conformance!(LinuxFiles::new(Journal::Atomic), files);
    chunkpipe_tests::conformance!(LinuxFiles::new(Journal::Atomic), journal);
}

mod off {
    use super::*;
    chunkpipe_tests::conformance!(LinuxFiles::new(Journal::Off), files);
}
