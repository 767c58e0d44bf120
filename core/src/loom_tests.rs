//! loom models of the core's concurrency protocols: every interleaving of the threads below
//! (up to loom's preemption bound) runs, with the core's locks and atomics and `StdSignal`'s
//! condvar taken from loom through the `sync` facade.
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 cargo test -p chunkpipe-core --lib
//! --release loom_tests` (in its own target dir: the cfg rebuilds everything); CI does, in about
//! a minute.

use core::future::Future;
use std::boxed::Box;
use std::sync::Arc;
use std::vec::Vec;

use loom::thread;

use crate::{
    BlockingPipe, ChunkStore, Clock, Config, Error, Instant, Journal, MemStore, Op, Pipe,
    StdSignal, StoreError, StoreErrorKind, Wake,
};

const CHUNK: usize = 8;

/// Time stands still: no deadline ever passes, so nothing depends on a timeout (loom's condvar
/// never times out).
struct Frozen;

impl Clock for Frozen {
    fn now(&self) -> Instant {
        Instant::ZERO
    }
}

fn config(staging: u32) -> Config {
    Config::new()
        .with_chunk_size(CHUNK as u32)
        .with_initial_chunks(4)
        .with_staging_chunks(staging)
        .with_max_batch_delay(core::time::Duration::ZERO)
        // StdSignal measures deadlines on the real clock; an hour never passes in a model.
        .with_flush_interval(core::time::Duration::from_secs(3600))
        .with_journal(Journal::Off)
}

fn chunk(byte: u8) -> [u8; CHUNK] {
    [byte; CHUNK]
}

fn stored(pipe: &Pipe<'_, MemStore<'_>>, index: u64) -> [u8; CHUNK] {
    let mut out = [0; CHUNK];
    pipe.store()
        .read_at(index * CHUNK as u64, &mut [&mut out])
        .unwrap();
    out
}

type Shared<S> = Arc<BlockingPipe<'static, S, Frozen, StdSignal>>;

fn blocking<S: ChunkStore>(pipe: Pipe<'static, S>) -> Shared<S> {
    let signals = [StdSignal::new(), StdSignal::new()];
    Arc::new(BlockingPipe::new(pipe, Frozen, signals))
}

/// Starts the background runner over `shared`.
fn background<S: ChunkStore + Send + Sync + 'static>(shared: &Shared<S>) -> thread::JoinHandle<()> {
    let shared = Arc::clone(shared);
    thread::spawn(move || shared.run_background())
}

/// Runs flush steps until one has nothing to do.
fn flush_all<S: ChunkStore>(pipe: &Pipe<'_, S>) {
    while pipe.flush_step(Instant::ZERO).unwrap() != Wake::default() {}
}

/// Staging reservation and release: two writers race for a pool of two slots while a flush
/// step runs; every write lands once, a full pool says `WouldBlock` (never hands a slot out
/// twice), and after the flush steps every slot is free again.
#[test]
fn staging_slots_are_reserved_once_and_released_after_publish() {
    loom::model(|| {
        let pipe = Arc::new(Pipe::new(MemStore::new(), config(2)).unwrap());
        let writers: Vec<_> = (0..2u8)
            .map(|w| {
                let pipe = Arc::clone(&pipe);
                thread::spawn(move || pipe.try_write(u64::from(w), &chunk(w + 1)))
            })
            .collect();
        let flushed = pipe.flush_step(Instant::ZERO);
        let epochs: Vec<_> = writers.into_iter().map(|w| w.join().unwrap()).collect();
        assert!(flushed.is_ok());
        pipe.request_sync().unwrap();
        flush_all(&pipe);
        for (w, epoch) in epochs.iter().enumerate() {
            let epoch = epoch.expect("two slots hold two one-chunk writes");
            assert!(pipe.durable_epoch() >= epoch);
            assert_eq!(stored(&pipe, w as u64), chunk(w as u8 + 1));
        }
        // Both slots are free again: a two-chunk write fits.
        assert!(pipe.try_write(2, &[9; 2 * CHUNK]).is_ok());
    });
}

