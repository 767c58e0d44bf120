//! Async durability with tokio: a thousand tasks on one thread each write a chunk and `.await`
//! its durability; the pipe's background thread commits for them, and each publish wakes the
//! tasks it made durable. One task commits a transaction and awaits it the same way.
//!
//! `cargo run -p chunkpipe-linux --example async_tokio [PATH]` (a temp file by default).

use std::sync::Arc;

use chunkpipe_linux::{Config, Error};

const TASKS: u64 = 1000;

fn main() -> Result<(), Error> {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = std::env::args_os()
        .nth(1)
        .map_or_else(|| dir.path().join("async.chunks"), Into::into);
    let config = Config::new()
        .with_chunk_size(4096)
        .with_initial_chunks(TASKS + 2);
    let pipe = Arc::new(chunkpipe_linux::open(&path, config)?);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let pipe = Arc::clone(&pipe);
                tokio::spawn(async move {
                    // Staged (waiting for room while staging is full); `durable` resolves
                    // when its batch is synced.
                    let epoch = pipe.pipe().write_async(task, &[task as u8; 4096]).await?;
                    pipe.durable(epoch).await
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("the task ran")?;
        }
        // A transaction: both chunks durable together, awaited like a write.
        let mut tx = pipe.pipe().transaction_async(2).await?;
        tx.write(TASKS, &[1; 4096])?;
        tx.write(TASKS + 1, &[2; 4096])?;
        let epoch = tx.commit()?;
        pipe.durable(epoch).await
    })?;

    let stats = pipe.stats();
    println!(
        "{}: {} async writes and a transaction durable in {} batches ({} syncs)",
        path.display(),
        TASKS,
        stats.batches,
        stats.syncs
    );
    pipe.close()
}
