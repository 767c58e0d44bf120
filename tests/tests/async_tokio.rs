//! Async durability on a tokio current-thread runtime: thousands of tasks wait for staging and
//! on their epochs at once, the `ThreadedPipe`'s background thread leads the commits, and each task's future is
//! polled at most twice — once to register, once after the publish that woke it: no polling
//! loop, no timer, no blocking wait on the runtime's thread.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chunkpipe_core::{Config, Durable, Epoch, Error, MemStore, ThreadedPipe};

const CHUNK: usize = 512;
const TASKS: u64 = 4000;

type Pipe = ThreadedPipe<MemStore<'static>>;

/// Awaits `durable`, adding its polls to `polls` and asserting there were at most two.
async fn counted(
    durable: Durable<'_, '_, MemStore<'static>>,
    polls: &AtomicUsize,
) -> Result<(), Error> {
    let mut durable = pin!(durable);
    let mut own = 0;
    let result = poll_fn(|cx| {
        own += 1;
        durable.as_mut().poll(cx)
    })
    .await;
    assert!(own <= 2, "a future polled {own} times");
    polls.fetch_add(own, Ordering::Relaxed);
    result
}

fn pipe() -> Arc<Pipe> {
    let config = Config::new()
        .with_chunk_size(CHUNK as u32)
        .with_initial_chunks(2 * TASKS)
        .with_staging_chunks(512)
        .with_journal_bytes(64 << 20);
    Arc::new(ThreadedPipe::start_journaled(MemStore::new(), MemStore::new(), config).unwrap())
}

#[test]
fn thousands_of_tasks_wait_for_durability_each_woken_once_by_a_publish() {
    let pipe = pipe();
    let polls = Arc::new(AtomicUsize::new(0));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let epochs: Vec<Epoch> = runtime.block_on(async {
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let (pipe, polls) = (Arc::clone(&pipe), Arc::clone(&polls));
                tokio::spawn(async move {
                    let byte = (task % 251) as u8;
                    // Staging holds a tenth of the tasks' writes: most wait for room.
                    let epoch = if task % 2 == 0 {
                        pipe.pipe().write_async(task, &[byte; CHUNK]).await?
                    } else {
                        // An async transaction: both chunks become durable together.
                        let mut tx = pipe.pipe().transaction_async(2).await?;
                        tx.write(task, &[byte; CHUNK])?;
                        tx.write(TASKS + task, &[byte; CHUNK])?;
                        tx.commit()?
                    };
                    counted(pipe.durable(epoch), &polls).await?;
                    assert!(pipe.durable_epoch() >= epoch);
                    Ok::<_, Error>(epoch)
                })
            })
            .collect();
        let mut epochs = Vec::new();
        for task in tasks {
            epochs.push(task.await.unwrap().unwrap());
        }
        epochs
    });
    // Twice (to register, then after the publish that woke it), or once when the background
    // had already committed the batch the task's write joined (another task asked for it).
    let polls = polls.load(Ordering::Relaxed);
    assert!(
        (TASKS as usize..=2 * TASKS as usize).contains(&polls),
        "{polls} polls for {TASKS} futures: a future was polled more than twice"
    );
    for task in 0..TASKS {
        let byte = (task % 251) as u8;
        assert_eq!(pipe.read(task, 1).unwrap(), [byte; CHUNK], "chunk {task}");
        if task % 2 == 1 {
            assert_eq!(pipe.read(TASKS + task, 1).unwrap(), [byte; CHUNK]);
        }
    }
    let stats = pipe.stats();
    let last = epochs.iter().max().unwrap().get();
    // Commits on RAM take microseconds, so batches are small; still, writes share them.
    assert!(
        stats.batches < TASKS / 2,
        "group commit: {} batches for {TASKS} tasks (epochs up to {last})",
        stats.batches
    );
    pipe.close().unwrap();
}

/// A future whose pipe is poisoned while it waits resolves to the poison error. (No background
/// runs here, so nothing commits the epoch first.)
#[test]
fn a_poisoned_pipe_resolves_waiting_tasks_with_the_error() {
    let config = Config::new()
        .with_chunk_size(CHUNK as u32)
        .with_initial_chunks(8)
        .with_journal_bytes(16 << 20);
    let pipe = Arc::new(
        chunkpipe_core::Pipe::with_journal(MemStore::new(), MemStore::new(), config).unwrap(),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let epoch = pipe.try_write(0, &[1; CHUNK]).unwrap();
        let waiters: Vec<_> = (0..100)
            .map(|_| {
                let pipe = Arc::clone(&pipe);
                tokio::spawn(async move {
                    let polls = AtomicUsize::new(0);
                    let result = counted(pipe.durable(epoch), &polls).await;
                    (result, polls.load(Ordering::Relaxed))
                })
            })
            .collect();
        tokio::task::yield_now().await; // waiters register
        pipe.fail_stop();
        for waiter in waiters {
            let (result, polls) = waiter.await.unwrap();
            assert!(matches!(result, Err(Error::Poisoned(_))), "{result:?}");
            // Registered before the poison and woken by it (2), or first polled after it (1).
            assert!(polls <= 2, "{polls} polls");
        }
    });
}
