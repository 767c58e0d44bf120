//! Async waiters ([`Durable`](crate::Durable)): who wakes them, in which order, what the
//! background leads for them, and what a dropped or poisoned wait leaves behind.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use super::*;
use crate::Durable;

const NOW: Instant = Instant::ZERO;

/// A waker that counts its wakes.
#[derive(Default)]
struct Counter(AtomicUsize);

impl std::task::Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Counter {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

fn counter() -> (Arc<Counter>, Waker) {
    let counter = Arc::new(Counter::default());
    let waker = Waker::from(Arc::clone(&counter));
    (counter, waker)
}

fn poll<S>(future: Pin<&mut Durable<'_, '_, S>>, waker: &Waker) -> Poll<Result<(), Error>> {
    use core::future::Future;
    future.poll(&mut Context::from_waker(waker))
}

fn atomic_pipe() -> Pipe<'static, MemStore<'static>> {
    let config = config(8, 8)
        .with_journal(Journal::Atomic)
        .with_journal_bytes(64 * 1024);
    Pipe::with_journal(MemStore::new(), MemStore::new(), config).unwrap()
}

/// The first poll asks for the epoch and wakes the background (once per epoch asked for); the
/// background step commits it; the publish wakes the future, which is then ready.
#[test]
fn the_background_commits_what_an_async_waiter_asks_for_and_the_publish_wakes_it() {
    let pipe = atomic_pipe();
    let (background, background_waker) = counter();
    pipe.set_background_waker(&background_waker);
    let epoch = pipe.try_write(1, &chunk(7)).unwrap();
    assert_eq!(
        pipe.next_background_at(NOW),
        Some(NOW.saturating_add(pipe.config().flush_interval)),
        "nobody waits yet: the batch ages"
    );

    let (task, waker) = counter();
    let mut first = std::pin::pin!(pipe.durable(epoch));
    let mut second = std::pin::pin!(pipe.durable(epoch));
    assert_eq!(first.epoch(), epoch);
    assert_eq!(
        std::format!("{:?}", *first),
        std::format!("Durable {{ epoch: {epoch:?}, .. }}")
    );
    assert!(poll(first.as_mut(), &waker).is_pending());
    assert_eq!(background.count(), 1, "the first ask wakes the background");
    assert!(poll(second.as_mut(), &waker).is_pending());
    assert!(poll(first.as_mut(), &waker).is_pending(), "a second poll");
    assert_eq!(background.count(), 1, "the same epoch asked again does not");
    assert_eq!(task.count(), 0);

    assert_eq!(pipe.next_background_at(NOW), Some(NOW), "due at once");
    let wake = pipe.background_step(NOW).unwrap();
    assert_eq!(wake.durable, Some(epoch), "the background led the commit");
    assert_eq!(task.count(), 2, "the publish woke both futures");
    assert_eq!(poll(first.as_mut(), &waker), Poll::Ready(Ok(())));
    assert_eq!(poll(second.as_mut(), &waker), Poll::Ready(Ok(())));
    assert_eq!(task.count(), 2, "no further wakes");
}

/// A publish wakes the futures of the epochs it made durable and no other, whatever order they
/// were polled in (the list is kept in epoch order); a later publish wakes the rest.
#[test]
fn a_publish_wakes_exactly_the_waiters_it_made_durable() {
    // `Journal::Off`: a flush step nobody asked to sync writes its batch in place and leaves
    // the sync to the background, so the first epoch is sealed but not durable while the
    // second is handed out.
    let pipe = pipe(8, 8);
    let first = pipe.try_write(1, &chunk(1)).unwrap();
    assert_eq!(pipe.flush_step(NOW).unwrap().durable, None);
    let second = pipe.try_write(2, &chunk(2)).unwrap();
    assert_eq!(second, first.next());

    let (late, late_waker) = counter();
    let (early, early_waker) = counter();
    let mut b = std::pin::pin!(pipe.durable(second));
    let mut a = std::pin::pin!(pipe.durable(first));
    assert!(poll(b.as_mut(), &late_waker).is_pending());
    assert!(poll(a.as_mut(), &early_waker).is_pending());

    let synced = pipe.background_step(NOW).unwrap();
    assert_eq!(
        synced.durable,
        Some(first),
        "the owed sync covers the first batch only"
    );
    assert_eq!((early.count(), late.count()), (1, 0));
    assert_eq!(poll(a.as_mut(), &early_waker), Poll::Ready(Ok(())));
    assert!(poll(b.as_mut(), &late_waker).is_pending());

    // The publish released two waiters and one came back: the batch gathers for a while, and
    // the background sleeps until then rather than spinning.
    let gathered = NOW.saturating_add(crate::engine::GATHER);
    assert_eq!(pipe.background_step(NOW).unwrap(), Wake::default());
    assert_eq!(pipe.next_background_at(NOW), Some(gathered));
    let committed = pipe.background_step(gathered).unwrap();
    assert_eq!(committed.durable, Some(second), "led for the async waiter");
    assert_eq!((early.count(), late.count()), (1, 1));
    assert_eq!(poll(b.as_mut(), &late_waker), Poll::Ready(Ok(())));
}

/// A future dropped while it waits leaves the list: the publish wakes the others, and only
/// them (Miri checks that nothing follows a pointer to a dropped node).
#[test]
fn a_dropped_waiter_leaves_the_list() {
    let pipe = atomic_pipe();
    let epoch = pipe.try_write(0, &chunk(1)).unwrap();
    let (counter, waker) = counter();
    let mut futures: Vec<_> = (0..5)
        .map(|_| std::boxed::Box::pin(pipe.durable(epoch)))
        .collect();
    for future in &mut futures {
        assert!(poll(future.as_mut(), &waker).is_pending());
    }
    drop(futures.remove(2)); // the middle
    drop(futures.remove(0)); // the head
    drop(futures.pop()); // the tail
    assert_eq!(pipe.background_step(NOW).unwrap().durable, Some(epoch));
    assert_eq!(counter.count(), 2, "only the futures still alive are woken");
    for future in &mut futures {
        assert_eq!(poll(future.as_mut(), &waker), Poll::Ready(Ok(())));
    }
    let never_polled = pipe.durable(epoch);
    drop(never_polled);
}

/// Poisoning wakes every async waiter with the poison error; a future polled afterwards gets
/// it at once. A future for an epoch never handed out is an error, not a wait.
#[test]
fn poisoning_wakes_every_async_waiter_with_the_error() {
    let pipe = atomic_pipe();
    let epoch = pipe.try_write(0, &chunk(1)).unwrap();
    let (counter, waker) = counter();
    let mut a = std::pin::pin!(pipe.durable(epoch));
    let mut b = std::pin::pin!(pipe.durable(epoch));
    assert!(poll(a.as_mut(), &waker).is_pending());
    assert!(poll(b.as_mut(), &waker).is_pending());
    pipe.fail_stop();
    assert_eq!(counter.count(), 2);
    assert!(matches!(
        poll(a.as_mut(), &waker),
        Poll::Ready(Err(Error::Poisoned(_)))
    ));
    assert!(matches!(
        poll(b.as_mut(), &waker),
        Poll::Ready(Err(Error::Poisoned(_)))
    ));

    let fresh = atomic_pipe();
    let mut never = std::pin::pin!(fresh.durable(Epoch::new(5)));
    assert!(matches!(
        poll(never.as_mut(), &waker),
        Poll::Ready(Err(Error::InvalidInput(_)))
    ));
}

/// A step that fails wakes the async waiters it failed: the commit's own error poisons the pipe
/// and every future resolves to it.
#[test]
fn a_failed_commit_wakes_its_async_waiters() {
    let journal = Arc::new(Faulty::default());
    let config = config(8, 8)
        .with_journal(Journal::Atomic)
        .with_journal_bytes(64 * 1024);
    let pipe =
        Pipe::with_journal(Arc::new(Faulty::default()), Arc::clone(&journal), config).unwrap();
    let epoch = pipe.try_write(0, &chunk(1)).unwrap();
    let (counter, waker) = counter();
    let mut future = std::pin::pin!(pipe.durable(epoch));
    assert!(poll(future.as_mut(), &waker).is_pending());
    Faulty::failing(&journal.fail_syncs, true);
    assert!(matches!(pipe.background_step(NOW), Err(Error::Poisoned(_))));
    assert_eq!(counter.count(), 1);
    assert!(matches!(
        poll(future.as_mut(), &waker),
        Poll::Ready(Err(Error::Poisoned(_)))
    ));
}

/// Thousands of waiters: one publish wakes them all (in several batches of wakers, each woken
/// outside the lock), each exactly once.
#[test]
fn one_publish_wakes_thousands_of_waiters_once_each() {
    // Fewer under Miri, which runs this a thousand times slower (still many batches of wakers).
    let waiters = if cfg!(miri) { 100 } else { 2000 };
    let pipe = atomic_pipe();
    let epoch = pipe.try_write(0, &chunk(1)).unwrap();
    let (counter, waker) = counter();
    let mut futures: Vec<_> = (0..waiters)
        .map(|_| std::boxed::Box::pin(pipe.durable(epoch)))
        .collect();
    for future in &mut futures {
        assert!(poll(future.as_mut(), &waker).is_pending());
    }
    assert_eq!(pipe.background_step(NOW).unwrap().durable, Some(epoch));
    assert_eq!(counter.count(), waiters);
    for future in &mut futures {
        assert_eq!(poll(future.as_mut(), &waker), Poll::Ready(Ok(())));
    }
}

/// While a flush step runs (here: a blocking waiter's commit, during its journal sync), the
/// background leaves an async waiter's open batch to it instead of spinning on the commit
/// turn; when that step ends without committing the batch, it hands it back: its `Wake` wakes
/// the background, which then finds the batch due.
#[test]
fn a_running_commit_hands_an_async_waiters_batch_back_to_the_background() {
    type HookPipe = Pipe<'static, Arc<Faulty>>;
    let journal = Arc::new(Faulty::default());
    let config = config(8, 8)
        .with_journal(Journal::Atomic)
        .with_journal_bytes(64 * 1024);
    let pipe: Arc<HookPipe> = Arc::new(
        Pipe::with_journal(Arc::new(Faulty::default()), Arc::clone(&journal), config).unwrap(),
    );
    let first = pipe.try_write(0, &chunk(1)).unwrap();
    pipe.request_durable(first);
    let during = Arc::downgrade(&pipe);
    let seen = Arc::new(std::sync::Mutex::new(None));
    let saw = Arc::clone(&seen);
    *journal.on_sync.lock().unwrap() = Some(std::boxed::Box::new(move || {
        // Mid-commit: an async waiter asks for the next (open) batch.
        let pipe = during.upgrade().unwrap();
        let second = pipe.try_write(1, &chunk(2)).unwrap();
        let mut future = std::boxed::Box::pin(pipe.durable(second));
        assert!(poll(future.as_mut(), Waker::noop()).is_pending());
        *saw.lock().unwrap() = Some(pipe.park_background(NOW));
        // Dropping it unlinks it; what it asked for stays asked.
        drop(future);
    }));
    let wake = pipe.flush_step(NOW).unwrap();
    let aged = NOW.saturating_add(config.flush_interval);
    assert_eq!(
        *seen.lock().unwrap(),
        Some(Some(aged)),
        "during the commit the background is not due at once for the async batch"
    );
    assert_eq!(wake.durable, Some(first));
    assert!(wake.background, "the step hands the async batch back");
    // Due once it has gathered (the publish released one waiter; the async one is another).
    let gathered = NOW.saturating_add(crate::engine::GATHER);
    assert_eq!(pipe.next_background_at(NOW), Some(gathered));
    let wake = pipe.background_step(gathered).unwrap();
    assert_eq!(wake.durable, Some(first.next()), "the background led it");
}

/// With threads: a `ThreadedPipe`'s background commits for futures polled on other threads
/// (each blocks on its future with a thread-parking waker), over a staging pool smaller than
/// the writes in flight; nobody calls a blocking wait.
#[test]
fn concurrent_async_waiters_over_a_threaded_pipe() {
    super::concurrent::watched(async_waiters_over_a_threaded_pipe);
}

fn async_waiters_over_a_threaded_pipe() {
    let config = config(64, 16)
        .with_journal(Journal::Atomic)
        .with_journal_bytes(256 * 1024);
    let pipe =
        crate::ThreadedPipe::start_journaled(MemStore::new(), MemStore::new(), config).unwrap();
    let rounds = if cfg!(miri) { 3 } else { 50 };
    std::thread::scope(|scope| {
        for t in 0..4u8 {
            let pipe = &pipe;
            scope.spawn(move || {
                for round in 0..rounds {
                    let bytes = chunk(round);
                    let epoch = block_on(pipe.pipe().write_async(u64::from(t), &bytes)).unwrap();
                    block_on(pipe.durable(epoch)).unwrap();
                    assert!(pipe.durable_epoch() >= epoch);
                }
            });
        }
    });
    for t in 0..4u8 {
        assert_eq!(pipe.read(u64::from(t), 1).unwrap(), chunk(rounds - 1));
    }
    pipe.close().unwrap();
}

/// Runs `future` on this thread, parking between polls.
fn block_on<F: core::future::Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut Context::from_waker(&waker)) {
            return out;
        }
        std::thread::park();
    }
}

