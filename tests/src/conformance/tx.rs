//! Transactions.

use chunkpipe_core::Error;

use super::{chunk_with, config, value_of};
use crate::Harness;

/// All writes of a transaction become durable in one batch, with one epoch, and are invisible
/// until commit.
pub fn transaction_shares_one_epoch<H: Harness>(h: &H) {
    let pipe = h.open(config(16, 16)).unwrap();
    let mut tx = pipe.transaction(3).unwrap();
    tx.write(0, &chunk_with(1)).unwrap();
    tx.write(9, &chunk_with(2)).unwrap();
    tx.write(15, &chunk_with(3)).unwrap();
    assert_eq!(
        value_of(&pipe.read(9, 1).unwrap()),
        0,
        "invisible before commit"
    );
    let epoch = tx.commit().unwrap();
    pipe.wait(epoch).unwrap();
    assert_eq!(pipe.pipe().durable_epoch(), epoch, "one batch, one epoch");
    let values: Vec<u64> = [0, 9, 15]
        .iter()
        .map(|&i| value_of(&pipe.read(i, 1).unwrap()))
        .collect();
    assert_eq!(values, [1, 2, 3]);
}

/// Within a transaction, and against a plain write in the same batch, the later write wins.
pub fn transaction_last_writer_wins<H: Harness>(h: &H) {
    let pipe = h.open(config(8, 8)).unwrap();
    let mut tx = pipe.transaction(3).unwrap();
    tx.write(4, &chunk_with(1)).unwrap();
    tx.write(4, &chunk_with(2)).unwrap();
    tx.write(5, &chunk_with(3)).unwrap();
    let epoch = tx.commit().unwrap();
    let later = pipe.write(5, &chunk_with(4)).unwrap();
    pipe.wait(epoch).unwrap();
    pipe.wait(later).unwrap();
    assert_eq!(value_of(&pipe.read(4, 1).unwrap()), 2);
    assert_eq!(value_of(&pipe.read(5, 1).unwrap()), 4);
    pipe.close().unwrap();
    let pipe = h.open(config(0, 8)).unwrap();
    assert_eq!(
        value_of(&pipe.read(4, 1).unwrap()),
        2,
        "the store holds the last write"
    );
    assert_eq!(value_of(&pipe.read(5, 1).unwrap()), 4);
}

/// Transactions from several threads on disjoint chunks all commit and keep their values; each
/// transaction's chunks always read back as one unit.
pub fn concurrent_disjoint_transactions<H: Harness>(h: &H) {
    let pipe = h.open(config(32, 16)).unwrap();
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let pipe = &pipe;
            s.spawn(move || {
                for round in 1..=10u64 {
                    let value = t * 1000 + round;
                    let mut tx = pipe.transaction(4).unwrap();
                    for i in 0..4 {
                        tx.write(t * 8 + i * 2, &chunk_with(value)).unwrap();
                    }
                    let epoch = tx.commit().unwrap();
                    let seen: Vec<u64> = (0..4)
                        .map(|i| value_of(&pipe.read(t * 8 + i * 2, 1).unwrap()))
                        .collect();
                    assert_eq!(
                        seen, [value; 4],
                        "own transaction visible whole after commit"
                    );
                    pipe.wait(epoch).unwrap();
                }
            });
        }
    });
    for t in 0..4u64 {
        for i in 0..4 {
            assert_eq!(
                value_of(&pipe.read(t * 8 + i * 2, 1).unwrap()),
                t * 1000 + 10
            );
        }
    }
}

/// Committing an empty transaction is an error, and it holds no staging afterwards.
pub fn empty_commit_is_an_error<H: Harness>(h: &H) {
    let pipe = h.open(config(4, 2)).unwrap();
    let tx = pipe.transaction(2).unwrap();
    assert!(matches!(tx.commit(), Err(Error::InvalidInput(_))));
    let tx = pipe
        .transaction(2)
        .expect("the failed commit released its reservation");
    drop(tx);
    pipe.write_durable(0, &chunk_with(1)).unwrap();
}
