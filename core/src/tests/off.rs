//! The `Journal::Off` engine's steps and the wakes they return.

use std::sync::Arc;

use super::*;

const NOW: Instant = Instant::ZERO;

/// A wake for the background only: a batch is in place and owes a sync nobody asked for.
const SYNC_OWED: Wake = Wake {
    durable: None,
    writers: false,
    settled: false,
    background: true,
    refused: false,
};

#[test]
fn a_batch_nobody_waits_for_is_written_in_place_and_its_sync_left_to_the_background() {
    let pipe = pipe(8, 4);
    assert_eq!(
        pipe.background_step(NOW),
        Ok(Wake::default()),
        "nothing owed yet"
    );
    assert_eq!(pipe.next_background_at(NOW), None);
    let epoch = pipe.try_write(0, &chunk(1)).unwrap();
    assert_eq!(pipe.flush_step(NOW), Ok(SYNC_OWED));
    assert_eq!(store_chunk(pipe.store(), 0), chunk(1), "in place");
    assert!(pipe.poll_durable(epoch).is_pending(), "but not synced");
    assert_eq!(pipe.stats().syncs, 0);
    assert_eq!(pipe.next_background_at(NOW), Some(NOW));
    assert_eq!(pipe.background_step(NOW), Ok(durable(epoch)));
    assert_eq!((pipe.stats().syncs, pipe.stats().batches), (1, 1));
    assert_eq!(pipe.next_background_at(NOW), None);
    assert_eq!(pipe.background_step(NOW), Ok(Wake::default()));
}

#[test]
fn a_flush_step_syncs_what_a_waiter_asked_for() {
    let pipe = pipe(8, 4);
    let epoch = pipe.try_write(0, &chunk(1)).unwrap();
    pipe.request_durable(epoch);
    assert_eq!(pipe.flush_step(NOW), Ok(durable(epoch)));
    assert_eq!(pipe.stats().syncs, 1);
    assert_eq!(pipe.next_background_at(NOW), None, "nothing owed");
}

#[test]
fn a_request_for_an_older_epoch_does_not_sync_a_newer_batch() {
    let pipe = pipe(8, 4);
    let first = pipe.try_write(0, &chunk(1)).unwrap();
    pipe.request_durable(first);
    assert_eq!(pipe.flush_step(NOW), Ok(durable(first)));
    pipe.request_durable(first);
    pipe.try_write(1, &chunk(2)).unwrap();
    assert_eq!(pipe.flush_step(NOW), Ok(SYNC_OWED));
}

/// Staging a writer waits for is free once its batch is in place, before the sync.
#[test]
fn writing_in_place_wakes_a_writer_short_of_staging() {
    let pipe = pipe(8, 1);
    pipe.try_write(0, &chunk(1)).unwrap();
    assert_eq!(pipe.try_write(1, &chunk(2)), Err(Error::WouldBlock));
    let wake = Wake {
        writers: true,
        ..SYNC_OWED
    };
    assert_eq!(pipe.flush_step(NOW), Ok(wake));
    assert!(pipe.try_write(1, &chunk(2)).is_ok());
}

/// At most two batches are in place ahead of the syncs: a flush step that would write a third
/// syncs the two instead (and says so); the next step writes it.
#[test]
fn at_most_two_batches_run_ahead_of_the_syncs() {
    let pipe = pipe(8, 1);
    pipe.try_write(0, &chunk(1)).unwrap();
    assert_eq!(pipe.flush_step(NOW), Ok(SYNC_OWED));
    let second = pipe.try_write(1, &chunk(2)).unwrap();
    assert_eq!(pipe.flush_step(NOW), Ok(SYNC_OWED));
    assert_eq!(pipe.stats().syncs, 0);
    let third = pipe.try_write(2, &chunk(3)).unwrap();
    assert_eq!(pipe.flush_step(NOW), Ok(durable(second)));
    assert_eq!((pipe.stats().syncs, pipe.durable_epoch()), (1, second));
    assert_eq!(store_chunk(pipe.store(), 2), chunk(0), "not yet");
    assert_eq!(pipe.flush_step(NOW), Ok(SYNC_OWED));
    assert_eq!(store_chunk(pipe.store(), 2), chunk(3));
    assert_eq!(pipe.background_step(NOW), Ok(durable(third)));
}

/// The background step that syncs leaves a batch that has aged to the next step: a step
/// publishes once, last.
#[test]
fn a_background_sync_leaves_the_aged_batch_to_the_next_step() {
    let pipe = pipe(8, 4);
    let first = pipe.try_write(0, &chunk(1)).unwrap();
    assert_eq!(pipe.flush_step(NOW), Ok(SYNC_OWED));
    let second = pipe.try_write(1, &chunk(2)).unwrap();
    assert_eq!(pipe.next_background_at(NOW), Some(NOW));
    let aged_at = NOW.saturating_add(pipe.config().flush_interval);
    assert_eq!(pipe.background_step(aged_at), Ok(durable(first)));
    assert_eq!(pipe.background_step(aged_at), Ok(SYNC_OWED));
    assert_eq!(pipe.background_step(aged_at), Ok(durable(second)));
}

#[test]
fn a_closing_pipe_syncs_in_its_flush_step() {
    let pipe = pipe(8, 4);
    let epoch = pipe.try_write(0, &chunk(1)).unwrap();
    assert!(pipe.try_close().is_pending());
    assert_eq!(pipe.flush_step(NOW), Ok(durable(epoch)));
    assert!(matches!(pipe.try_close(), core::task::Poll::Ready(Ok(()))));
}