/// Sealing and epoch assignment against concurrent writers: a writer that sees its epoch
/// durable finds its data in the store — no batch is published without every write that was
/// given its epoch.
#[test]
fn a_durable_epoch_covers_every_write_it_was_given_to() {
    loom::model(|| {
        let pipe = Arc::new(Pipe::new(MemStore::new(), config(4)).unwrap());
        let writer = {
            let pipe = Arc::clone(&pipe);
            thread::spawn(move || {
                let epoch = pipe.try_write(1, &chunk(7)).unwrap();
                pipe.request_durable(epoch);
                if pipe.durable_epoch() >= epoch {
                    assert_eq!(
                        stored(&pipe, 1),
                        chunk(7),
                        "epoch {epoch:?} published early"
                    );
                }
                epoch
            })
        };
        let committer = {
            let pipe = Arc::clone(&pipe);
            thread::spawn(move || pipe.flush_step(Instant::ZERO).map(|_| ()))
        };
        let epoch = writer.join().unwrap();
        committer.join().unwrap().unwrap();
        flush_all(&pipe);
        assert!(pipe.durable_epoch() >= epoch);
        assert_eq!(stored(&pipe, 1), chunk(7));
    });
}

/// Reads against a transaction being staged and written in place (two store calls: chunks 0
/// and 2): a read sees both of its chunks or neither. That includes a read that began while
/// nothing was staged and so skips the lock (`read.rs`): it must notice the staging that raced
/// it and read again the locked way.
#[test]
fn a_read_sees_a_transaction_whole_or_not_at_all() {
    loom::model(|| {
        let pipe = Arc::new(Pipe::new(MemStore::new(), config(2)).unwrap());
        // A first read releases the lock once, so the mirror says nothing is staged.
        let mut before = [0; 3 * CHUNK];
        pipe.read_into(0, &mut before).unwrap();
        let writer = {
            let pipe = Arc::clone(&pipe);
            thread::spawn(move || {
                let mut tx = pipe.transaction(2).unwrap();
                tx.write(0, &chunk(7)).unwrap();
                tx.write(2, &chunk(7)).unwrap();
                tx.commit().unwrap();
                pipe.flush_step(Instant::ZERO).map(|_| ())
            })
        };
        let mut seen = [0; 3 * CHUNK];
        pipe.read_into(0, &mut seen).unwrap();
        assert_eq!(
            seen[..CHUNK],
            seen[2 * CHUNK..],
            "half a transaction: {seen:?}"
        );
        writer.join().unwrap().unwrap();
    });
}

/// Leader/follower commits: two writers wait on their writes; whichever finds no commit running
/// commits for both or for itself, the other waits for a publish — and is never left asleep
/// (a lost wake-up would deadlock, which loom reports).
#[test]
fn a_follower_is_woken_by_the_leaders_publish() {
    loom::model(|| {
        let shared = blocking(Pipe::new(MemStore::new(), config(2)).unwrap());
        let runner = background(&shared);
        let other = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || shared.write_durable(1, &chunk(6)).unwrap())
        };
        let epoch = shared.write_durable(0, &chunk(5)).unwrap();
        let other = other.join().unwrap();
        assert!(shared.pipe().durable_epoch() >= epoch.max(other));
        shared.close().unwrap();
        runner.join().unwrap();
    });
}

/// A store whose syncs fail.
#[derive(Default)]
struct FailingSync(MemStore<'static>);

impl ChunkStore for FailingSync {
    fn len(&self) -> Result<u64, StoreError> {
        self.0.len()
    }
    fn read_at(&self, offset: u64, bufs: &mut [&mut [u8]]) -> Result<(), StoreError> {
        self.0.read_at(offset, bufs)
    }
    fn write_at(&self, offset: u64, bufs: &[&[u8]]) -> Result<(), StoreError> {
        self.0.write_at(offset, bufs)
    }
    fn grow(&self, new_len: u64) -> Result<(), StoreError> {
        self.0.grow(new_len)
    }
    fn sync(&self) -> Result<(), StoreError> {
        Err(StoreError::new(StoreErrorKind::Io, Op::Sync))
    }
}

/// Poisoning racing with waiters: a batch's sync fails while two writers wait; each gets the
/// poison error (never `Ok`, never left asleep), whether it led the failed commit or followed
/// it, and close reports it too.
#[test]
fn a_failed_sync_wakes_its_waiter_with_the_error() {
    loom::model(|| {
        let shared = blocking(Pipe::new(FailingSync::default(), config(2)).unwrap());
        let runner = background(&shared);
        let other = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || shared.write_durable(1, &chunk(6)))
        };
        let result = shared.write_durable(0, &chunk(5));
        assert!(matches!(result, Err(Error::Poisoned(_))), "{result:?}");
        let result = other.join().unwrap();
        assert!(matches!(result, Err(Error::Poisoned(_))), "{result:?}");
        assert!(matches!(shared.close(), Err(Error::Poisoned(_))));
        runner.join().unwrap();
    });
}

/// A store that keeps what its last sync made durable: a copy of everything written before
/// the sync began.
#[derive(Default)]
struct SyncedImage {
    mem: MemStore<'static>,
    synced: crate::sync::Mutex<Vec<u8>>,
}

