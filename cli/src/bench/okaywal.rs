//! The okaywal 0.3.1 peer (cargo feature `okaywal`): a group-committing write-ahead log in which
//! each writer appends its entry and the thread that finds no sync running syncs for everyone.
//!
//! An entry holds one okaywal chunk per chunk written: the chunk index (8 bytes, little endian)
//! and the chunk's bytes. W1 commits one such entry of one chunk, W4 one of four. Two forms:
//!
//! - **okaywal**: its checkpointer drops the entries it is handed — the commit path alone, less
//!   work than chunkpipe does.
//! - **okaywal-applied**: its checkpointer writes each chunk at its index in the data file and
//!   syncs it before okaywal recycles the segment — the work chunkpipe's `Journal::Atomic` does.
//!
//! Reads are not part of okaywal (it has no index by chunk): only W1 and W4 rows run it.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use okaywal::{Entry, EntryId, LogManager, SegmentReader, WriteAheadLog};

use super::targets::Target;

/// An okaywal log in its own directory, with or without a data file its checkpoints write.
pub struct OkayWal {
    log: WriteAheadLog,
    chunk_size: usize,
}

impl OkayWal {
    /// Opens a fresh log in `wal_dir` (removed first); `data` (the prepared data file) makes it
    /// the applied form.
    pub fn open(wal_dir: &Path, data: Option<&Path>, chunk_size: u32) -> Result<Self, String> {
        let _ = std::fs::remove_dir_all(wal_dir);
        let log = match data {
            Some(path) => {
                let file = File::options()
                    .write(true)
                    .open(path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                WriteAheadLog::recover(
                    wal_dir,
                    Applier {
                        file,
                        chunk_size: u64::from(chunk_size),
                    },
                )
            }
            None => WriteAheadLog::recover(wal_dir, Dropper),
        };
        Ok(OkayWal {
            log: log.map_err(|e| format!("okaywal: {e}"))?,
            chunk_size: chunk_size as usize,
        })
    }

    /// Commits one entry holding one chunk of `data` at each of `indexes`.
    fn commit(&self, indexes: &[u64], data: &[u8]) -> Result<(), String> {
        let chunk = &data[..self.chunk_size];
        let mut record = Vec::with_capacity(8 + self.chunk_size);
        let mut entry = self.log.begin_entry().map_err(|e| e.to_string())?;
        for &index in indexes {
            record.clear();
            record.extend_from_slice(&index.to_le_bytes());
            record.extend_from_slice(chunk);
            entry.write_chunk(&record).map_err(|e| e.to_string())?;
        }
        entry.commit().map(drop).map_err(|e| e.to_string())
    }
}

impl Target for OkayWal {
    fn write_durable(&self, index: u64, data: &[u8]) -> Result<(), String> {
        self.commit(&[index], data)
    }

    fn write(&self, index: u64, data: &[u8]) -> Result<(), String> {
        // Every okaywal entry is durable once committed.
        self.commit(&[index], data)
    }

    fn sync(&self) -> Result<(), String> {
        Ok(())
    }

    fn write_all_durable(&self, indexes: &[u64], data: &[u8]) -> Result<(), String> {
        self.commit(indexes, data)
    }

    fn read(&self, _index: u64, _buf: &mut [u8]) -> Result<(), String> {
        Err("okaywal has no reads by chunk index".into())
    }
}

/// Recovers nothing and forgets what it checkpoints: the commit path alone.
#[derive(Debug)]
struct Dropper;

impl LogManager for Dropper {
    fn recover(&mut self, _entry: &mut Entry<'_>) -> io::Result<()> {
        Ok(())
    }

    fn checkpoint_to(
        &mut self,
        _last: EntryId,
        _entries: &mut SegmentReader,
        _wal: &WriteAheadLog,
    ) -> io::Result<()> {
        Ok(())
    }
}

/// Writes every checkpointed chunk at its index in the data file, then syncs the file.
#[derive(Debug)]
struct Applier {
    file: File,
    chunk_size: u64,
}

impl Applier {
    fn apply(&self, entry: &mut Entry<'_>) -> io::Result<()> {
        // An entry cut short by a crash is skipped whole, as okaywal's recovery does.
        let Some(chunks) = entry.read_all_chunks()? else {
            return Ok(());
        };
        for record in chunks {
            let (index, bytes) = record.split_at(8);
            let index = u64::from_le_bytes(index.try_into().expect("split at 8"));
            self.file.write_all_at(bytes, index * self.chunk_size)?;
        }
        Ok(())
    }
}

impl LogManager for Applier {
    fn recover(&mut self, entry: &mut Entry<'_>) -> io::Result<()> {
        self.apply(entry)
    }

    fn checkpoint_to(
        &mut self,
        _last: EntryId,
        entries: &mut SegmentReader,
        _wal: &WriteAheadLog,
    ) -> io::Result<()> {
        while let Some(mut entry) = entries.read_entry()? {
            self.apply(&mut entry)?;
        }
        self.file.sync_data()
    }
}
