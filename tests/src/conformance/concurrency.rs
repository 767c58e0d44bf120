//! Real threads: writers and readers at once, backpressure, reads during syncs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::{CHUNK, chunk_with, chunks_with, config, value_of};
use crate::Harness;

/// Eight writers own eight chunks each and write rising values; two readers check that every
/// chunk they read is whole and never older than what they read before. At the end every chunk
/// holds its writer's last value.
pub fn many_threads_write_and_read_values<H: Harness>(h: &H) {
    let pipe = h.open(config(64, 32)).unwrap();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let writers: Vec<_> = (0..8u64)
            .map(|t| {
                let pipe = &pipe;
                s.spawn(move || {
                    for round in 1..=30u64 {
                        let epoch = pipe.write(t * 8 + round % 8, &chunk_with(round)).unwrap();
                        if round % 3 == 0 {
                            pipe.wait(epoch).unwrap();
                        }
                    }
                })
            })
            .collect();
        for r in 0..2u64 {
            let (pipe, done) = (&pipe, &done);
            s.spawn(move || {
                let mut newest = [0u64; 64];
                let mut i = r;
                while !done.load(Ordering::Relaxed) {
                    i = (i * 7 + 3) % 64;
                    let value = value_of(&pipe.read(i, 1).unwrap());
                    assert!(
                        value >= newest[i as usize],
                        "chunk {i} went back to {value}"
                    );
                    newest[i as usize] = value;
                }
            });
        }
        writers.into_iter().for_each(|w| w.join().unwrap());
        done.store(true, Ordering::Relaxed);
    });
    pipe.sync().unwrap();
    for chunk in 0..64u64 {
        let last = (1..=30u64)
            .rev()
            .find(|round| round % 8 == chunk % 8)
            .unwrap();
        assert_eq!(
            value_of(&pipe.read(chunk, 1).unwrap()),
            last,
            "chunk {chunk}"
        );
    }
}

/// While a sync is held, writes go on only as far as staging (and, in `Journal::Off`, the two
/// batches that may be in place ahead of the syncs) has room, then `write` blocks; once the
/// sync goes through, everything lands.
pub fn backpressure_with_a_tiny_staging_pool<H: Harness>(h: &H) {
    let pipe = h.open(config(16, 2)).unwrap();
    let store = pipe.pipe().store();
    store.close_gate();
    let first = pipe.write(0, &chunks_with(1, 2)).unwrap();
    let accepted = AtomicU64::new(0);
    std::thread::scope(|s| {
        // The first batch's commit runs on the waiter's thread and stops at the gate.
        let waiter = s.spawn(|| pipe.wait(first));
        store.wait_until_sync_held();
        let writer = s.spawn(|| {
            for i in 0..64 {
                pipe.write(1 + i % 8, &chunk_with(2)).unwrap();
                accepted.fetch_add(1, Ordering::SeqCst);
            }
        });
        // Until the writer has made no progress for 50 ms.
        let mut seen = u64::MAX;
        while accepted.load(Ordering::SeqCst) != seen {
            seen = accepted.load(Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        // Two slots; `Journal::Off` frees them twice more by writing batches in place.
        assert!(
            seen <= 4,
            "{seen} writes went through a pool of two held slots"
        );
        store.open_gate();
        writer.join().unwrap();
        waiter.join().unwrap().unwrap();
    });
    // Many writers through two slots: everything lands.
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let pipe = &pipe;
            s.spawn(move || {
                for round in 1..=20 {
                    pipe.write(4 + t * 3, &chunks_with(round, 1 + (round % 2) as usize))
                        .unwrap();
                }
            });
        }
    });
    pipe.sync().unwrap();
    for t in 0..4u64 {
        assert_eq!(value_of(&pipe.read(4 + t * 3, 1).unwrap()), 20);
    }
}

/// A reader never sees part of a multi-chunk write or of a transaction, even while steps
/// write the batches in place.
pub fn reads_never_see_part_of_a_write<H: Harness>(h: &H) {
    const SPAN: u64 = 8;
    let pipe = h.open(config(2 * SPAN, 32)).unwrap();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let writer = s.spawn(|| {
            for value in 1..=150u64 {
                if value % 2 == 0 {
                    pipe.write(0, &chunks_with(value, SPAN as usize)).unwrap();
                } else {
                    let mut tx = pipe.transaction(SPAN as u32).unwrap();
                    for i in 0..SPAN {
                        tx.write(SPAN + (i * 3) % SPAN, &chunk_with(value)).unwrap();
                    }
                    tx.commit().unwrap();
                }
                if value % 10 == 0 {
                    pipe.sync().unwrap();
                }
            }
        });
        for base in [0, SPAN] {
            let (pipe, done) = (&pipe, &done);
            s.spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    let data = pipe.read(base, SPAN).unwrap();
                    let values: Vec<u64> = data.chunks(CHUNK).map(value_of).collect();
                    assert!(
                        values.iter().all(|&v| v == values[0]),
                        "part of a write: {values:?}"
                    );
                }
            });
        }
        writer.join().unwrap();
        done.store(true, Ordering::Relaxed);
    });
}

/// While a commit is stuck in a sync, reads of other chunks and of the chunk being synced
/// complete: reads never wait on a sync.
pub fn read_completes_while_a_sync_is_blocked<H: Harness>(h: &H) {
    let pipe = h.open(config(8, 8)).unwrap();
    pipe.write_durable(5, &chunk_with(5)).unwrap();
    let store = pipe.pipe().store();
    store.close_gate();
    let epoch = pipe.write(0, &chunk_with(1)).unwrap();
    store.wait_until_sync_held();
    assert_eq!(value_of(&pipe.read(5, 1).unwrap()), 5);
    assert_eq!(
        value_of(&pipe.read(0, 1).unwrap()),
        1,
        "the batch in flight reads from staging"
    );
    assert!(
        pipe.pipe().poll_durable(epoch).is_pending(),
        "still held in its sync"
    );
    store.open_gate();
    pipe.wait(epoch).unwrap();
}
