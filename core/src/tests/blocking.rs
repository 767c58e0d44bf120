//! The blocking layer on one thread: which signal each step's [`Wake`] notifies, when a waiter
//! leads a commit itself, and what it sleeps on otherwise. The signals record what they are
//! told and never block (a spurious return is allowed by [`Signal`]).

use core::cell::Cell;
use core::time::Duration;
use std::rc::Rc;
use std::sync::Arc;

use super::*;
use crate::{BlockingPipe, Clock, Signal};

/// Virtual time shared by a [`Manual`] clock and the [`Recording`] signals: a wait with a
/// deadline sleeps until it, so time passes only while someone sleeps.
type Time = Rc<Cell<Instant>>;

/// A signal that counts its notifications and its waits, and returns from a wait at once —
/// having moved time to the wait's deadline, if it has one.
#[derive(Default)]
struct Recording {
    notified: Cell<u32>,
    waits: Cell<u32>,
    time: Time,
}

impl Signal for Recording {
    fn token(&self) -> u32 {
        self.notified.get()
    }
    fn wait(&self, _token: u32, deadline: Option<Instant>) {
        self.waits.set(self.waits.get() + 1);
        if let Some(deadline) = deadline {
            self.time.set(self.time.get().max(deadline));
        }
    }
    fn notify_all(&self) {
        self.notified.set(self.notified.get() + 1);
    }
}

/// The clock the signals move. It fails the test when it is read a thousand times: a blocking
/// call that spins instead of sleeping reads it on every turn.
#[derive(Default)]
struct Manual {
    time: Time,
    reads: Cell<u32>,
}

impl Clock for Manual {
    fn now(&self) -> Instant {
        self.reads.set(self.reads.get() + 1);
        assert!(
            self.reads.get() < 1000,
            "a blocking call spins instead of sleeping"
        );
        self.time.get()
    }
}

type Blocking<S> = BlockingPipe<'static, S, Manual, Recording>;

fn blocking<S: ChunkStore>(pipe: Pipe<'static, S>) -> Blocking<S> {
    let time = Time::default();
    let signal = || Recording {
        time: Rc::clone(&time),
        ..Recording::default()
    };
    let clock = Manual {
        time: Rc::clone(&time),
        reads: Cell::new(0),
    };
    BlockingPipe::new(pipe, clock, [signal(), signal()])
}

/// (progress notifications, background notifications).
fn notified<S: ChunkStore>(pipe: &Blocking<S>) -> (u32, u32) {
    let (progress, background) = pipe.signals();
    (progress.notified.get(), background.notified.get())
}

fn atomic_config() -> Config {
    config(8, 4)
        .with_journal(Journal::Atomic)
        .with_journal_bytes(64 * 1024)
}

/// An uncontended waiter commits its own batch on its own thread: one flush step, no sleep;
/// the background is told once two batches wait to be written in place.
#[test]
fn a_waiter_leads_its_own_commit() {
    let pipe =
        blocking(Pipe::with_journal(MemStore::new(), MemStore::new(), atomic_config()).unwrap());
    let epoch = pipe.write(0, &chunk(1)).unwrap();
    assert_eq!(notified(&pipe), (0, 0), "the background did not park yet");
    pipe.wait(epoch).unwrap();
    assert_eq!(notified(&pipe), (1, 0), "durable: waiters");
    assert_eq!(pipe.signals().0.waits.get(), 0, "never slept");
    assert_eq!(pipe.pipe().durable_epoch(), epoch);
    let second = pipe.write_durable(1, &chunk(2)).unwrap();
    assert_eq!(
        notified(&pipe),
        (2, 1),
        "two batches to write in place: the background"
    );
    assert_eq!(pipe.pipe().durable_epoch(), second);
}

