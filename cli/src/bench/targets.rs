//! The implementations a row can measure: chunkpipe in both modes and its peers (naive, and with
//! their features frozen-core and okaywal), behind one trait.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use chunkpipe_core::{Config, Journal};

/// Something that makes chunk writes durable and reads chunks.
pub trait Target: Sync {
    /// Writes `data` at chunk `index` and returns once it is durable.
    fn write_durable(&self, index: u64, data: &[u8]) -> Result<(), String>;
    /// Writes `data` at chunk `index` without waiting for durability.
    fn write(&self, index: u64, data: &[u8]) -> Result<(), String>;
    /// Makes every earlier write durable.
    fn sync(&self) -> Result<(), String>;
    /// Writes one chunk of `data` at each of `indexes` and returns once all are durable (a
    /// transaction where the target has them).
    fn write_all_durable(&self, indexes: &[u64], data: &[u8]) -> Result<(), String>;
    /// Reads into `buf` from chunk `index`.
    fn read(&self, index: u64, buf: &mut [u8]) -> Result<(), String>;
    /// Average chunks made durable per sync so far, where the target batches.
    fn chunks_per_sync(&self) -> Option<f64> {
        None
    }
    /// Bytes written to storage per byte the caller wrote, where the target counts them.
    fn write_amplification(&self) -> Option<f64> {
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
    /// chunkpipe with `Journal::Atomic`.
    ChunkpipeAtomic,
    /// frozen-core 0.0.20's `FrozenPipe` with `flush_duration` of this many µs (feature
    /// `frozen-core`).
    FrozenCore {
        /// The flush duration in µs: 0, 100 or 1000.
        flush_us: u32,
    },
    /// okaywal 0.3.1 (feature `okaywal`): its commit path alone, or with a checkpointer that
    /// writes every chunk in place and syncs the data file (`applied`).
    OkayWal {
        /// Whether its checkpoints write the chunks into the data file.
        applied: bool,
    },
}

/// The flush durations the frozen-core peer is tried with; the best counts.
pub const FROZEN_FLUSH_US: [u32; 3] = [0, 100, 1000];

impl Implementation {
    /// Every implementation built in, in the order rows interleave them.
    pub fn all() -> Vec<Implementation> {
        let mut all = vec![
            Implementation::Naive,
            Implementation::ChunkpipeOff,
            Implementation::ChunkpipeAtomic,
        ];
        if cfg!(feature = "frozen-core") {
            all.extend(FROZEN_FLUSH_US.map(|flush_us| Implementation::FrozenCore { flush_us }));
        }
        if cfg!(feature = "okaywal") {
            all.extend([false, true].map(|applied| Implementation::OkayWal { applied }));
        }
        all
    }

