//! Config validation on arbitrary fields: `validate` and `staging_memory_bytes` answer, and a
//! config that validates opens a pipe (in both modes) or reports a clear error — never a panic,
//! overflow or absurd allocation.
#![no_main]

use arbitrary::Arbitrary;
use chunkpipe_core::{Config, Journal, MemStore, Pipe};
use core::time::Duration;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Fields {
    chunk_size: u32,
    initial_chunks: u64,
    staging_chunks: u32,
    flush_interval_us: u32,
    max_batch_delay_us: u32,
    journaled: bool,
    journal_bytes: u64,
}

fuzz_target!(|f: Fields| {
    let config = Config::new()
        .with_chunk_size(f.chunk_size)
        .with_initial_chunks(f.initial_chunks)
        .with_staging_chunks(f.staging_chunks)
        .with_flush_interval(Duration::from_micros(u64::from(f.flush_interval_us)))
        .with_max_batch_delay(Duration::from_micros(u64::from(f.max_batch_delay_us)))
        .with_journal(if f.journaled {
            Journal::Atomic
        } else {
            Journal::Off
        })
        .with_journal_bytes(f.journal_bytes);
    let bytes = config.staging_memory_bytes();
    if config.validate().is_err() {
        return;
    }
    assert!(bytes > 0, "a valid config needs staging memory");
    // Keep the fuzzer's memory bounded: open only configs of a sane size.
    let data_bytes = config
        .initial_chunks
        .saturating_mul(u64::from(config.chunk_size));
    if bytes > 8 << 20 || data_bytes > 8 << 20 || (f.journaled && config.journal_bytes > 8 << 20) {
        return;
    }
    let _ = match config.journal {
        Journal::Off => Pipe::new(MemStore::new(), config),
        _ => Pipe::with_journal(MemStore::new(), MemStore::new(), config),
    };
});
