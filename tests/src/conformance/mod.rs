//! The conformance cases. Each is a plain function over a [`Harness`](crate::Harness).

mod basic;
mod concurrency;
mod damage;
mod faults;
mod input;
mod journal;
mod tx;

pub use basic::*;
pub use concurrency::*;
pub use damage::*;
pub use faults::*;
pub use input::*;
pub use journal::*;
pub use tx::*;

use chunkpipe_core::Config;

/// Chunk size of the suite's configs: small, so that many-chunk cases stay fast on real files.
pub const CHUNK: usize = 512;

/// The suite's config: `chunks` chunks, `staging` staging slots.
pub fn config(chunks: u64, staging: u32) -> Config {
    Config::new()
        .with_chunk_size(CHUNK as u32)
        .with_initial_chunks(chunks)
        .with_staging_chunks(staging)
}

/// A chunk that encodes `value`: the value in the first 8 bytes, its low byte repeated after, so
/// a torn or mixed chunk is detectable.
pub fn chunk_with(value: u64) -> Vec<u8> {
    let mut chunk = vec![value as u8; CHUNK];
    chunk[..8].copy_from_slice(&value.to_le_bytes());
    chunk
}

/// `count` consecutive chunks all encoding `value`.
pub fn chunks_with(value: u64, count: usize) -> Vec<u8> {
    chunk_with(value).repeat(count)
}

/// The value a chunk encodes; panics with a clear message on a torn or foreign chunk.
pub fn value_of(chunk: &[u8]) -> u64 {
    let value = u64::from_le_bytes(chunk[..8].try_into().unwrap());
    if chunk.iter().all(|&b| b == 0) {
        return 0;
    }
    assert!(
        chunk[8..].iter().all(|&b| b == value as u8),
        "torn chunk: header says {value}"
    );
    value
}