    /// Its name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Implementation::Naive => "naive",
            Implementation::ChunkpipeOff => "chunkpipe/off",
            Implementation::ChunkpipeAtomic => "chunkpipe/atomic",
            Implementation::FrozenCore { flush_us: 0 } => "frozen-core/0us",
            Implementation::FrozenCore { flush_us: 100 } => "frozen-core/100us",
            Implementation::FrozenCore { .. } => "frozen-core/1ms",
            Implementation::OkayWal { applied: false } => "okaywal",
            Implementation::OkayWal { applied: true } => "okaywal-applied",
        }
    }

    /// Whether it runs `workload`: okaywal has no reads by chunk, so only W1 and W4.
    pub fn runs(self, workload: super::workloads::Workload) -> bool {
        use super::workloads::Workload;
        !matches!(self, Implementation::OkayWal { .. })
            || matches!(workload, Workload::W1 | Workload::W4)
    }

    /// Whether it works on a prepared data file (okaywal alone keeps only its log).
    pub fn needs_data_file(self) -> bool {
        !matches!(self, Implementation::OkayWal { applied: false })
    }

    /// Whether it is a frozen-core variant.
    pub fn is_frozen_core(self) -> bool {
        matches!(self, Implementation::FrozenCore { .. })
    }

    /// Opens the implementation over the prepared file at `path` (`file_chunks` chunks).
    pub fn open(
        self,
        path: &Path,
        chunk_size: u32,
        file_chunks: u64,
    ) -> Result<Box<dyn Target>, String> {
        let journal = match self {
            #[cfg(feature = "frozen-core")]
            Implementation::FrozenCore { flush_us } => {
                let flush = std::time::Duration::from_micros(u64::from(flush_us));
                let frozen = super::frozen::Frozen::open(path, chunk_size, file_chunks, flush)?;
                return Ok(Box::new(frozen));
            }
            #[cfg(not(feature = "frozen-core"))]
            Implementation::FrozenCore { .. } => {
                let _ = file_chunks;
                return Err("built without the frozen-core feature".into());
            }
            #[cfg(feature = "okaywal")]
            Implementation::OkayWal { applied } => {
                let wal_dir = path.with_extension("wal");
                let data = applied.then_some(path);
                let wal = super::okaywal::OkayWal::open(&wal_dir, data, chunk_size)?;
                return Ok(Box::new(wal));
            }
            #[cfg(not(feature = "okaywal"))]
            Implementation::OkayWal { .. } => {
                return Err("built without the okaywal feature".into());
            }
            Implementation::Naive => {
                let file = File::options()
                    .read(true)
                    .write(true)
                    .open(path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                return Ok(Box::new(Naive {
                    file,
                    chunk_size: u64::from(chunk_size),
                }));
            }
            Implementation::ChunkpipeOff => Journal::Off,
            Implementation::ChunkpipeAtomic => Journal::Atomic,
        };
        let config = Config::new()
            .with_chunk_size(chunk_size)
            .with_journal(journal);
        let pipe =
            chunkpipe_linux::open(path, config).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Box::new(Chunkpipe { pipe }))
    }
}

struct Naive {
    file: File,
    chunk_size: u64,
}

impl Target for Naive {
    fn write_durable(&self, index: u64, data: &[u8]) -> Result<(), String> {
        self.write(index, data)?;
        self.sync()
    }

    fn write(&self, index: u64, data: &[u8]) -> Result<(), String> {
        self.file
            .write_all_at(data, index * self.chunk_size)
            .map_err(|e| e.to_string())
    }

    fn sync(&self) -> Result<(), String> {
        self.file.sync_data().map_err(|e| e.to_string())
    }

    /// Not crash-atomic: one `write_at` per chunk, then one `sync_data`.
    fn write_all_durable(&self, indexes: &[u64], data: &[u8]) -> Result<(), String> {
        for &index in indexes {
            self.write(index, &data[..self.chunk_size as usize])?;
        }
        self.sync()
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

    fn write(&self, index: u64, data: &[u8]) -> Result<(), String> {
        self.pipe
            .write(index, data)
            .map(drop)
            .map_err(|e| e.to_string())
    }

    fn sync(&self) -> Result<(), String> {
        self.pipe.sync().map_err(|e| e.to_string())
    }

    fn write_all_durable(&self, indexes: &[u64], data: &[u8]) -> Result<(), String> {
        let chunk = self.pipe.pipe().config().chunk_size as usize;
        let mut tx = self
            .pipe
            .transaction(indexes.len() as u32)
            .map_err(|e| e.to_string())?;
        for &index in indexes {
            tx.write(index, &data[..chunk]).map_err(|e| e.to_string())?;
        }
        let epoch = tx.commit().map_err(|e| e.to_string())?;
        self.pipe.wait(epoch).map_err(|e| e.to_string())
    }

    fn read(&self, index: u64, buf: &mut [u8]) -> Result<(), String> {
        self.pipe.read_into(index, buf).map_err(|e| e.to_string())
    }

    fn chunks_per_sync(&self) -> Option<f64> {
        let stats = self.pipe.pipe().stats();
        (stats.syncs > 0).then(|| stats.chunks as f64 / stats.syncs as f64)
    }

    fn write_amplification(&self) -> Option<f64> {
        let pipe = self.pipe.pipe();
        pipe.stats().write_amplification(pipe.config().chunk_size)
    }
}
