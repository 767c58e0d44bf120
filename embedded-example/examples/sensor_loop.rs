//! The embedded sensor log's main loop, run on the host: readings recorded durably, a reset
//! (the log dropped without a close, RAM kept), and the log resumed with every acknowledged
//! reading there whole. On a microcontroller the same code runs over static buffers.
//!
//! `cargo run -p chunkpipe-embedded-example --example sensor_loop`.

use chunkpipe_embedded_example::{Buffers, SLOTS, SensorLog};

fn main() {
    // On a device: a `static mut` or `.bss` section; here, on the heap.
    let mut buffers = Box::new(Buffers::new());
    let (staging, data, journal) = buffers.split();
    let (data_len, journal_len) = (data.len(), journal.len());
    {
        let log = SensorLog::start(staging, data, journal).expect("a fresh log");
        for tick in 0..100u32 {
            // Durable when it returns: the main loop ran the pipe's steps itself.
            log.record(tick, (tick * 7 % 1000) as u16)
                .expect("recorded");
        }
        println!(
            "recorded 100 readings in {} batches",
            log.pipe().stats().batches
        );
        // A reset: no close, the RAM keeps its contents.
    }
    let (staging, data, journal) = buffers.split();
    let log = SensorLog::resume(staging, (data, data_len), (journal, journal_len))
        .expect("recovered after the reset");
    let first = 100 - SLOTS as u32;
    for tick in first..100 {
        assert_eq!(log.latest(tick).unwrap(), Some((tick * 7 % 1000) as u16));
    }
    println!("after the reset: the last {SLOTS} readings are all there");
    log.close().expect("closed");
}
