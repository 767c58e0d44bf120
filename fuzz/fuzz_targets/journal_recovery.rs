//! Recovery and inspection over an arbitrary journal image: opening a pipe must replay a valid
//! prefix or refuse with an error (damage, a mismatch), never panic; inspection likewise. A
//! pipe that opens must then work: a write becomes durable and reads back.
#![no_main]

use chunkpipe_core::journal::inspect_journal;
use chunkpipe_core::{ChunkStore, Config, Instant, Journal, MemStore, Pipe};
use libfuzzer_sys::fuzz_target;

const CHUNK: u32 = 512;

fuzz_target!(|image: &[u8]| {
    let config = Config::new()
        .with_chunk_size(CHUNK)
        .with_initial_chunks(8)
        .with_staging_chunks(4)
        .with_journal(Journal::Atomic)
        .with_journal_bytes(16 * 1024);
    let journal = MemStore::new();
    journal.grow(image.len() as u64).unwrap();
    journal.write_at(0, &[image]).unwrap();
    let data = MemStore::new();
    data.grow(8 * u64::from(CHUNK)).unwrap();
    let _ = inspect_journal(&journal, &data, CHUNK, true);
    let Ok(pipe) = Pipe::with_journal(data, journal, config) else {
        return;
    };
    let epoch = pipe.try_write(3, &[7; CHUNK as usize]).unwrap();
    while pipe.durable_epoch() < epoch {
        pipe.flush_step(Instant::ZERO).unwrap();
    }
    assert_eq!(pipe.read(3, 1).unwrap(), [7; CHUNK as usize]);
});