const ONE: [u8; CHUNK] = [1; CHUNK];
const TWO: [u8; CHUNK] = [2; CHUNK];
const THREE: [u8; CHUNK] = [3; CHUNK];

fn poll_any<F: core::future::Future>(future: Pin<&mut F>, waker: &Waker) -> Poll<F::Output> {
    future.poll(&mut Context::from_waker(waker))
}

/// A pipe of two staging slots, both taken by a write that has been committed (published,
/// not yet written in place: its staging is still held).
fn full_pipe() -> (Pipe<'static, MemStore<'static>>, Epoch) {
    let config = config(8, 2)
        .with_journal(Journal::Atomic)
        .with_journal_bytes(64 * 1024);
    let pipe = Pipe::with_journal(MemStore::new(), MemStore::new(), config).unwrap();
    let epoch = pipe.try_write(0, &[1; 2 * CHUNK]).unwrap();
    pipe.request_durable(epoch);
    assert_eq!(pipe.flush_step(NOW).unwrap().durable, Some(epoch));
    assert_eq!(pipe.try_write(2, &chunk(2)), Err(Error::WouldBlock));
    (pipe, epoch)
}

/// An async write that finds staging full waits, and is woken by the step that frees it (the
/// background writing the published batch in place); then it is staged.
#[test]
fn an_async_write_waits_for_staging_and_is_woken_by_the_step_that_frees_it() {
    let (pipe, first) = full_pipe();
    let (counter, waker) = counter();
    let mut write = std::pin::pin!(pipe.write_async(2, &TWO));
    assert!(poll_any(write.as_mut(), &waker).is_pending());
    assert!(poll_any(write.as_mut(), &waker).is_pending(), "still full");
    assert_eq!(counter.count(), 0);
    let wake = pipe.background_step(NOW).unwrap();
    assert!(wake.writers, "the apply freed staging a writer waited for");
    assert_eq!(counter.count(), 1);
    let epoch = match poll_any(write.as_mut(), &waker) {
        Poll::Ready(result) => result.unwrap(),
        Poll::Pending => panic!("staging was freed"),
    };
    assert_eq!(epoch, first.next());
    assert_eq!(pipe.read(2, 1).unwrap(), chunk(2));
}