/// A closing pipe with batches in place and unsynced is not settled until the background
/// step (or a flush step) syncs them.
#[test]
fn close_waits_for_an_owed_sync() {
    let pipe = pipe(8, 4);
    let epoch = pipe.try_write(0, &chunk(1)).unwrap();
    assert_eq!(pipe.flush_step(NOW), Ok(SYNC_OWED));
    assert!(pipe.try_close().is_pending());
    assert_eq!(pipe.background_step(NOW), Ok(durable(epoch)));
    assert!(pipe.try_close().is_ready());
}

/// A batch nobody leads is committed by the background step `flush_interval` after a step
/// first saw it.
#[test]
fn the_background_commits_a_batch_nobody_leads() {
    let interval = core::time::Duration::from_millis(5);
    let pipe = Pipe::new(MemStore::new(), config(8, 4).with_flush_interval(interval)).unwrap();
    let t0 = Instant::from_nanos(1_000);
    let epoch = pipe.try_write(0, &chunk(1)).unwrap();
    let aged_at = t0.saturating_add(interval);
    assert_eq!(pipe.next_background_at(t0), Some(aged_at));
    assert_eq!(pipe.background_step(t0), Ok(Wake::default()));
    assert_eq!(pipe.background_step(aged_at), Ok(SYNC_OWED));
    assert_eq!(pipe.background_step(aged_at), Ok(durable(epoch)));
}

/// The background sleeps with nothing to do; the write or transaction that opens the next batch
/// says to wake it, and only that one.
#[test]
fn the_write_opening_a_batch_wakes_a_parked_background() {
    let pipe = pipe(8, 4);
    assert_eq!(pipe.park_background(NOW), None);
    assert_eq!(
        pipe.write_noting(0, &chunk(1))
            .map(|(_, wake)| wake.background),
        Ok(true)
    );
    assert_eq!(
        pipe.write_noting(1, &chunk(1))
            .map(|(_, wake)| wake.background),
        Ok(false)
    );
    let aged_at = NOW.saturating_add(pipe.config().flush_interval);
    assert_eq!(pipe.park_background(NOW), Some(aged_at), "a batch to age");
    pipe.request_durable(pipe.try_write(2, &chunk(1)).unwrap());
    pipe.flush_step(NOW).unwrap();
    assert_eq!(pipe.park_background(NOW), None);
    let mut tx = pipe.transaction(1).unwrap();
    tx.write(3, &chunk(1)).unwrap();
    let background = Wake {
        background: true,
        ..Wake::default()
    };
    assert_eq!(tx.commit_noting().map(|(_, wake)| wake), Ok(background));
}

#[test]
fn a_failed_sync_fails_its_batches_and_every_later_one() {
    let store = Arc::new(Faulty::default());
    let pipe = Pipe::new(Arc::clone(&store), config(8, 4)).unwrap();
    let epoch = pipe.try_write(0, &chunk(1)).unwrap();
    assert_eq!(pipe.flush_step(NOW), Ok(SYNC_OWED));
    let open = pipe.try_write(3, &chunk(3)).unwrap();
    Faulty::failing(&store.fail_syncs, true);
    let failure = crate::StoreError::new(crate::StoreErrorKind::Io, crate::Op::Sync);
    assert_eq!(pipe.background_step(NOW), Err(Error::Poisoned(failure)));
    Faulty::failing(&store.fail_syncs, false);
    assert_eq!(
        pipe.poll_durable(epoch),
        core::task::Poll::Ready(Err(Error::Poisoned(failure)))
    );
    assert_eq!(pipe.try_write(1, &chunk(2)), Err(Error::Poisoned(failure)));
    assert_eq!(pipe.flush_step(NOW), Err(Error::Poisoned(failure)));
    assert_eq!(pipe.background_step(NOW), Err(Error::Poisoned(failure)));
    assert_eq!(
        pipe.durable_epoch(),
        Epoch::NONE,
        "a later sync proves nothing"
    );
    assert_eq!(
        pipe.next_background_at(NOW),
        None,
        "nothing left to do: no spinning"
    );
    assert_eq!(
        pipe.park_background(NOW),
        None,
        "not even the batch left open"
    );
    assert!(pipe.poll_durable(open).is_ready());
}

#[test]
fn a_failed_in_place_write_frees_its_staging_and_poisons() {
    let store = Arc::new(Faulty::default());
    let pipe = Pipe::new(Arc::clone(&store), config(8, 2)).unwrap();
    let epoch = pipe.try_write(0, &[1; 2 * CHUNK]).unwrap();
    Faulty::failing(&store.fail_writes, true);
    let failure = crate::StoreError::new(crate::StoreErrorKind::Io, crate::Op::Write);
    assert_eq!(pipe.flush_step(NOW), Err(Error::Poisoned(failure)));
    assert_eq!(
        pipe.poll_durable(epoch),
        core::task::Poll::Ready(Err(Error::Poisoned(failure)))
    );
    assert_eq!(pipe.lock().pool.available(), 2, "its staging is free");
    assert_eq!(pipe.stats().syncs, 0, "a failed write is no sync");
    assert!(matches!(pipe.try_close(), core::task::Poll::Ready(Err(_))));
}
