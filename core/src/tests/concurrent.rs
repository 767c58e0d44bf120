//! Real threads over a [`ThreadedPipe`](crate::ThreadedPipe) (its background thread included),
//! small enough for Miri, which runs these with several scheduling seeds.

use std::sync::Arc;

use super::*;
use crate::ThreadedPipe;

fn small_atomic() -> Config {
    config(4, 2)
        .with_journal(Journal::Atomic)
        .with_journal_bytes(crate::journal::format::RECORD_AREA_START + 4096)
}

/// Runs `body` on a thread of its own and fails the test if it has not finished in time: a lost
/// wake-up shows as a failure, not as a test run that never ends.
pub(super) fn watched(body: impl FnOnce() + Send + 'static) {
    let limit = std::time::Duration::from_secs(if cfg!(miri) { 3600 } else { 10 });
    let (done, finished) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        body();
        let _ = done.send(());
    });
    match finished.recv_timeout(limit) {
        Ok(()) => thread.join().unwrap(),
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("hung: a wake-up was lost"),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(panic) = thread.join() {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

/// Polls `done` until it holds; fails the test after a minute (an hour of Miri's clock).
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let limit = std::time::Duration::from_secs(if cfg!(miri) { 3600 } else { 60 });
    let give_up = std::time::Instant::now() + limit;
    while !done() {
        assert!(std::time::Instant::now() < give_up, "{what}");
        std::thread::sleep(core::time::Duration::from_millis(1));
    }
}

#[test]
fn writers_waiters_and_a_reader_share_a_threaded_pipe() {
    watched(|| {
        let pipe = Arc::new(
            ThreadedPipe::start_journaled(MemStore::new(), MemStore::new(), small_atomic())
                .unwrap(),
        );
        let writers: Vec<_> = (0..2u8)
            .map(|w| {
                let pipe = Arc::clone(&pipe);
                std::thread::spawn(move || {
                    for round in 1..=3u8 {
                        pipe.write_durable(u64::from(w), &chunk(10 * w + round))
                            .unwrap();
                    }
                })
            })
            .collect();
        let reader = {
            let pipe = Arc::clone(&pipe);
            std::thread::spawn(move || {
                for _ in 0..3 {
                    for w in 0..2u8 {
                        let got = pipe.read(u64::from(w), 1).unwrap();
                        let byte = got[0];
                        assert!(got.iter().all(|&b| b == byte), "a torn chunk");
                        assert!(byte == 0 || (byte / 10 == w && byte % 10 <= 3), "{byte}");
                    }
                }
            })
        };
        for thread in writers.into_iter().chain([reader]) {
            thread.join().unwrap();
        }
        for w in 0..2u8 {
            assert_eq!(pipe.read(u64::from(w), 1).unwrap(), chunk(10 * w + 3));
        }
        Arc::try_unwrap(pipe).unwrap().close().unwrap();
    });
}

/// Staging is full of published batches only the background writes in place: a writer short
/// of staging sleeps until the background's apply wakes it.
#[test]
fn a_writer_waits_for_the_background_to_free_staging() {
    watched(|| {
        let config = small_atomic().with_staging_chunks(1);
        let pipe = ThreadedPipe::start_journaled(MemStore::new(), MemStore::new(), config).unwrap();
        for round in 1..=6u8 {
            pipe.write_durable(u64::from(round % 4), &chunk(round))
                .unwrap();
        }
        pipe.close().unwrap();
    });
}

/// The background thread sleeps until it is told of work or a deadline it knows of: after the
/// last commit nobody tells it anything, and the idle checkpoint still happens.
#[test]
fn an_idle_threaded_pipe_takes_its_idle_checkpoint() {
    watched(|| {
        let config = small_atomic().with_flush_interval(core::time::Duration::from_millis(1));
        let pipe = ThreadedPipe::start_journaled(MemStore::new(), MemStore::new(), config).unwrap();
        pipe.write_durable(1, &chunk(7)).unwrap();
        wait_until("no idle checkpoint", || {
            let inner = pipe.pipe();
            let state = inner.lock();
            inner.engine.settled(&state)
        });
        pipe.close().unwrap();
    });
}

/// `Journal::Off`: a batch nobody waits for is committed and synced by the background thread
/// `flush_interval` after it opened.
#[test]
fn a_batch_nobody_waits_for_becomes_durable_in_the_background() {
    watched(|| {
        let config = config(4, 2).with_flush_interval(core::time::Duration::from_millis(1));
        let pipe = ThreadedPipe::start(MemStore::new(), config).unwrap();
        let epoch = pipe.write(2, &chunk(3)).unwrap();
        wait_until("never durable", || pipe.pipe().durable_epoch() >= epoch);
        assert_eq!(store_chunk(pipe.pipe().store(), 2), chunk(3));
        pipe.close().unwrap();
    });
}

/// A clock that counts how often it is read: a blocking call that spins reads it on every turn.
struct Counting(Arc<core::sync::atomic::AtomicU32>);

impl crate::Clock for Counting {
    fn now(&self) -> Instant {
        self.0.fetch_add(1, core::sync::atomic::Ordering::SeqCst);
        crate::Clock::now(&crate::StdClock)
    }
}

/// A writer short of staging that another thread's transaction holds sleeps — it does not
/// spin — until the transaction gives the staging back.
#[test]
fn a_writer_short_of_staging_sleeps_until_a_transaction_gives_it_back() {
    watched(|| {
        use core::sync::atomic::{AtomicU32, Ordering};
        let reads = Arc::new(AtomicU32::new(0));
        let signals = [crate::StdSignal::new(), crate::StdSignal::new()];
        let clock = Counting(Arc::clone(&reads));
        let pipe = crate::BlockingPipe::new(pipe(8, 2), clock, signals);
        std::thread::scope(|s| {
            let tx = pipe.transaction(2).unwrap();
            let writer = s.spawn(|| pipe.write(0, &chunk(1)));
            wait_until("the writer never found staging full", || {
                pipe.pipe().lock().writers_waiting
            });
            std::thread::sleep(core::time::Duration::from_millis(20));
            let while_held = reads.load(Ordering::SeqCst);
            drop(tx);
            writer.join().unwrap().unwrap();
            assert!(
                while_held < 50,
                "the writer read the clock {while_held} times: it spun"
            );
        });
    });
}

/// A pipe shared in an `Arc` is closed through any clone, which stops and joins its background
/// thread; later closes only report.
#[test]
fn a_shared_pipe_closes_through_any_clone() {
    watched(|| {
        let pipe = Arc::new(ThreadedPipe::start(MemStore::new(), config(4, 2)).unwrap());
        let other = Arc::clone(&pipe);
        let epoch = std::thread::spawn(move || other.write_durable(1, &chunk(1)).unwrap())
            .join()
            .unwrap();
        assert_eq!(pipe.close(), Ok(()));
        assert!(pipe.durable_epoch() >= epoch);
        assert_eq!(pipe.close(), Ok(()), "closing again only reports");
        assert_eq!(pipe.write(0, &chunk(2)), Err(Error::Closed));
    });
}
