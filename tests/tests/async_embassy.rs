//! Async durability on an embassy executor on the host (its std platform), the way a
//! microcontroller runs it: one executor thread, writer tasks that await their epochs, and a
//! driver task that runs the pipe's background (`Pipe::run_background_async`) with
//! embassy-time's timer. No task blocks on a wait, and each future is polled exactly twice.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use chunkpipe_core::{Clock, Config, Error, Instant, MemStore, Pipe, PipeStats};
use embassy_executor::{Executor, Spawner};

const CHUNK: usize = 64;
const TASKS: usize = 64;
const ROUNDS: u8 = 20;

type TestPipe = Pipe<'static, MemStore<'static>>;

/// embassy-time's clock as the pipe's.
struct EmbassyClock;

impl Clock for EmbassyClock {
    fn now(&self) -> Instant {
        Instant::from_nanos(
            embassy_time::Instant::now()
                .as_micros()
                .saturating_mul(1000),
        )
    }
}

/// What the executor reports back to the test thread.
struct Report {
    closed: Result<(), Error>,
    stats: PipeStats,
    polls: usize,
}

static POLLS: AtomicUsize = AtomicUsize::new(0);
static FINISHED: AtomicUsize = AtomicUsize::new(0);

#[embassy_executor::task(pool_size = TASKS)]
async fn writer(pipe: &'static TestPipe, task: usize) {
    for round in 1..=ROUNDS {
        let epoch = pipe
            .try_write(task as u64, &[round; CHUNK])
            .expect("staging holds every write in flight");
        let mut durable = pin!(pipe.durable(epoch));
        poll_fn(|cx| {
            POLLS.fetch_add(1, Ordering::Relaxed);
            durable.as_mut().poll(cx)
        })
        .await
        .unwrap();
    }
    if FINISHED.fetch_add(1, Ordering::SeqCst) + 1 == TASKS {
        // The last writer closes the pipe; the driver settles it and returns.
        let _ = pipe.try_close();
    }
}

#[embassy_executor::task]
async fn driver(pipe: &'static TestPipe, report: mpsc::Sender<Report>) {
    let sleep_until = |at: Instant| {
        embassy_time::Timer::at(embassy_time::Instant::from_micros(at.as_nanos() / 1000 + 1))
    };
    let closed = pipe.run_background_async(EmbassyClock, sleep_until).await;
    let report_back = Report {
        closed,
        stats: pipe.stats(),
        polls: POLLS.load(Ordering::Relaxed),
    };
    report.send(report_back).unwrap();
}

#[test]
fn writer_tasks_and_a_driver_task_share_one_embassy_executor() {
    let config = Config::new()
        .with_chunk_size(CHUNK as u32)
        .with_initial_chunks(TASKS as u64)
        // At most four batches of one write per task hold staging at once.
        .with_staging_chunks(4 * TASKS as u32)
        .with_journal_bytes(1 << 20);
    let pipe: &'static TestPipe = Box::leak(Box::new(
        Pipe::with_journal(MemStore::new(), MemStore::new(), config).unwrap(),
    ));
    let (report, reports) = mpsc::channel();
    std::thread::spawn(move || {
        let executor: &'static mut Executor = Box::leak(Box::new(Executor::new()));
        executor.run(|spawner: Spawner| {
            spawner.spawn(driver(pipe, report).unwrap());
            for task in 0..TASKS {
                spawner.spawn(writer(pipe, task).unwrap());
            }
        })
    });
    let report = reports
        .recv_timeout(Duration::from_secs(60))
        .expect("the executor finished within a minute");
    assert_eq!(report.closed, Ok(()));
    assert_eq!(
        report.polls,
        2 * TASKS * usize::from(ROUNDS),
        "each wait polled to register and once more after its publish"
    );
    for task in 0..TASKS {
        assert_eq!(pipe.read(task as u64, 1).unwrap(), [ROUNDS; CHUNK]);
    }
    let writes = (TASKS * usize::from(ROUNDS)) as u64;
    assert_eq!(report.stats.chunks, writes);
    assert!(
        report.stats.batches < writes / 4,
        "group commit: {} batches for {writes} writes",
        report.stats.batches
    );
}
