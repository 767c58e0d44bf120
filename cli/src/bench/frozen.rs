//! The frozen-core 0.0.20 peer (cargo feature `frozen-core`): its `FrozenPipe`, the batched
//! pipeline chunkpipe measures itself against, at one of three flush durations.
#![allow(unsafe_code)]

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use frozen_core::bpool::BPBackend;
use frozen_core::fpipe::{FPCfg, FrozenPipe};

use super::targets::Target;

/// `FrozenPipe`'s module id (an error-reporting tag).
const MODULE_ID: u8 = 7;

/// A `FrozenPipe` over one file.
pub struct Frozen {
    pipe: FrozenPipe<MODULE_ID>,
    chunk_size: usize,
    /// The epoch of the newest write, for `sync`.
    last_epoch: AtomicU64,
}

impl Frozen {
    /// Opens `path` with `flush_duration` = `flush`, staging as large as chunkpipe's default.
    pub fn open(
        path: &Path,
        chunk_size: u32,
        file_chunks: u64,
        flush: Duration,
    ) -> Result<Self, String> {
        let cfg = FPCfg {
            chunk_size: chunk_size as usize,
            initial_chunk_amount: file_chunks as usize,
            flush_duration: flush,
            backend: BPBackend::Prealloc { capacity: 1024 },
        };
        let pipe = FrozenPipe::<MODULE_ID>::new(path, cfg).map_err(|e| format!("{e:?}"))?;
        Ok(Frozen {
            pipe,
            chunk_size: chunk_size as usize,
            last_epoch: AtomicU64::new(0),
        })
    }

    fn submit(&self, index: u64, data: &[u8]) -> Result<u64, String> {
        let bufs: Vec<&[u8]> = data.chunks(self.chunk_size).collect();
        if bufs.iter().any(|b| b.len() != self.chunk_size) {
            return Err("frozen-core writes whole chunks only".into());
        }
        // SAFETY: `FrozenPipe::write` copies `chunk_size` bytes from each buffer; every buffer
        // was just checked to be exactly `chunk_size` long.
        let epoch =
            unsafe { self.pipe.write(&bufs, index as usize) }.map_err(|e| format!("{e:?}"))?;
        self.last_epoch.fetch_max(epoch, Ordering::AcqRel);
        Ok(epoch)
    }
}

impl Target for Frozen {
    fn write_durable(&self, index: u64, data: &[u8]) -> Result<(), String> {
        let epoch = self.submit(index, data)?;
        self.pipe
            .wait_for_durability(epoch)
            .map_err(|e| format!("{e:?}"))
    }

    fn write(&self, index: u64, data: &[u8]) -> Result<(), String> {
        self.submit(index, data).map(drop)
    }

    fn sync(&self) -> Result<(), String> {
        let epoch = self.last_epoch.load(Ordering::Acquire);
        self.pipe
            .force_durability(epoch)
            .map_err(|e| format!("{e:?}"))
    }

    fn write_all_durable(&self, indexes: &[u64], data: &[u8]) -> Result<(), String> {
        let chunk = &data[..self.chunk_size];
        let mut tx = self.pipe.new_tx();
        for &index in indexes {
            // SAFETY: as in `submit`: one buffer of exactly `chunk_size` bytes.
            unsafe { tx.write(&[chunk], index as usize) }.map_err(|e| format!("{e:?}"))?;
        }
        let epoch = tx.commit().map_err(|e| format!("{e:?}"))?;
        self.pipe
            .wait_for_durability(epoch)
            .map_err(|e| format!("{e:?}"))
    }

    fn read(&self, index: u64, buf: &mut [u8]) -> Result<(), String> {
        let count = buf.len() / self.chunk_size;
        let bytes = self
            .pipe
            .read(index as usize, count)
            .map_err(|e| format!("{e:?}"))?;
        buf.copy_from_slice(&bytes);
        Ok(())
    }
}