impl SyncedImage {
    fn synced_chunk(&self, index: u64) -> [u8; CHUNK] {
        let image = self.synced.lock();
        let start = index as usize * CHUNK;
        image
            .get(start..start + CHUNK)
            .map_or([0; CHUNK], |bytes| bytes.try_into().unwrap())
    }
}

impl ChunkStore for SyncedImage {
    fn len(&self) -> Result<u64, StoreError> {
        self.mem.len()
    }
    fn read_at(&self, offset: u64, bufs: &mut [&mut [u8]]) -> Result<(), StoreError> {
        self.mem.read_at(offset, bufs)
    }
    fn write_at(&self, offset: u64, bufs: &[&[u8]]) -> Result<(), StoreError> {
        self.mem.write_at(offset, bufs)
    }
    fn grow(&self, new_len: u64) -> Result<(), StoreError> {
        self.mem.grow(new_len)
    }
    fn sync(&self) -> Result<(), StoreError> {
        let mut image = std::vec![0; self.mem.len()? as usize];
        self.mem.read_at(0, &mut [&mut image])?;
        *self.synced.lock() = image;
        Ok(())
    }
}

/// `Journal::Off`: a flush step writes a batch in place and releases the commit before it
/// syncs, so a second writer's commit may write the next batch in place while the first one
/// syncs; a write nobody waits for is left to the background's sync. A writer that sees its
/// epoch durable finds its chunk in what a sync made durable — never only in the store's
/// unsynced bytes.
#[test]
fn an_in_place_batch_is_published_only_after_a_sync_that_covers_it() {
    loom::model(|| {
        let shared = blocking(Pipe::new(SyncedImage::default(), config(2)).unwrap());
        let runner = background(&shared);
        let other = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || {
                let epoch = shared.write_durable(2, &chunk(2)).unwrap();
                assert!(shared.pipe().durable_epoch() >= epoch);
                assert_eq!(shared.pipe().store().synced_chunk(2), chunk(2));
            })
        };
        let first = shared.write(1, &chunk(1)).unwrap();
        if shared.pipe().durable_epoch() >= first {
            assert_eq!(shared.pipe().store().synced_chunk(1), chunk(1));
        }
        other.join().unwrap();
        shared.close().unwrap();
        assert_eq!(shared.pipe().store().synced_chunk(1), chunk(1));
        runner.join().unwrap();
    });
}

/// `Journal::Atomic`, a writer committing each batch itself beside the background thread, over
/// a journal whose halves hold one record each, so every batch moves appends to the other half
/// and owes a checkpoint: the commit's fallback checkpoint and the background's contend for the
/// superblock lock. No deadlock, no lost wake-up, every batch durable and in place after close.
#[test]
fn the_background_frees_halves_beside_the_commits() {
    loom::model(|| {
        let record = crate::journal::format::record_bytes(2, CHUNK as u64);
        let config = config(2)
            .with_journal(Journal::Atomic)
            .with_journal_bytes(crate::journal::format::RECORD_AREA_START + 2 * record);
        let pipe = Pipe::with_journal(MemStore::new(), MemStore::new(), config).unwrap();
        let shared = blocking(pipe);
        let runner = background(&shared);
        for value in 1..=2u8 {
            shared
                .write_durable(u64::from(value), &chunk(value))
                .unwrap();
        }
        shared.close().unwrap();
        runner.join().unwrap();
        for value in 1..=2u8 {
            assert_eq!(stored(shared.pipe(), u64::from(value)), chunk(value));
        }
    });
}

/// `Journal::Atomic`, a pool of one chunk: the second write finds staging held by the first
/// batch until it is written in place — by the background, or by the writer's own commit,
/// which applies when a writer waits — and whichever writes it in place must wake the writer
/// (writing in place wakes nobody unless a writer waited for staging: a lost wake-up would
/// deadlock).
#[test]
fn a_writer_short_of_staging_is_woken_when_a_batch_is_written_in_place() {
    loom::model(|| {
        let record = crate::journal::format::record_bytes(1, CHUNK as u64);
        let config = config(1)
            .with_journal(Journal::Atomic)
            .with_journal_bytes(crate::journal::format::RECORD_AREA_START + 4 * record);
        let pipe = Pipe::with_journal(MemStore::new(), MemStore::new(), config).unwrap();
        let shared = blocking(pipe);
        let runner = background(&shared);
        shared.write_durable(1, &chunk(1)).unwrap();
        shared.write_durable(2, &chunk(2)).unwrap();
        shared.close().unwrap();
        runner.join().unwrap();
        for value in 1..=2u8 {
            assert_eq!(stored(shared.pipe(), u64::from(value)), chunk(value));
        }
    });
}