/// A transaction that gives its staging back wakes an async write waiting for it; an async
/// transaction waits for staging the same way.
#[test]
fn a_transaction_giving_staging_back_wakes_an_async_writer() {
    let pipe = pipe(8, 2);
    let tx = pipe.transaction(2).unwrap();
    let (counter, waker) = counter();
    let mut write = std::pin::pin!(pipe.write_async(1, &ONE));
    assert!(poll_any(write.as_mut(), &waker).is_pending());
    let mut second = std::pin::pin!(pipe.transaction_async(2));
    assert!(poll_any(second.as_mut(), &waker).is_pending());
    drop(tx);
    assert_eq!(counter.count(), 2, "both woken by the release");
    assert!(matches!(
        poll_any(write.as_mut(), &waker),
        Poll::Ready(Ok(_))
    ));
    assert!(
        poll_any(second.as_mut(), &waker).is_pending(),
        "one slot left: the two-chunk transaction waits again"
    );
}

/// Closing or poisoning the pipe ends an async writer's wait with the error.
#[test]
fn closing_or_poisoning_ends_an_async_writers_wait() {
    for poison in [false, true] {
        let (pipe, _) = full_pipe();
        let (counter, waker) = counter();
        let mut write = std::pin::pin!(pipe.write_async(2, &TWO));
        assert!(poll_any(write.as_mut(), &waker).is_pending());
        if poison {
            pipe.fail_stop();
        } else {
            assert!(pipe.try_close().is_pending());
        }
        assert_eq!(counter.count(), 1);
        match poll_any(write.as_mut(), &waker) {
            Poll::Ready(Err(Error::Poisoned(_))) => assert!(poison),
            Poll::Ready(Err(Error::Closed)) => assert!(!poison),
            other => panic!("{other:?}"),
        }
    }
}