/// `Journal::Off`: the waiter's commit syncs too, so nothing is left for the background.
#[test]
fn an_off_waiter_syncs_in_its_commit() {
    let pipe = blocking(Pipe::new(MemStore::new(), config(8, 4)).unwrap());
    let epoch = pipe.write_durable(0, &chunk(1)).unwrap();
    assert_eq!(pipe.pipe().durable_epoch(), epoch);
    assert_eq!(notified(&pipe), (1, 0));
    assert_eq!(pipe.pipe().next_background_at(Instant::ZERO), None);
}

/// A write into an empty batch wakes a background that parked with nothing to do; later
/// writes into the same batch do not.
#[test]
fn a_write_wakes_a_parked_background_once() {
    let pipe = blocking(Pipe::new(MemStore::new(), config(8, 4)).unwrap());
    assert_eq!(pipe.pipe().park_background(Instant::ZERO), None);
    pipe.write(0, &chunk(1)).unwrap();
    assert_eq!(notified(&pipe), (0, 1));
    pipe.write(1, &chunk(1)).unwrap();
    assert_eq!(notified(&pipe), (0, 1));
    let mut tx = pipe.transaction(1).unwrap();
    tx.write(2, &chunk(1)).unwrap();
    tx.commit().unwrap();
    assert_eq!(notified(&pipe), (0, 1));
}

/// A transaction committed into an empty batch wakes a parked background too.
#[test]
fn a_transaction_wakes_a_parked_background() {
    let pipe = blocking(Pipe::new(MemStore::new(), config(8, 4)).unwrap());
    assert_eq!(pipe.pipe().park_background(Instant::ZERO), None);
    let mut tx = pipe.transaction(1).unwrap();
    tx.write(2, &chunk(1)).unwrap();
    tx.commit().unwrap();
    assert_eq!(notified(&pipe), (0, 1));
}

/// A writer short of staging seals the batch held open for `max_batch_delay` at once and
/// writes it in place itself, then wakes the background for the sync nobody asked for.
#[test]
fn a_writer_short_of_staging_leads_the_commit_that_frees_it() {
    let config = config(8, 1).with_max_batch_delay(Duration::from_millis(1));
    let pipe = blocking(Pipe::new(MemStore::new(), config).unwrap());
    pipe.write(0, &chunk(1)).unwrap();
    pipe.write(1, &chunk(2)).unwrap();
    assert_eq!(
        store_chunk(pipe.pipe().store(), 0),
        chunk(1),
        "the first in place"
    );
    assert_eq!(pipe.signals().0.waits.get(), 0);
    assert_eq!(
        notified(&pipe),
        (1, 1),
        "staging freed that a writer waited for; a sync owed"
    );
    assert_eq!(
        pipe.pipe().next_background_at(Instant::ZERO),
        Some(Instant::ZERO)
    );
}

/// A grow is committed by the thread that waits for it.
#[test]
fn a_grow_settles_its_waiter() {
    let pipe = blocking(Pipe::new(MemStore::new(), config(2, 4)).unwrap());
    assert_eq!(pipe.grow(3), Ok(5));
    assert_eq!(notified(&pipe), (1, 0));
}

/// The background runner does its work, wakes whom each step says, and returns once a close
/// has nothing left to wait for; `close` then returns at once.
#[test]
fn the_background_runner_settles_a_close() {
    let pipe =
        blocking(Pipe::with_journal(MemStore::new(), MemStore::new(), atomic_config()).unwrap());
    let epoch = pipe.write_durable(3, &chunk(7)).unwrap();
    assert!(pipe.pipe().try_close().is_pending());
    let before = notified(&pipe);
    pipe.run_background();
    assert!(pipe.pipe().try_close().is_ready());
    assert_eq!(
        notified(&pipe).0,
        before.0 + 2,
        "the settling checkpoint, then the return"
    );
    pipe.close().unwrap();
    assert_eq!(pipe.pipe().durable_epoch(), epoch);
    assert_eq!(store_chunk(pipe.pipe().store(), 3), chunk(7));
}

