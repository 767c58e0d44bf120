//! Failures: sticky poisoning, exactly the affected waiters, no `Ok` after a failure.

use chunkpipe_core::{ChunkStore, Epoch, Error, Journal, Op, StoreErrorKind};

use super::{chunk_with, config, value_of};
use crate::Harness;

fn is_poisoned_by(result: Result<(), Error>, op: Op) -> bool {
    matches!(result, Err(Error::Poisoned(e)) if e.op == op && e.kind == StoreErrorKind::Io)
}

/// A failed sync fails its batch and every later one — and only those: an epoch durable
/// before stays `Ok`. The pipe is poisoned, and no later success releases a waiter with `Ok`.
pub fn failed_sync_fails_exactly_the_affected_waiters<H: Harness>(h: &H) {
    let pipe = h.open(config(8, 8)).unwrap();
    let store = pipe.pipe().store();
    let durable = pipe.write_durable(0, &chunk_with(1)).unwrap();
    store.close_gate();
    let failing = pipe.write(1, &chunk_with(2)).unwrap();
    store.wait_until_sync_held();
    let later = pipe.write(2, &chunk_with(3)).unwrap();
    assert_eq!(
        later,
        Epoch::new(failing.get() + 1),
        "joined the next batch"
    );
    store.fail_next_sync();
    store.open_gate();
    assert!(is_poisoned_by(pipe.wait(failing), Op::Sync));
    assert!(is_poisoned_by(pipe.wait(later), Op::Sync));
    assert_eq!(
        pipe.wait(durable),
        Ok(()),
        "an earlier durable epoch stays durable"
    );
    assert_eq!(pipe.pipe().durable_epoch(), durable);
    assert!(matches!(
        pipe.write(3, &chunk_with(4)),
        Err(Error::Poisoned(_))
    ));
    assert!(matches!(pipe.transaction(1), Err(Error::Poisoned(_))));
    assert!(
        matches!(pipe.read(0, 1), Err(Error::Poisoned(_))),
        "no reads of a failed batch"
    );
    assert!(is_poisoned_by(pipe.sync(), Op::Sync));
    let syncs = store.successful_syncs();
    assert!(store.sync().is_ok(), "the device recovers");
    assert!(store.successful_syncs() > syncs);
    assert!(
        is_poisoned_by(pipe.wait(failing), Op::Sync),
        "a later good sync changes nothing"
    );
    assert_eq!(pipe.pipe().durable_epoch(), durable);
    assert!(is_poisoned_by(pipe.close(), Op::Sync));
}

/// A failed in-place write poisons the pipe just like a failed sync, and the batch is never
/// reported durable.
pub fn failed_write_poisons_the_pipe<H: Harness>(h: &H) {
    let pipe = h.open(config(8, 8)).unwrap();
    let store = pipe.pipe().store();
    let syncs = pipe.pipe().stats().syncs;
    store.fail_next_write();
    let epoch = pipe.write(4, &chunk_with(4)).unwrap();
    assert!(is_poisoned_by(pipe.wait(epoch), Op::Write));
    assert_eq!(
        pipe.pipe().stats().syncs,
        syncs,
        "no sync after a failed write"
    );
    assert!(matches!(pipe.pipe().poisoned(), Some(Error::Poisoned(e)) if e.op == Op::Write));
    assert_eq!(pipe.pipe().durable_epoch(), Epoch::NONE);
    drop(pipe);
    let pipe = h.open(config(8, 8)).unwrap();
    assert_eq!(
        value_of(&pipe.read(4, 1).unwrap()),
        0,
        "the failed write never reached the store"
    );
}

/// `close` flushes what was written and reports the error of any failed batch; dropping a
/// pipe never panics, even poisoned.
pub fn close_reports_the_last_error<H: Harness>(h: &H) {
    let pipe = h.open(config(8, 8)).unwrap();
    let mut last = Epoch::NONE;
    for i in 0..8 {
        last = pipe.write(i, &chunk_with(i + 1)).unwrap();
    }
    pipe.close().unwrap();
    let pipe = h.open(config(8, 8)).unwrap();
    match h.mode() {
        Journal::Off => assert_eq!(
            pipe.pipe().durable_epoch(),
            Epoch::NONE,
            "Off restarts at 1"
        ),
        _ => assert_eq!(
            pipe.pipe().durable_epoch(),
            last,
            "epochs continue across a reopen"
        ),
    }
    assert!(
        (0..8).all(|i| value_of(&pipe.read(i, 1).unwrap()) == i + 1),
        "close flushed all"
    );
    pipe.pipe().store().fail_next_sync();
    pipe.write(0, &chunk_with(9)).unwrap();
    assert!(is_poisoned_by(pipe.close(), Op::Sync));
    let pipe = h.open(config(8, 8)).unwrap();
    pipe.pipe().store().fail_next_sync();
    pipe.write(1, &chunk_with(9)).unwrap();
    drop(pipe);
}

/// A store that panics inside a sync poisons the pipe: the panic goes up the thread that ran
/// the step (a writer leading its commit, or the background thread), and every waiter gets an
/// error instead of waiting forever — the batch the sync covered is never reported durable.
pub fn a_panicking_store_poisons_instead_of_hanging<H: Harness>(h: &H) {
    let pipe = h.open(config(8, 8)).unwrap();
    let durable = pipe.write_durable(0, &chunk_with(1)).unwrap();
    pipe.pipe().store().panic_next_sync();
    let epoch = pipe.write(1, &chunk_with(2)).unwrap();
    let internal = |r: &Result<(), Error>| matches!(r, Err(Error::Poisoned(e)) if e.kind == StoreErrorKind::Internal);
    // The data store syncs in this thread's commit (`Journal::Off`) or in a checkpoint (the
    // background's, or a commit's when the journal needs a half): keep syncing until it panics.
    let mut waited = Ok(());
    for round in 0..64 {
        let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pipe.wait(epoch)?;
            pipe.sync()?;
            pipe.write_durable(round % 8, &chunk_with(3))
        }));
        match step {
            Err(_panicked_here) => {
                waited = pipe.wait(epoch);
                break;
            }
            Ok(Err(e)) => {
                waited = Err(e);
                break;
            }
            Ok(Ok(_)) => {}
        }
    }
    assert!(internal(&waited) || waited.is_ok(), "{waited:?}");
    let poisoned = pipe.pipe().poisoned();
    assert!(
        matches!(poisoned, Some(Error::Poisoned(e)) if e.kind == StoreErrorKind::Internal),
        "{poisoned:?}"
    );
    assert_eq!(pipe.wait(durable), Ok(()));
    assert!(matches!(
        pipe.write(2, &chunk_with(3)),
        Err(Error::Poisoned(_))
    ));
    assert!(internal(&pipe.close()));
}