/// More async writers than one batch of wakers: a freeing wakes every one of them.
#[test]
fn a_freeing_wakes_every_waiting_async_writer() {
    let (pipe, _) = full_pipe();
    let (counter, waker) = counter();
    let mut writes: Vec<_> = (0..40)
        .map(|_| std::boxed::Box::pin(pipe.write_async(2, &TWO)))
        .collect();
    for write in &mut writes {
        assert!(poll_any(write.as_mut(), &waker).is_pending());
    }
    assert!(pipe.background_step(NOW).unwrap().writers);
    assert_eq!(counter.count(), 40);
}

/// An async writer dropped while it waits leaves the list; the next freeing wakes the others.
#[test]
fn a_dropped_async_writer_leaves_the_list() {
    let (pipe, _) = full_pipe();
    let (counter, waker) = counter();
    let mut kept = std::pin::pin!(pipe.write_async(2, &TWO));
    assert!(poll_any(kept.as_mut(), &waker).is_pending());
    {
        let mut dropped = std::boxed::Box::pin(pipe.write_async(3, &THREE));
        assert!(poll_any(dropped.as_mut(), &waker).is_pending());
    }
    pipe.background_step(NOW).unwrap();
    assert_eq!(counter.count(), 1);
    assert!(matches!(
        poll_any(kept.as_mut(), &waker),
        Poll::Ready(Ok(_))
    ));
}

