//! Writes seed inputs for `journal_recovery`: real journal images (records after a checkpoint,
//! in both halves, with a torn tail), which random bytes would almost never hit (a superblock
//! needs its magic and CRC). Run: `cargo +nightly run --example seed_corpus` in `fuzz/`.

use chunkpipe_core::{ChunkStore, Config, Instant, Journal, MemStore, Pipe};

fn image(batches: u8, tear: bool) -> Vec<u8> {
    let config = Config::new()
        .with_chunk_size(512)
        .with_initial_chunks(8)
        .with_staging_chunks(4)
        .with_journal(Journal::Atomic)
        .with_journal_bytes(16 * 1024);
    let journal = std::sync::Arc::new(MemStore::new());
    let pipe = Pipe::with_journal(
        std::sync::Arc::new(MemStore::new()),
        std::sync::Arc::clone(&journal),
        config,
    )
    .unwrap();
    for b in 0..batches {
        for c in 0..=(b % 3) {
            pipe.try_write(u64::from((b + c) % 8), &[b; 512]).unwrap();
        }
        pipe.flush_step(Instant::ZERO).unwrap();
        pipe.flush_step(Instant::ZERO).unwrap();
    }
    drop(pipe);
    let mut bytes = vec![0; journal.len().unwrap() as usize];
    journal.read_at(0, &mut [&mut bytes]).unwrap();
    if tear {
        // Damage the newest record's last bytes, like a crash mid-append.
        let last = bytes.iter().rposition(|&b| b != 0).unwrap_or(0);
        bytes[last] ^= 0xff;
    }
    bytes
}

fn main() {
    let dir = std::path::Path::new("corpus/journal_recovery");
    std::fs::create_dir_all(dir).unwrap();
    for (name, batches, tear) in [
        ("three", 3, false),
        ("both_halves", 20, false),
        ("torn", 5, true),
    ] {
        std::fs::write(dir.join(format!("seed_{name}")), image(batches, tear)).unwrap();
    }
}
