//! [`PosixFiles`]: the harness over real files that every POSIX backend shares.

use std::path::PathBuf;

use chunkpipe_core::{Config, Error, Journal};
use chunkpipe_posix::{FileStore, Platform, journal_path, meta_path};

use crate::{FileHarness, Harness, TestPipe, in_mode, start};

/// A data file (and its journal) in a fresh temp dir, opened through platform `P`'s store.
pub struct PosixFiles<P> {
    _dir: tempfile::TempDir,
    path: PathBuf,
    mode: Journal,
    _platform: std::marker::PhantomData<fn() -> P>,
}

impl<P: Platform> PosixFiles<P> {
    /// A harness in durability mode `mode`.
    ///
    /// # Panics
    /// If no temp dir can be created.
    pub fn new(mode: Journal) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("data");
        PosixFiles {
            _dir: dir,
            path,
            mode,
            _platform: std::marker::PhantomData,
        }
    }
}

impl<P: Platform> Harness for PosixFiles<P> {
    type Store = FileStore<P>;

    fn open(&self, config: Config) -> Result<TestPipe<Self::Store>, Error> {
        let config = in_mode(config, self.mode);
        let data = FileStore::open_for(&self.path, &config)?;
        // As `chunkpipe_posix::open` does: journal appends go direct where the platform can.
        start(
            data,
            || FileStore::open_direct(&journal_path(&self.path)),
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
            .expect("the data file exists");
        file.write_all(&vec![1u8; bytes]).expect("append");
    }

    fn journal_image(&self) -> Vec<u8> {
        std::fs::read(journal_path(&self.path)).unwrap_or_default()
    }

    fn patch_journal(&self, offset: u64, bytes: &[u8]) {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(journal_path(&self.path))
            .expect("the journal exists");
        file.write_all_at(bytes, offset).expect("patch");
        file.sync_data().expect("sync");
    }
}

impl<P: Platform> FileHarness for PosixFiles<P> {
    fn open_again(&self) -> Result<(), Error> {
        FileStore::<P>::open(&self.path).map(drop)
    }

    fn replace_meta(&self, bytes: &[u8]) {
        std::fs::write(meta_path(&self.path), bytes).expect("write meta");
    }
}
