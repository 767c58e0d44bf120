//! A first program: open a pipe over a file, write, wait until it is durable, commit a
//! transaction, read back, look at what the pipe did, close.
//!
//! `cargo run -p chunkpipe-linux --example quickstart [PATH]` (a temp file by default).

use chunkpipe_linux::{Config, Error};

fn main() -> Result<(), Error> {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = std::env::args_os()
        .nth(1)
        .map_or_else(|| dir.path().join("data.chunks"), Into::into);

    // 4 KiB chunks, 1024 of them to start with; the default `Journal::Atomic` keeps every
    // batch (and every transaction) whole across a crash.
    let config = Config::new()
        .with_chunk_size(4096)
        .with_initial_chunks(1024);
    let pipe = chunkpipe_linux::open(&path, config)?;

    // A write is staged at once and gets the epoch of the batch it joined...
    let epoch = pipe.write(7, &[1u8; 4096])?;
    // ...and `wait` returns once that batch is written and synced: durable.
    pipe.wait(epoch)?;

    // A transaction's writes become durable (and visible) together, or not at all.
    let mut tx = pipe.transaction(2)?;
    tx.write(8, &[2u8; 4096])?;
    tx.write(9, &[3u8; 4096])?;
    pipe.wait(tx.commit()?)?;

    assert_eq!(pipe.read(8, 2)?, [[2u8; 4096], [3u8; 4096]].concat());
    let stats = pipe.stats();
    println!(
        "{}: {} batches, {} chunks, {} syncs, durable up to epoch {}",
        path.display(),
        stats.batches,
        stats.chunks,
        stats.syncs,
        pipe.durable_epoch().get()
    );
    // Commits what is left, stops the background thread and releases the files.
    pipe.close()
}
