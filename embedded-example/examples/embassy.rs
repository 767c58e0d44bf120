//! The sensor log on an embassy executor, as firmware runs it — here on embassy's std platform:
//! a sensor task records a reading every millisecond and `.await`s its durability, while a
//! driver task runs the pipe's background (`Pipe::run_background_async`, with embassy-time's
//! timer), which commits the readings and wakes the sensor task with each publish. No task
//! blocks on a wait; no allocator is needed (the buffers would be statics on a device).
//!
//! `cargo run -p chunkpipe-embedded-example --example embassy`.

use chunkpipe_core::{Clock, Instant};
use chunkpipe_embedded_example::{Buffers, SensorLog};
use embassy_executor::{Executor, Spawner};
use embassy_time::{Duration, Timer};

const READINGS: u32 = 200;

type Log = SensorLog<'static>;

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

#[embassy_executor::task]
async fn sensor(log: &'static Log) {
    for tick in 0..READINGS {
        // Durable when the await returns.
        log.record_async(tick, (tick * 7 % 1000) as u16)
            .await
            .expect("recorded");
        Timer::after(Duration::from_millis(1)).await;
    }
    let _ = log.pipe().try_close(); // the driver settles the log and returns
}

#[embassy_executor::task]
async fn driver(log: &'static Log) {
    let sleep_until =
        |at: Instant| Timer::at(embassy_time::Instant::from_micros(at.as_nanos() / 1000 + 1));
    let pipe = log.pipe();
    pipe.run_background_async(EmbassyClock, sleep_until)
        .await
        .expect("closed");
    for tick in READINGS - 8..READINGS {
        assert_eq!(log.latest(tick).unwrap(), Some((tick * 7 % 1000) as u16));
    }
    println!(
        "{READINGS} readings durable in {} batches; the last ones read back",
        pipe.stats().batches
    );
    std::process::exit(0);
}

fn main() {
    // On a device: statics in `.bss`; here, leaked once.
    let buffers: &'static mut Buffers = Box::leak(Box::new(Buffers::new()));
    let (staging, data, journal) = buffers.split();
    let log: &'static Log = Box::leak(Box::new(
        SensorLog::start(staging, data, journal).expect("a fresh log"),
    ));
    let executor: &'static mut Executor = Box::leak(Box::new(Executor::new()));
    executor.run(|spawner: Spawner| {
        spawner.spawn(driver(log).unwrap());
        spawner.spawn(sensor(log).unwrap());
    })
}
