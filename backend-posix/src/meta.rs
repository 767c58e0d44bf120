//! The `<path>.meta` file: checked on every open, written durably when missing.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use chunkpipe_core::{Config, Error, META_MAX_BYTES, Meta, Op, StoreError, StoreErrorKind};

use crate::Platform;
use crate::file::sync_parent_dir;

/// The metadata path of the data file at `path`.
pub fn meta_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".meta");
    PathBuf::from(name)
}

/// Checks the metadata of the data file at `path` (of `len_bytes` bytes) against `config`, or
/// writes it if there is none yet: a new file, or a plain file being adopted. Call with the data
/// file locked.
pub(crate) fn check_or_create<P: Platform>(
    path: &Path,
    len_bytes: u64,
    config: &Config,
) -> Result<(), Error> {
    let meta_path = meta_path(path);
    match std::fs::read(&meta_path) {
        Ok(bytes) => Meta::decode(&bytes)?.check(config),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if len_bytes % u64::from(config.chunk_size) != 0 {
                // Never record metadata for a file that does not fit the config.
                return Err(Error::InvalidInput(
                    "store length is not a multiple of chunk_size",
                ));
            }
            write_durably::<P>(&meta_path, &Meta::for_config(config))
        }
        Err(e) => Err(io_error(Op::Open, &e)),
    }
}

/// Writes the record to a temporary file, syncs it (`sync_all`: `F_FULLFSYNC` on macOS), renames
/// it into place and syncs the directory, so a crash leaves either no metadata or all of it.
fn write_durably<P: Platform>(meta_path: &Path, meta: &Meta) -> Result<(), Error> {
    let mut record = [0u8; META_MAX_BYTES];
    let len = meta.encode(&mut record);
    let mut temp_name = meta_path.as_os_str().to_owned();
    temp_name.push(".tmp");
    let temp = PathBuf::from(temp_name);
    let mut file = std::fs::File::create(&temp).map_err(|e| io_error(Op::Write, &e))?;
    file.write_all(&record[..len])
        .map_err(|e| io_error(Op::Write, &e))?;
    file.sync_all().map_err(|e| io_error(Op::Sync, &e))?;
    std::fs::rename(&temp, meta_path).map_err(|e| io_error(Op::Write, &e))?;
    sync_parent_dir::<P>(meta_path)?;
    Ok(())
}

fn io_error(op: Op, e: &std::io::Error) -> Error {
    match e.raw_os_error() {
        Some(code) => Error::Store(crate::store_error(
            op,
            rustix::io::Errno::from_raw_os_error(code),
        )),
        None => Error::Store(StoreError::new(StoreErrorKind::Io, op)),
    }
}
