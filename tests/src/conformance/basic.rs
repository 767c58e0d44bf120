//! Round trips, reopen, grow, sync and epochs.

use chunkpipe_core::{ChunkStore, Epoch, Journal};

use super::{CHUNK, chunk_with, chunks_with, config, value_of};
use crate::Harness;

/// Writes of 1, 2, 4 and many chunks read back exactly: from staging, once durable, and after
/// a close and reopen (from the store alone).
pub fn round_trips_of_1_2_4_and_many_chunks<H: Harness>(h: &H) {
    let pipe = h.open(config(300, 256)).unwrap();
    let mut written = Vec::new();
    let mut at = 0;
    for (value, count) in [(1u64, 1usize), (2, 2), (3, 4), (4, 200)] {
        let data = chunks_with(value, count);
        let epoch = pipe.write(at, &data).unwrap();
        assert_eq!(
            pipe.read(at, count as u64).unwrap(),
            data,
            "staged read of {count}"
        );
        pipe.wait(epoch).unwrap();
        assert_eq!(
            pipe.read(at, count as u64).unwrap(),
            data,
            "durable read of {count}"
        );
        written.push((at, data));
        at += count as u64;
    }
    pipe.close().unwrap();
    let pipe = h.open(config(0, 256)).unwrap();
    for (at, data) in &written {
        let count = (data.len() / CHUNK) as u64;
        assert_eq!(
            &pipe.read(*at, count).unwrap(),
            data,
            "{count} chunks reached the store"
        );
    }
    assert_eq!(
        pipe.read(at, 1).unwrap(),
        chunk_with(0),
        "untouched chunks read as zeros"
    );
}

/// The newest write to a chunk wins, across batches.
pub fn overwrite_returns_the_newest_value<H: Harness>(h: &H) {
    let pipe = h.open(config(4, 8)).unwrap();
    for value in 1..=5 {
        pipe.write_durable(2, &chunk_with(value)).unwrap();
        assert_eq!(value_of(&pipe.read(2, 1).unwrap()), value);
    }
}

/// A multi-chunk write joins one batch: one epoch, durable together.
pub fn multi_chunk_write_is_one_epoch<H: Harness>(h: &H) {
    let pipe = h.open(config(16, 16)).unwrap();
    let epoch = pipe.write(3, &chunks_with(7, 8)).unwrap();
    pipe.wait(epoch).unwrap();
    assert_eq!(pipe.pipe().durable_epoch(), epoch);
    let data = pipe.read(3, 8).unwrap();
    assert!(data.chunks(CHUNK).all(|c| value_of(c) == 7));
}

/// Data written and closed is there after reopening; the length is kept.
pub fn reopen_keeps_data<H: Harness>(h: &H) {
    let pipe = h.open(config(8, 8)).unwrap();
    pipe.write(1, &chunk_with(11)).unwrap();
    pipe.write(6, &chunks_with(12, 2)).unwrap();
    pipe.close().unwrap();
    let pipe = h.open(config(0, 8)).unwrap();
    assert_eq!(pipe.pipe().len_chunks(), 8);
    assert_eq!(value_of(&pipe.read(1, 1).unwrap()), 11);
    assert_eq!(pipe.read(6, 2).unwrap(), chunks_with(12, 2));
}

/// `grow(n)` adds n chunks, durably, and only then can they be written.
pub fn grow_then_write<H: Harness>(h: &H) {
    let pipe = h.open(config(2, 4)).unwrap();
    assert_eq!(pipe.pipe().len_chunks(), 2);
    assert!(
        pipe.write(2, &chunk_with(1)).is_err(),
        "no silent extension"
    );
    assert_eq!(pipe.grow(3), Ok(5));
    assert_eq!(pipe.pipe().len_chunks(), 5);
    assert_eq!(pipe.pipe().store().len(), Ok(5 * CHUNK as u64));
    assert_eq!(
        pipe.read(4, 1).unwrap(),
        chunk_with(0),
        "grown chunks read as zeros"
    );
    pipe.write_durable(4, &chunk_with(9)).unwrap();
    pipe.close().unwrap();
    let pipe = h.open(config(0, 4)).unwrap();
    assert_eq!(pipe.pipe().len_chunks(), 5);
    assert_eq!(value_of(&pipe.read(4, 1).unwrap()), 9);
}

/// `sync` makes everything written durable; with nothing pending it returns at once.
pub fn sync_forces_durability_and_returns_at_once_when_idle<H: Harness>(h: &H) {
    let pipe = h.open(config(8, 8)).unwrap();
    pipe.sync().unwrap();
    assert_eq!(
        pipe.pipe().durable_epoch(),
        Epoch::NONE,
        "an idle sync publishes nothing"
    );
    let mut last = Epoch::NONE;
    for i in 0..4 {
        last = pipe.write(i, &chunk_with(i + 1)).unwrap();
    }
    pipe.sync().unwrap();
    assert!(pipe.pipe().durable_epoch() >= last);
    let syncs = pipe.pipe().store().successful_syncs();
    pipe.sync().unwrap();
    assert_eq!(
        pipe.pipe().store().successful_syncs(),
        syncs,
        "nothing pending: no sync issued"
    );
}

/// Epochs never go backwards: per writer they do not decrease, and the durable epoch observed
/// over time only grows and covers every waited-for write (prefix durability).
pub fn epochs_are_monotone<H: Harness>(h: &H) {
    let pipe = h.open(config(64, 32)).unwrap();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let pipe = &pipe;
            s.spawn(move || {
                let mut previous = Epoch::NONE;
                for i in 0..40 {
                    let durable_before = pipe.pipe().durable_epoch();
                    let epoch = pipe.write(t * 16 + i % 16, &chunk_with(i)).unwrap();
                    assert!(
                        epoch >= previous,
                        "epoch went back: {epoch} after {previous}"
                    );
                    assert!(
                        epoch > durable_before,
                        "a write joined an already published batch"
                    );
                    if i % 5 == 0 {
                        pipe.wait(epoch).unwrap();
                        assert!(
                            pipe.pipe().durable_epoch() >= epoch,
                            "prefix: waited epoch durable"
                        );
                    }
                    previous = epoch;
                }
            });
        }
        let mut seen = Epoch::NONE;
        for _ in 0..200 {
            let now = pipe.pipe().durable_epoch();
            assert!(now >= seen, "durable epoch went back");
            seen = now;
            std::thread::yield_now();
        }
    });
}

/// What was acknowledged durable before a crash is there after reopening, in either mode.
pub fn reopen_after_a_crash_keeps_what_was_acknowledged<H: Harness>(h: &H) {
    let pipe = h.open(config(8, 8)).unwrap();
    pipe.write_durable(2, &chunk_with(21)).unwrap();
    let epoch = pipe.write(5, &chunks_with(22, 3)).unwrap();
    pipe.wait(epoch).unwrap();
    pipe.pipe().store().crash();
    drop(pipe);
    let pipe = h.open(config(0, 8)).unwrap();
    assert_eq!(pipe.pipe().len_chunks(), 8);
    assert_eq!(value_of(&pipe.read(2, 1).unwrap()), 21);
    assert_eq!(pipe.read(5, 3).unwrap(), chunks_with(22, 3));
    if h.mode() == Journal::Atomic {
        // (Journal::Off keeps no epochs on disk; its epochs restart after a reopen.)
        assert!(pipe.pipe().durable_epoch() >= epoch, "epochs never go back");
    }
    pipe.close().unwrap();
}
