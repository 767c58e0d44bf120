//! The `log` events an operator must see (feature `log` of the core): what recovery found, a
//! pipe poisoned, a slow background step.

use std::sync::{Arc, Mutex, OnceLock};

use chunkpipe_core::{Config, Error, Instant, Journal, MemStore, Pipe, ThreadedPipe};
use chunkpipe_tests::FaultyStore;

/// Every record logged in this test binary.
fn logged() -> &'static Mutex<Vec<(log::Level, String)>> {
    struct Capture(Mutex<Vec<(log::Level, String)>>);
    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata<'_>) -> bool {
            true
        }
        fn log(&self, record: &log::Record<'_>) {
            let line = (record.level(), record.args().to_string());
            self.0.lock().unwrap().push(line);
        }
        fn flush(&self) {}
    }
    static CAPTURE: OnceLock<&'static Capture> = OnceLock::new();
    let capture = CAPTURE.get_or_init(|| {
        let capture = Box::leak(Box::new(Capture(Mutex::new(Vec::new()))));
        log::set_logger(capture).expect("the only logger");
        log::set_max_level(log::LevelFilter::Info);
        capture
    });
    &capture.0
}

fn was_logged(level: log::Level, text: &str) -> bool {
    (logged().lock().unwrap().iter()).any(|(l, line)| *l == level && line.contains(text))
}

fn config() -> Config {
    Config::new()
        .with_chunk_size(512)
        .with_initial_chunks(8)
        .with_staging_chunks(8)
        .with_journal_bytes(64 * 1024)
}

#[test]
fn a_poisoned_pipe_is_an_error_event() {
    logged();
    let store = FaultyStore::new(MemStore::new());
    store.fail_next_sync();
    let pipe = ThreadedPipe::start(store, config().with_journal(Journal::Off)).unwrap();
    assert!(matches!(
        pipe.write_durable(0, &[1; 512]),
        Err(Error::Poisoned(_))
    ));
    assert!(was_logged(log::Level::Error, "pipe poisoned, reopen it"));
    let _ = pipe.close();
}

#[test]
fn what_recovery_replayed_is_an_info_event() {
    logged();
    let (data, journal) = (Arc::new(MemStore::new()), Arc::new(MemStore::new()));
    let open = || Pipe::with_journal(Arc::clone(&data), Arc::clone(&journal), config()).unwrap();
    let pipe = open();
    let epoch = pipe.try_write(3, &[7; 512]).unwrap();
    assert_eq!(pipe.flush_step(Instant::ZERO).unwrap().durable, Some(epoch));
    // A crash: the batch is only in the journal.
    drop(pipe);
    let reopened = open();
    assert_eq!(reopened.recovery().unwrap().replayed, 1);
    let expected = format!("recovered up to epoch {}: 1 records replayed", epoch.get());
    assert!(was_logged(log::Level::Info, &expected));
}

/// Waits (a few seconds at most) until the background thread has made `epoch` durable.
fn durable_by_background<S: chunkpipe_core::ChunkStore + Send + Sync + 'static>(
    pipe: &ThreadedPipe<S>,
    epoch: chunkpipe_core::Epoch,
) {
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while pipe.durable_epoch() < epoch {
        assert!(std::time::Instant::now() < give_up, "never durable");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// A background step of 100 ms or more is a warning; quick ones say nothing.
#[test]
fn only_a_slow_background_step_is_a_warning() {
    logged();
    let slow_step = "a background step (in-place writes, checkpoint) took";
    let config = config()
        .with_journal(Journal::Off)
        .with_flush_interval(std::time::Duration::from_millis(1));
    let quick = ThreadedPipe::start(MemStore::new(), config).unwrap();
    // Nobody waits: the background commits the batch, in a quick step.
    durable_by_background(&quick, quick.write(0, &[1; 512]).unwrap());
    quick.close().unwrap();
    // Its steps took microseconds; only one preempted for 100 ms could log (then as such).
    let quick_step = format!("{slow_step} 0 ms");
    assert!(!was_logged(log::Level::Warn, &quick_step), "a quick step");

    let pipe = ThreadedPipe::start(FaultyStore::new(MemStore::new()), config).unwrap();
    pipe.pipe().store().close_gate();
    let epoch = pipe.write(0, &[1; 512]).unwrap();
    pipe.pipe().store().wait_until_sync_held();
    std::thread::sleep(std::time::Duration::from_millis(120));
    pipe.pipe().store().open_gate();
    durable_by_background(&pipe, epoch);
    pipe.close().unwrap();
    assert!(was_logged(log::Level::Warn, slow_step));
}