/// A poisoned pipe wakes every waiter with the error; a waiter that finds it returns it.
#[test]
fn a_failure_reaches_the_waiter_that_led_the_commit() {
    let store = Arc::new(Faulty::default());
    let pipe = blocking(Pipe::new(Arc::clone(&store), config(8, 4)).unwrap());
    Faulty::failing(&store.fail_syncs, true);
    let failure = crate::StoreError::new(crate::StoreErrorKind::Io, crate::Op::Sync);
    assert_eq!(
        pipe.write_durable(0, &chunk(1)),
        Err(Error::Poisoned(failure))
    );
    assert_eq!(notified(&pipe).0, 1, "the failure is a wake-up");
    pipe.fail_stop();
    assert_eq!(notified(&pipe), (2, 1));
}

/// A store that panics in a step this layer runs: the panic goes on up the thread that ran
/// it, the pipe is poisoned, and both signals wake whoever sleeps on them.
#[test]
fn a_panicking_step_poisons_the_pipe_and_wakes_everyone() {
    let store = Arc::new(Faulty::default());
    let pipe = blocking(Pipe::new(Arc::clone(&store), config(8, 4)).unwrap());
    let epoch = pipe.write(0, &chunk(1)).unwrap();
    Faulty::failing(&store.panic_syncs, true);
    let waited = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pipe.wait(epoch)));
    assert!(
        waited.is_err(),
        "the panic reaches the thread that ran the step"
    );
    assert_eq!(notified(&pipe), (1, 1));
    let internal = crate::StoreError::new(crate::StoreErrorKind::Internal, crate::Op::Sync);
    assert_eq!(pipe.pipe().poisoned(), Some(Error::Poisoned(internal)));
    assert_eq!(pipe.wait(epoch), Err(Error::Poisoned(internal)));
}

/// A waiter whose batch is held for gathering sleeps until it is due — once, not in a spin —
/// then commits it.
#[test]
fn a_waiter_sleeps_while_its_batch_gathers() {
    let pipe = blocking(Pipe::new(MemStore::new(), config(8, 4)).unwrap());
    let first = pipe.write(0, &chunk(1)).unwrap();
    // Two waiters on the first batch: the next one gathers two before it is sealed.
    pipe.pipe().request_durable(first);
    pipe.wait(first).unwrap();
    let waits = pipe.signals().0.waits.get();
    let second = pipe.write(1, &chunk(2)).unwrap();
    pipe.wait(second).unwrap();
    assert_eq!(
        pipe.signals().0.waits.get(),
        waits + 1,
        "one sleep, until the batch was due"
    );
    assert_eq!(
        pipe.now(),
        Instant::ZERO.saturating_add(crate::engine::GATHER)
    );
}

/// A writer short of staging that a transaction holds is woken when the transaction gives the
/// staging back: dropped, or committed with part of its reservation unused.
#[test]
fn a_transaction_giving_staging_back_wakes_a_writer_waiting_for_it() {
    let pipe = blocking(Pipe::new(MemStore::new(), config(8, 2)).unwrap());
    let tx = pipe.transaction(2).unwrap();
    assert_eq!(pipe.pipe().try_write(0, &chunk(1)), Err(Error::WouldBlock));
    drop(tx);
    assert_eq!(
        notified(&pipe),
        (1, 0),
        "the writer that found staging full"
    );
    let mut tx = pipe.transaction(2).unwrap();
    tx.write(1, &chunk(1)).unwrap();
    assert_eq!(pipe.pipe().try_write(0, &chunk(1)), Err(Error::WouldBlock));
    tx.commit().unwrap();
    assert_eq!(notified(&pipe), (2, 0), "the unused slot is free");
    let tx = pipe.transaction(1).unwrap();
    drop(tx);
    assert_eq!(notified(&pipe), (2, 0), "nobody waited");
    let mut tx = pipe.transaction(1).unwrap();
    tx.write(2, &chunk(1)).unwrap();
    assert_eq!(pipe.pipe().try_write(0, &chunk(1)), Err(Error::WouldBlock));
    tx.commit().unwrap();
    assert_eq!(
        notified(&pipe),
        (2, 0),
        "a reservation used in full frees nothing"
    );
    assert!(pipe.pipe().lock().writers_waiting, "the writer still waits");
}