/// Runs `future` on this loom thread, waiting on a loom `Notify` between polls.
fn block_on<F: core::future::Future>(future: F) -> F::Output {
    struct Task(loom::sync::Notify);
    impl std::task::Wake for Task {
        fn wake(self: Arc<Self>) {
            self.0.notify();
        }
    }
    let task = Arc::new(Task(loom::sync::Notify::new()));
    let waker = std::task::Waker::from(Arc::clone(&task));
    let mut future = core::pin::pin!(future);
    loop {
        let mut cx = core::task::Context::from_waker(&waker);
        if let core::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        task.0.wait();
    }
}

/// An async waiter over a pipe whose background runner sleeps on its signal: the future's
/// first poll must wake the runner (through the registered waker), the runner must lead the
/// commit, and the publish must wake the future — a lost wake-up anywhere deadlocks the model.
/// A blocking writer commits beside it, so the hand-back of a batch the background left to a
/// running commit is explored too.
#[test]
fn an_async_waiter_is_committed_for_by_the_background_and_woken_by_the_publish() {
    loom::model(|| {
        let pipe = Pipe::new(MemStore::new(), config(4)).unwrap();
        let background = Arc::new(StdSignal::new());
        pipe.set_background_waker(&std::task::Waker::from(Arc::clone(&background)));
        let signals = [Arc::new(StdSignal::new()), background];
        let shared = Arc::new(BlockingPipe::new(pipe, Frozen, signals));
        let runner = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || shared.run_background())
        };
        let blocking = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || shared.write_durable(2, &chunk(2)).unwrap())
        };
        let epoch = shared.pipe().try_write(1, &chunk(1)).unwrap();
        block_on(shared.durable(epoch)).unwrap();
        assert!(shared.durable_epoch() >= epoch);
        assert_eq!(stored(shared.pipe(), 1), chunk(1));
        blocking.join().unwrap();
        shared.close().unwrap();
        runner.join().unwrap();
    });
}

/// A future dropped while a publish wakes the list: the waking pass and the drop both unlink
/// under the state lock, so the node is unlinked exactly once and the list stays whole — a
/// waiter that comes later is still woken.
#[test]
fn a_waiter_dropped_during_a_publish_leaves_the_list_whole() {
    loom::model(|| {
        let pipe = Arc::new(Pipe::new(MemStore::new(), config(4)).unwrap());
        let first = pipe.try_write(1, &chunk(1)).unwrap();
        let dropper = {
            let pipe = Arc::clone(&pipe);
            thread::spawn(move || {
                let mut future = Box::pin(pipe.durable(first));
                let waker = std::task::Waker::noop();
                let polled = future
                    .as_mut()
                    .poll(&mut core::task::Context::from_waker(waker));
                drop(future);
                polled
            })
        };
        let committed = pipe.background_step(Instant::ZERO);
        let _ = dropper.join().unwrap();
        assert!(committed.is_ok());
        pipe.request_sync().unwrap();
        flush_all(&pipe);
        let second = pipe.try_write(2, &chunk(2)).unwrap();
        let mut later = Box::pin(pipe.durable(second));
        let waker = std::task::Waker::noop();
        let mut cx = core::task::Context::from_waker(waker);
        assert!(later.as_mut().poll(&mut cx).is_pending());
        flush_all(&pipe);
        assert!(later.as_mut().poll(&mut cx).is_ready());
    });
}

/// An async writer that finds staging full against the step that frees it: the writer reads
/// the room generation, fails, and waits; the flush step writes the batch in place and wakes
/// it. Whichever comes first, the writer is never left waiting (a lost wake-up deadlocks).
#[test]
fn an_async_writer_short_of_staging_is_woken_by_the_step_that_frees_it() {
    loom::model(|| {
        let pipe = Arc::new(Pipe::new(MemStore::new(), config(1)).unwrap());
        pipe.try_write(1, &chunk(1)).unwrap();
        let writer = {
            let pipe = Arc::clone(&pipe);
            thread::spawn(move || block_on(pipe.write_async(2, &[2; CHUNK])).unwrap())
        };
        pipe.flush_step(Instant::ZERO).unwrap();
        let epoch = writer.join().unwrap();
        pipe.request_sync().unwrap();
        flush_all(&pipe);
        assert!(pipe.durable_epoch() >= epoch);
        assert_eq!(stored(&pipe, 2), chunk(2));
    });
}
