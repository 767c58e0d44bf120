//! The `<path>.meta` file: read and checked on every open, written durably as the last step of
//! creating a pipe, and rewritten when the data file grows.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chunkpipe_core::{Error, META_MAX_BYTES, Meta, Op, StoreError, StoreErrorKind, StoreRole};

use crate::Platform;
use crate::durability::Durability;

/// The metadata path of the data file at `path`.
pub fn meta_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".meta");
    PathBuf::from(name)
}

/// The metadata of the data file at `path`: `None` when there is none (no pipe there).
///
/// # Errors
/// [`Error::Mismatch`] for another format version, [`Error::Corrupt`] for a record that does not
/// parse, an OS error.
pub fn read_meta(path: &Path) -> Result<Option<Meta>, Error> {
    match std::fs::read(meta_path(path)) {
        Ok(bytes) => Meta::decode(&bytes).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(Op::Open, &e)),
    }
}

/// A data file's metadata, kept up to date with its length: once armed (the pipe exists), each
/// grow of the data file rewrites it durably before the grow returns.
#[derive(Debug)]
pub(crate) struct MetaFile {
    path: PathBuf,
    meta: Mutex<Meta>,
    armed: AtomicBool,
    /// The data file's: its syncs are made (and counted) the same way.
    durability: Arc<Durability>,
}

impl MetaFile {
    /// The record of the data file at `data_path`, synced as `durability` says; `armed` when
    /// it exists already.
    pub(crate) fn new(
        data_path: &Path,
        meta: Meta,
        armed: bool,
        durability: Arc<Durability>,
    ) -> Self {
        MetaFile {
            path: meta_path(data_path),
            meta: Mutex::new(meta),
            armed: AtomicBool::new(armed),
            durability,
        }
    }

    /// Writes the record for a data file of `len_chunks` chunks (the last step of creating a
    /// pipe) and arms it.
    pub(crate) fn create<P: Platform>(&self, len_chunks: u64) -> Result<(), Error> {
        self.write::<P>(len_chunks)?;
        self.armed.store(true, Ordering::Release);
        Ok(())
    }

    /// The data file is now `len_bytes` long: rewrites the record if it is armed and records
    /// less.
    pub(crate) fn grown<P: Platform>(&self, len_bytes: u64) -> Result<(), StoreError> {
        if !self.armed.load(Ordering::Acquire) {
            return Ok(());
        }
        let (recorded, chunk) = {
            let meta = self.lock();
            (meta.len_chunks, u64::from(meta.chunk_size).max(1))
        };
        let len_chunks = len_bytes / chunk;
        if len_chunks <= recorded {
            return Ok(());
        }
        self.write::<P>(len_chunks).map_err(|e| match e {
            Error::Store(e) => StoreError { op: Op::Grow, ..e },
            _ => StoreError::new(StoreErrorKind::Other, Op::Grow),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Meta> {
        self.meta
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes the record to a temporary file, syncs it, renames it into place and syncs the
    /// directory, so a crash leaves the old record or the new one, whole.
    fn write<P: Platform>(&self, len_chunks: u64) -> Result<(), Error> {
        let mut meta = self.lock();
        let next = Meta {
            len_chunks,
            ..*meta
        };
        let mut record = [0u8; META_MAX_BYTES];
        let len = next.encode(&mut record);
        let mut temp_name = self.path.as_os_str().to_owned();
        temp_name.push(".tmp");
        let temp = PathBuf::from(temp_name);
        let mut file = std::fs::File::create(&temp).map_err(|e| io_error(Op::Write, &e))?;
        file.write_all(&record[..len])
            .map_err(|e| io_error(Op::Write, &e))?;
        self.durability.sync::<P>(rustix::fd::AsFd::as_fd(&file))?;
        std::fs::rename(&temp, &self.path).map_err(|e| io_error(Op::Write, &e))?;
        self.durability.sync_parent_dir::<P>(&self.path)?;
        *meta = next;
        Ok(())
    }
}

/// An error of the `.meta` file.
fn io_error(op: Op, e: &std::io::Error) -> Error {
    let error = match e.raw_os_error() {
        Some(code) => crate::store_error(op, rustix::io::Errno::from_raw_os_error(code)),
        None => StoreError::new(StoreErrorKind::Io, op),
    };
    Error::Store(error.in_file(StoreRole::Meta))
}