/// A flush step refused the commit turn (`WouldBlock`) while another holds it is woken when
/// the holder gives it up — here the holder's commit carries an earlier batch and publishes
/// nothing the refused caller waits for, so only `Wake::refused` tells it to look again.
#[test]
fn a_caller_refused_the_commit_turn_is_woken_when_it_is_given_up() {
    type HookPipe = Pipe<'static, Arc<Faulty>>;
    let journal = Arc::new(Faulty::default());
    let config = config(8, 8)
        .with_journal(Journal::Atomic)
        .with_journal_bytes(64 * 1024);
    let pipe: Arc<HookPipe> = Arc::new(
        Pipe::with_journal(Arc::new(Faulty::default()), Arc::clone(&journal), config).unwrap(),
    );
    let first = pipe.try_write(0, &chunk(1)).unwrap();
    pipe.request_durable(first);
    let during = Arc::downgrade(&pipe);
    *journal.on_sync.lock().unwrap() = Some(std::boxed::Box::new(move || {
        let pipe = during.upgrade().unwrap();
        assert_eq!(
            pipe.flush_step(NOW),
            Err(Error::WouldBlock),
            "the turn is held"
        );
    }));
    let wake = pipe.flush_step(NOW).unwrap();
    assert_eq!(wake.durable, Some(first));
    assert!(
        wake.refused,
        "the caller turned away is told the turn is free"
    );
    let wake = pipe.flush_step(NOW).unwrap();
    assert!(!wake.refused, "told once");
}