/// The blocking pipe reports what recovery found, as the pipe does.
#[test]
fn the_recovery_report_is_the_pipes() {
    let pipe =
        blocking(Pipe::with_journal(MemStore::new(), MemStore::new(), atomic_config()).unwrap());
    let report = pipe.recovery().expect("Journal::Atomic recovers");
    assert!(report.created);
    assert_eq!(Some(report), pipe.pipe().recovery());
    let off = blocking(Pipe::new(MemStore::new(), config(8, 4)).unwrap());
    assert_eq!(off.recovery(), None);
}

/// `sync` commits what is pending on this thread and returns once it is durable; with nothing
/// pending it returns at once; a poisoned pipe fails it.
#[test]
fn sync_makes_everything_written_durable() {
    let pipe = blocking(Pipe::new(MemStore::new(), config(8, 4)).unwrap());
    assert_eq!(pipe.sync(), Ok(()));
    assert_eq!(notified(&pipe), (0, 0), "nothing pending: returns at once");
    let epoch = pipe.write(0, &chunk(1)).unwrap();
    assert_eq!(pipe.sync(), Ok(()));
    assert_eq!(pipe.pipe().durable_epoch(), epoch);
    assert_eq!(store_chunk(pipe.pipe().store(), 0), chunk(1));
    pipe.fail_stop();
    assert!(matches!(pipe.sync(), Err(Error::Poisoned(_))));
}

/// The blocking pipe and its transactions show what they wrap.
#[test]
fn debug_output_names_the_pipe_and_the_transaction() {
    let pipe = blocking(Pipe::new(MemStore::new(), config(8, 4)).unwrap());
    let shown = std::format!("{pipe:?}");
    assert!(shown.starts_with("BlockingPipe { pipe: Pipe {"), "{shown}");
    let tx = pipe.transaction(2).unwrap();
    let shown = std::format!("{tx:?}");
    assert!(
        shown.starts_with("Transaction {") && shown.contains("reserved: 2"),
        "{shown}"
    );
}

/// `wait_timeout` gives up when the time runs out — here the batch is held for gathering past
/// it — and returns `true` once the epoch is durable.
#[test]
fn wait_timeout_gives_up_in_time_and_succeeds_once_durable() {
    let pipe = blocking(Pipe::new(MemStore::new(), config(8, 4)).unwrap());
    let first = pipe.write(0, &chunk(1)).unwrap();
    pipe.pipe().request_durable(first);
    pipe.wait(first).unwrap();
    let second = pipe.write(1, &chunk(2)).unwrap();
    let short = Duration::from_micros(10);
    assert_eq!(
        pipe.wait_timeout(second, short),
        Ok(false),
        "held for the other waiter"
    );
    assert_eq!(pipe.now(), Instant::ZERO.saturating_add(short));
    let waits = pipe.signals().0.waits.get();
    assert_eq!(pipe.wait_timeout(second, Duration::from_secs(1)), Ok(true));
    assert_eq!(
        pipe.signals().0.waits.get(),
        waits,
        "the batch is due by now: it leads the commit and returns without a sleep"
    );
    assert_eq!(pipe.durable_epoch(), second);
    assert_eq!(pipe.stats().batches, 2);
    assert_eq!(pipe.len_chunks(), 8);
}

/// `close` with nobody else running: it commits what is staged itself (`Journal::Off` leaves
/// the background nothing), and the pipe refuses writes from then on.
#[test]
fn close_commits_what_is_staged_and_refuses_later_writes() {
    let pipe = blocking(Pipe::new(MemStore::new(), config(8, 4)).unwrap());
    let epoch = pipe.write(2, &chunk(5)).unwrap();
    pipe.close().unwrap();
    assert_eq!(pipe.durable_epoch(), epoch);
    assert_eq!(store_chunk(pipe.pipe().store(), 2), chunk(5));
    assert_eq!(pipe.write(3, &chunk(6)), Err(Error::Closed));
}
