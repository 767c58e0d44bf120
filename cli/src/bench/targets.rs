//! The implementations a row can measure: chunkpipe and the naive peer, behind one trait.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use chunkpipe_core::{Config, Journal};

/// Something that makes chunk writes durable and reads chunks.
pub trait Target: Sync {
    /// Writes `data` at chunk `index` and returns once it is durable.
    fn write_durable(&self, index: u64, data: &[u8]) -> Result<(), String>;
    /// Reads into `buf` from chunk `index`.
    fn read(&self, index: u64, buf: &mut [u8]) -> Result<(), String>;
    /// Average chunks made durable per sync so far, where the target batches.
    fn writes_per_sync(&self) -> Option<f64> {
        None
    }
}

/// Which implementation a row measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Implementation {
    /// `std::fs::File`: `write_at` + `sync_data` per write, each thread syncing for itself.
    Naive,
    /// chunkpipe with `Journal::Off`.
    ChunkpipeOff,
}

impl Implementation {
    /// Every implementation, in the order rows interleave them.
    pub const ALL: [Implementation; 2] = [Implementation::Naive, Implementation::ChunkpipeOff];

    /// Its name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Implementation::Naive => "naive",
            Implementation::ChunkpipeOff => "chunkpipe/off",
        }
    }

    /// Opens the implementation over the prepared file at `path`.
    pub fn open(self, path: &Path, chunk_size: u32) -> Result<Box<dyn Target>, String> {
        match self {
            Implementation::Naive => {
                let file = File::options()
                    .read(true)
                    .write(true)
                    .open(path)
                    .map_err(|e| e.to_string())?;
                Ok(Box::new(Naive {
                    file,
                    chunk_size: u64::from(chunk_size),
                }))
            }
            Implementation::ChunkpipeOff => {
                let config = Config::new()
                    .with_chunk_size(chunk_size)
                    .with_journal(Journal::Off);
                let pipe = chunkpipe_linux::open(path, config).map_err(|e| e.to_string())?;
                Ok(Box::new(Chunkpipe { pipe }))
            }
        }
    }
}

struct Naive {
    file: File,
    chunk_size: u64,
}

impl Target for Naive {
    fn write_durable(&self, index: u64, data: &[u8]) -> Result<(), String> {
        self.file
            .write_all_at(data, index * self.chunk_size)
            .map_err(|e| e.to_string())?;
        self.file.sync_data().map_err(|e| e.to_string())
    }

    fn read(&self, index: u64, buf: &mut [u8]) -> Result<(), String> {
        self.file
            .read_exact_at(buf, index * self.chunk_size)
            .map_err(|e| e.to_string())
    }
}

struct Chunkpipe {
    pipe: chunkpipe_linux::FilePipe,
}

impl Target for Chunkpipe {
    fn write_durable(&self, index: u64, data: &[u8]) -> Result<(), String> {
        self.pipe
            .write_durable(index, data)
            .map(drop)
            .map_err(|e| e.to_string())
    }

    fn read(&self, index: u64, buf: &mut [u8]) -> Result<(), String> {
        self.pipe.read_into(index, buf).map_err(|e| e.to_string())
    }

    fn writes_per_sync(&self) -> Option<f64> {
        let stats = self.pipe.pipe().stats();
        (stats.syncs > 0).then(|| stats.chunks as f64 / stats.syncs as f64)
    }
}