/// A registered background waker is replaced by a new one: the ask wakes the newest only.
#[test]
fn a_new_background_waker_replaces_the_old() {
    let pipe = atomic_pipe();
    let (old, old_waker) = counter();
    let (new, new_waker) = counter();
    pipe.set_background_waker(&old_waker);
    pipe.set_background_waker(&new_waker);
    let epoch = pipe.try_write(0, &chunk(1)).unwrap();
    let mut future = std::pin::pin!(pipe.durable(epoch));
    assert!(poll(future.as_mut(), Waker::noop()).is_pending());
    assert_eq!((old.count(), new.count()), (0, 1));
}

/// A read that holds staging while the background frees it hands the freeing to its own end:
/// the async writer woken by the background finds staging still held and waits again; the
/// read's end wakes it, and it is staged.
#[test]
fn a_read_that_held_staging_wakes_an_async_writer_when_it_ends() {
    type HookPipe = Pipe<'static, Arc<Faulty>>;
    let data = Arc::new(Faulty::default());
    let config = config(8, 2)
        .with_journal(Journal::Atomic)
        .with_journal_bytes(64 * 1024);
    let pipe: Arc<HookPipe> = Arc::new(
        Pipe::with_journal(Arc::clone(&data), Arc::new(Faulty::default()), config).unwrap(),
    );
    let first = pipe.try_write(0, &[1; 2 * CHUNK]).unwrap();
    pipe.request_durable(first);
    assert_eq!(pipe.flush_step(NOW).unwrap().durable, Some(first));
    let (counter, waker) = counter();
    let mut write = std::pin::pin!(pipe.write_async(2, &TWO));
    assert!(
        poll_any(write.as_mut(), &waker).is_pending(),
        "staging full"
    );
    pipe.read_into(5, &mut [0; CHUNK]).unwrap();
    assert_eq!(counter.count(), 0, "a read that frees nothing wakes nobody");

    // A read on another thread, held inside its store call until told to go on.
    let (reading, in_read) = std::sync::mpsc::channel();
    let (go, go_on) = std::sync::mpsc::channel::<()>();
    *data.on_read.lock().unwrap() = Some(std::boxed::Box::new(move || {
        reading.send(()).unwrap();
        go_on.recv().unwrap();
    }));
    let reader = {
        let pipe = Arc::clone(&pipe);
        std::thread::spawn(move || pipe.read_into(5, &mut [0; CHUNK]))
    };
    in_read.recv().unwrap();
    // The background writes the batch in place; its slots stay held by the read.
    assert!(pipe.background_step(NOW).unwrap().writers);
    assert_eq!(counter.count(), 1, "woken by the background's freeing");
    assert!(
        poll_any(write.as_mut(), &waker).is_pending(),
        "still held by the read: waits again"
    );
    go.send(()).unwrap();
    reader.join().unwrap().unwrap();
    assert_eq!(counter.count(), 2, "woken again by the read's end");
    assert!(matches!(
        poll_any(write.as_mut(), &waker),
        Poll::Ready(Ok(_))
    ));
}
