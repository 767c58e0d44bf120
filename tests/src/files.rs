//! [`PosixFiles`]: the harness over real files that every POSIX backend shares.

use std::path::PathBuf;

use chunkpipe_core::{Config, Error, Journal, WeakSyncs};
use chunkpipe_posix::{FileStore, PipeFiles, Platform, journal_path, meta_path};

use crate::{FaultyStore, FileHarness, Harness, TestPipe, in_mode};

/// A data file (and its journal) in a fresh temp dir, opened through platform `P`'s store.
pub struct PosixFiles<P> {
    _dir: tempfile::TempDir,
    path: PathBuf,
    mode: Journal,
    /// The journal is opened with [`FileStore::open_direct`] (else as `chunkpipe_posix::open`
    /// opens it: buffered).
    direct_journal: bool,
    /// What every open allows where the file system refuses the full sync.
    weak_syncs: WeakSyncs,
    _platform: std::marker::PhantomData<fn() -> P>,
}

impl<P: Platform> PosixFiles<P> {
    /// A harness in durability mode `mode`.
    ///
    /// # Panics
    /// If no temp dir can be created.
    pub fn new(mode: Journal) -> Self {
        Self::in_dir(tempfile::tempdir().expect("a temp dir"), mode, false)
    }

    /// A `Journal::Atomic` harness whose journal appends bypass the page cache where the
    /// platform and the file system of `parent` (a real disk, not tmpfs) allow
    /// ([`FileStore::open_direct`]).
    ///
    /// # Panics
    /// If no temp dir can be created in `parent`.
    pub fn with_direct_journal_in(parent: &std::path::Path) -> Self {
        let dir = tempfile::tempdir_in(parent).expect("a temp dir");
        Self::in_dir(dir, Journal::Atomic, true)
    }

    fn in_dir(dir: tempfile::TempDir, mode: Journal, direct_journal: bool) -> Self {
        let path = dir.path().join("data");
        PosixFiles {
            _dir: dir,
            path,
            mode,
            direct_journal,
            weak_syncs: WeakSyncs::Refuse,
            _platform: std::marker::PhantomData,
        }
    }

    /// A harness in durability mode `mode` whose opens allow weak syncs where the platform's
    /// full sync is refused.
    ///
    /// # Panics
    /// If no temp dir can be created.
    pub fn allowing_weak_syncs(mode: Journal) -> Self {
        PosixFiles {
            weak_syncs: WeakSyncs::AllowLosingWritesOnPowerLoss,
            ..Self::new(mode)
        }
    }
}

impl<P: Platform> Harness for PosixFiles<P> {
    type Store = FileStore<P>;

    fn open(&self, config: Config) -> Result<TestPipe<Self::Store>, Error> {
        let config = in_mode(config, self.mode).with_weak_syncs(self.weak_syncs);
        let mut files = PipeFiles::<P>::open(&self.path, &config)?;
        if self.direct_journal {
            files = files.with_direct_journal(&self.path)?;
        }
        files.start_with(|data, journal| {
            let data = FaultyStore::new(data);
            let journal = journal.map(|journal| FaultyStore::beside(journal, &data));
            (data, journal)
        })
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

    fn data_image(&self) -> Vec<u8> {
        std::fs::read(&self.path).unwrap_or_default()
    }

    fn patch_data(&self, offset: u64, bytes: &[u8]) {
        patch(&self.path, offset, bytes);
    }

    fn patch_journal(&self, offset: u64, bytes: &[u8]) {
        patch(&journal_path(&self.path), offset, bytes);
    }
}

/// Overwrites bytes of the file at `path` durably (as damage would).
fn patch(path: &std::path::Path, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("the file exists");
    file.write_all_at(bytes, offset).expect("patch");
    file.sync_data().expect("sync");
}

/// Cuts or extends the file at `path` (as an operator's mistake would).
fn set_len(path: &std::path::Path, len: u64) {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("the file exists");
    file.set_len(len).expect("set_len");
    file.sync_all().expect("sync");
}

impl<P: Platform> FileHarness for PosixFiles<P> {
    fn open_again(&self) -> Result<(), Error> {
        FileStore::<P>::open(&self.path).map(drop)
    }

    fn replace_meta(&self, bytes: &[u8]) {
        std::fs::write(meta_path(&self.path), bytes).expect("write meta");
    }

    fn remove(&self, file: chunkpipe_core::StoreRole) {
        let path = match file {
            chunkpipe_core::StoreRole::Data => self.path.clone(),
            chunkpipe_core::StoreRole::Journal => journal_path(&self.path),
            _ => meta_path(&self.path),
        };
        std::fs::remove_file(path).expect("remove");
    }

    fn set_journal_len(&self, len: u64) {
        set_len(&journal_path(&self.path), len);
    }

    fn set_data_len(&self, len: u64) {
        set_len(&self.path, len);
    }
}
