//! The `Journal::Atomic` engine on RAM stores: the commit, applies, checkpoints, recovery, and
//! the wakes each step returns.

use std::sync::Arc;

use super::*;
use crate::journal::format::{RECORD_AREA_START, half_range, record_bytes};

const NOW: Instant = Instant::ZERO;

type Stores = (Arc<MemStore<'static>>, Arc<MemStore<'static>>);

fn atomic_config() -> Config {
    config(8, 4)
        .with_journal(Journal::Atomic)
        .with_journal_bytes(64 * 1024)
}

fn open(stores: &Stores, config: Config) -> Pipe<'static, Arc<MemStore<'static>>> {
    Pipe::with_journal(Arc::clone(&stores.0), Arc::clone(&stores.1), config).unwrap()
}

fn stores() -> Stores {
    (Arc::new(MemStore::new()), Arc::new(MemStore::new()))
}

/// What a commit returns: its epoch is durable; and, when enough published batches wait to be
/// written in place (two, or one on close), that the background has work.
fn committed(epoch: Epoch, apply_due: bool) -> Wake {
    Wake {
        durable: Some(epoch),
        background: apply_due,
        ..Wake::default()
    }
}

/// Syncs a checkpoint makes with the default config: the data store's, the checksum table's
/// and the superblock's.
const CHECKPOINT_SYNCS: u64 = 3;

#[test]
fn a_batch_is_durable_at_its_journal_sync_and_written_in_place_by_the_background() {
    let stores = stores();
    let pipe = open(&stores, atomic_config());
    let first = pipe.try_write(3, &chunk(7)).unwrap();
    assert_eq!(
        pipe.flush_step(NOW),
        Ok(committed(first, false)),
        "nobody had to ask"
    );
    assert_eq!(pipe.durable_epoch(), first);
    assert_eq!(store_chunk(&stores.0, 3), chunk(0), "not in place yet");
    assert_eq!(
        pipe.read(3, 1).unwrap(),
        chunk(7),
        "reads see it from staging"
    );
    let idle_at = NOW.saturating_add(atomic_config().flush_interval);
    assert_eq!(
        pipe.next_background_at(NOW),
        Some(idle_at),
        "one batch waits for the next"
    );
    let second = pipe.try_write(4, &chunk(8)).unwrap();
    assert_eq!(pipe.flush_step(NOW), Ok(committed(second, true)));
    assert_eq!(
        pipe.next_background_at(NOW),
        Some(NOW),
        "two: writing them in place is due"
    );
    assert_eq!(
        pipe.background_step(NOW),
        Ok(Wake::default()),
        "nobody waited for them"
    );
    assert_eq!(store_chunk(&stores.0, 3), chunk(7), "written in place");
    assert_eq!(store_chunk(&stores.0, 4), chunk(8), "written in place");
    let stats = pipe.stats();
    let record = record_bytes(1, CHUNK as u64);
    let chunk_bytes = CHUNK as u64;
    assert_eq!(
        (stats.journal_bytes, stats.in_place_bytes),
        (2 * record, 2 * chunk_bytes)
    );
    assert_eq!((stats.syncs, stats.batches), (2, 2));
    let amplification = (record + chunk_bytes) as f64 / chunk_bytes as f64;
    assert_eq!(stats.write_amplification(CHUNK as u32), Some(amplification));
}

/// Writing published batches in place frees staging, which only a writer short of it waits
/// for: the apply wakes waiters only when one did (an epoch waiter gains nothing from a
/// wake-up per batch).
#[test]
fn an_apply_wakes_writers_only_when_one_waited_for_staging() {
    let stores = stores();
    let pipe = open(&stores, atomic_config().with_staging_chunks(1));
    let nobody_waited = pipe.try_write(0, &chunk(1)).unwrap();
    assert_eq!(pipe.flush_step(NOW), Ok(committed(nobody_waited, false)));
    assert_eq!(pipe.background_step(NOW), Ok(Wake::default()));

    let published = pipe.try_write(1, &chunk(2)).unwrap();
    assert_eq!(pipe.flush_step(NOW), Ok(committed(published, false)));
    assert_eq!(pipe.try_write(2, &chunk(3)), Err(Error::WouldBlock));
    let writers = Wake {
        writers: true,
        ..Wake::default()
    };
    assert_eq!(pipe.background_step(NOW), Ok(writers));
    assert!(pipe.try_write(2, &chunk(3)).is_ok());
}

/// Each published batch holds a batch plan until it is in place. When they hold every spare
/// one, the commit writes them in place itself rather than wait for the background step — and
/// wakes the writer their staging frees.
#[test]
fn a_commit_applies_the_published_batches_when_they_hold_every_spare_plan() {
    let stores = stores();
    let pipe = open(&stores, atomic_config().with_staging_chunks(3));
    for i in 0..3u8 {
        let epoch = pipe.try_write(u64::from(i), &chunk(i + 1)).unwrap();
        assert_eq!(pipe.flush_step(NOW), Ok(committed(epoch, i > 0)));
    }
    assert_eq!(pipe.try_write(3, &chunk(4)), Err(Error::WouldBlock));
    let writers = Wake {
        writers: true,
        ..Wake::default()
    };
    assert_eq!(pipe.flush_step(NOW), Ok(writers));
    assert_eq!(store_chunk(&stores.0, 2), chunk(3), "in place");
    let epoch = pipe.try_write(3, &chunk(4)).unwrap();
    assert_eq!(pipe.flush_step(NOW), Ok(committed(epoch, false)));
}

/// With staging to spare, three published batches still hold every spare batch plan: the
/// next commit writes them in place first, though no writer waits.
#[test]
fn a_commit_with_no_spare_plan_applies_first() {
    let stores = stores();
    let pipe = open(&stores, atomic_config().with_staging_chunks(8));
    for i in 0..3u8 {
        let epoch = pipe.try_write(u64::from(i), &chunk(i + 1)).unwrap();
        assert_eq!(pipe.flush_step(NOW), Ok(committed(epoch, i > 0)));
    }
    assert_eq!(store_chunk(&stores.0, 0), chunk(0), "none in place yet");
    let epoch = pipe.try_write(3, &chunk(4)).unwrap();
    assert_eq!(pipe.flush_step(NOW), Ok(committed(epoch, false)));
    assert_eq!(store_chunk(&stores.0, 2), chunk(3), "applied by the commit");
}

/// A RAM store that records its writes (offset, buffers, bytes) and the writeback hints
/// it is given (offset, length).
#[derive(Default)]
struct Recorder {
    inner: MemStore<'static>,
    writes: std::sync::Mutex<Vec<(u64, usize, u64)>>,
    hints: std::sync::Mutex<Vec<(u64, u64)>>,
}

impl ChunkStore for Recorder {
    fn len(&self) -> Result<u64, crate::StoreError> {
        self.inner.len()
    }
    fn read_at(&self, offset: u64, bufs: &mut [&mut [u8]]) -> Result<(), crate::StoreError> {
        self.inner.read_at(offset, bufs)
    }
    fn write_at(&self, offset: u64, bufs: &[&[u8]]) -> Result<(), crate::StoreError> {
        let bytes = bufs.iter().map(|b| b.len() as u64).sum();
        let record = (offset, bufs.len(), bytes);
        self.writes.lock().unwrap().push(record);
        self.inner.write_at(offset, bufs)
    }
    fn grow(&self, new_len: u64) -> Result<(), crate::StoreError> {
        self.inner.grow(new_len)
    }
    fn sync(&self) -> Result<(), crate::StoreError> {
        self.inner.sync()
    }
    fn start_writeback(&self, offset: u64, len: u64) -> Result<(), crate::StoreError> {
        self.hints.lock().unwrap().push((offset, len));
        Ok(())
    }
}

/// Writing a batch in place starts writeback of each stretch of at least a mebibyte of
/// consecutive chunks in it, and of nothing else: scattered chunks are left to the checkpoint's
/// data sync.
#[test]
#[cfg_attr(miri, ignore = "megabytes of checksums: too slow under Miri")]
fn an_apply_starts_writeback_of_bulk_stretches_only() {
    const HALF_MIB: usize = 512 * 1024;
    let config = Config::new()
        .with_chunk_size(HALF_MIB as u32)
        .with_initial_chunks(16)
        .with_staging_chunks(6)
        .with_journal(Journal::Atomic)
        .with_journal_bytes(16 << 20);
    let data = Arc::new(Recorder::default());
    let journal = Arc::new(Recorder::default());
    let pipe = Pipe::with_journal(Arc::clone(&data), journal, config).unwrap();
    // Chunks 2..5 are consecutive (from two writes): 1.5 MiB; 8 and 10 are not.
    pipe.try_write(2, &[1; 2 * HALF_MIB]).unwrap();
    pipe.try_write(4, &[2; HALF_MIB]).unwrap();
    pipe.try_write(8, &[3; HALF_MIB]).unwrap();
    pipe.try_write(10, &[4; HALF_MIB]).unwrap();
    assert!(pipe.flush_step(NOW).unwrap().durable.is_some());
    assert!(
        data.hints.lock().unwrap().is_empty(),
        "hinted before its apply"
    );
    pipe.background_step(NOW).unwrap();
    let stretch = (2 * HALF_MIB as u64, 3 * HALF_MIB as u64);
    assert_eq!(*data.hints.lock().unwrap(), [stretch]);

    // Consecutive chunks under a mebibyte are left to the checkpoint too.
    pipe.try_write(12, &[5; HALF_MIB]).unwrap();
    assert!(pipe.flush_step(NOW).unwrap().durable.is_some());
    pipe.background_step(NOW).unwrap();
    assert_eq!(*data.hints.lock().unwrap(), [stretch]);
}

/// In-place data is not left to pile up for the checkpoint's data sync: after every 8 MiB
/// written in place the background starts writeback of the whole data store (chunks here are
/// scattered, so no stretch starts its own).
#[test]
#[cfg_attr(miri, ignore = "megabytes of checksums: too slow under Miri")]
fn the_background_paces_writeback_every_8_mib_in_place() {
    const HALF_MIB: usize = 512 * 1024;
    let config = Config::new()
        .with_chunk_size(HALF_MIB as u32)
        .with_initial_chunks(40)
        .with_staging_chunks(4)
        .with_journal(Journal::Atomic)
        .with_journal_bytes(32 << 20);
    let data = Arc::new(Recorder::default());
    let pipe =
        Pipe::with_journal(Arc::clone(&data), Arc::new(Recorder::default()), config).unwrap();
    let whole_file = (0, 40 * HALF_MIB as u64);
    for round in 0..4u64 {
        // Four scattered chunks (2 MiB) a round: the fourth round crosses 8 MiB.
        for i in 0..4 {
            pipe.try_write(round * 10 + i * 2, &[1; HALF_MIB]).unwrap();
        }
        assert!(pipe.flush_step(NOW).unwrap().durable.is_some());
        pipe.background_step(NOW).unwrap();
        let hints = data.hints.lock().unwrap().clone();
        let expected = if round == 3 {
            std::vec![whole_file]
        } else {
            Vec::new()
        };
        assert_eq!(hints, expected, "round {round}");
    }
}

/// A fresh journal is written once, front to back, in vectored calls of up to 256 buffers (one
/// call per chunk made a 64 MiB journal 16,384 direct writes), ending in a tail shorter than a
/// chunk where its length asks for one.
#[test]
fn formatting_writes_the_journal_once_in_few_calls() {
    let journal_bytes = 64 * 1024 + 5;
    let config = atomic_config().with_journal_bytes(journal_bytes);
    let journal = Arc::new(Recorder::default());
    let pipe = Pipe::with_journal(Arc::default(), Arc::clone(&journal), config).unwrap();
    drop(pipe);
    let writes = journal.writes.lock().unwrap();
    // The record area, then the checksum table's two slots for the data store.
    let table_chunks = Some(config.initial_chunks);
    let journal_len = crate::journal::format::journal_len(journal_bytes, table_chunks).unwrap();
    assert!(journal_len > journal_bytes);
    let mut at = 0;
    let mut calls = 0;
    for &(offset, bufs, bytes) in writes.iter() {
        if at == journal_len {
            break; // the zeros are done; superblocks follow
        }
        assert_eq!(offset, at, "front to back, once");
        assert!(bufs <= 256, "{bufs} buffers in one call");
        (at, calls) = (at + bytes, calls + 1);
    }
    assert_eq!(at, journal_len);
    let per_call = 256 * CHUNK as u64;
    assert_eq!(
        calls,
        journal_len / per_call + 1,
        "full calls, then the tail"
    );
}

#[test]
fn reopening_replays_what_was_not_written_in_place_and_continues_epochs() {
    let stores = stores();
    let pipe = open(&stores, atomic_config());
    let mut tx = pipe.transaction(2).unwrap();
    tx.write(1, &chunk(1)).unwrap();
    tx.write(6, &chunk(6)).unwrap();
    let epoch = tx.commit().unwrap();
    pipe.flush_step(NOW).unwrap();
    drop(pipe); // a crash: the batch is only in the journal
    assert_eq!(store_chunk(&stores.0, 1), chunk(0));
    let pipe = open(&stores, atomic_config());
    let report = pipe.recovery().unwrap();
    assert_eq!(
        (report.replayed, report.last_epoch, report.torn_tail),
        (1, epoch, false)
    );
    assert_eq!(
        (store_chunk(&stores.0, 1), store_chunk(&stores.0, 6)),
        (chunk(1), chunk(6))
    );
    assert_eq!(
        pipe.durable_epoch(),
        epoch,
        "epochs continue across the reopen"
    );
    assert_eq!(pipe.try_write(0, &chunk(2)), Ok(epoch.next()));
}

#[test]
fn recovery_stops_at_a_damaged_last_record() {
    let stores = stores();
    let pipe = open(&stores, atomic_config());
    let first = pipe.try_write(0, &chunk(1)).unwrap();
    pipe.flush_step(NOW).unwrap();
    pipe.try_write(1, &chunk(2)).unwrap();
    pipe.flush_step(NOW).unwrap();
    drop(pipe);
    // Flip one payload byte of the second record. The first open formatted the journal and
    // recovered it, which starts appends in a new lap: at the start of half 1.
    let (records_at, _) = half_range(atomic_config().journal_bytes, 1);
    let second = records_at + record_bytes(1, CHUNK as u64);
    stores.1.write_at(second + 512, &[&[0xff]]).unwrap();
    let pipe = open(&stores, atomic_config());
    let report = pipe.recovery().unwrap();
    assert_eq!(
        (report.replayed, report.last_epoch, report.torn_tail),
        (1, first, true)
    );
    assert_eq!(pipe.durable_epoch(), first);
    assert_eq!(
        (store_chunk(&stores.0, 0), store_chunk(&stores.0, 1)),
        (chunk(1), chunk(0))
    );
}

/// In place is not settled: a close also waits for the checkpoint that covers the batches.
#[test]
fn a_close_waits_for_the_checkpoint_after_the_batches_are_in_place() {
    let stores = stores();
    let pipe = open(&stores, atomic_config());
    let epoch = pipe.try_write(2, &chunk(5)).unwrap();
    assert_eq!(pipe.flush_step(NOW), Ok(committed(epoch, false)));
    let crate::engine::Engine::Atomic(atomic) = &pipe.engine else {
        unreachable!("a journaled pipe")
    };
    assert_eq!(atomic.apply(&pipe.shared), Ok(Wake::default()));
    assert_eq!(store_chunk(&stores.0, 2), chunk(5), "in place");
    assert!(pipe.try_close().is_pending(), "not checkpointed yet");
    pipe.background_step(NOW).unwrap();
    assert!(matches!(pipe.try_close(), core::task::Poll::Ready(Ok(()))));
}

/// A close waits until everything is in place and checkpointed; the checkpoint that settles
/// it wakes the close.
#[test]
fn close_checkpoints_so_a_reopen_replays_nothing() {
    let stores = stores();
    let pipe = open(&stores, atomic_config());
    let epoch = pipe.try_write(2, &chunk(5)).unwrap();
    assert!(pipe.try_close().is_pending());
    assert_eq!(
        pipe.flush_step(NOW),
        Ok(committed(epoch, true)),
        "closing: apply at once"
    );
    assert!(
        pipe.try_close().is_pending(),
        "not in place and checkpointed yet"
    );
    let settled = Wake {
        settled: true,
        ..Wake::default()
    };
    assert_eq!(pipe.background_step(NOW), Ok(settled));
    assert!(matches!(pipe.try_close(), core::task::Poll::Ready(Ok(()))));
    drop(pipe);
    let pipe = open(&stores, atomic_config());
    let report = pipe.recovery().unwrap();
    assert_eq!(
        (report.replayed, report.last_epoch),
        (0, epoch),
        "nothing to replay"
    );
    assert_eq!(store_chunk(&stores.0, 2), chunk(5));
}

/// Without a background step, commits still go on: each writes the published batches in place
/// when they hold every spare plan, and checkpoints itself when appends need a half no
/// checkpoint freed (and counts that).
#[test]
fn without_a_background_step_commits_checkpoint_themselves_and_keep_every_batch() {
    let stores = stores();
    let config = atomic_config().with_journal_bytes(RECORD_AREA_START + 3 * 1024);
    let pipe = open(&stores, config);
    for round in 1..=20u8 {
        let epoch = pipe.try_write(u64::from(round % 8), &chunk(round)).unwrap();
        assert_eq!(
            pipe.flush_step(NOW).map(|wake| wake.durable),
            Ok(Some(epoch))
        );
    }
    assert!(pipe.stats().commits_behind_checkpoints > 0);
    drop(pipe);
    let pipe = open(&stores, config);
    for index in 0..8u64 {
        let last = (1..=20u8)
            .rev()
            .find(|r| u64::from(r % 8) == index)
            .unwrap();
        assert_eq!(pipe.read(index, 1).unwrap(), chunk(last), "chunk {index}");
    }
    assert_eq!(pipe.durable_epoch(), Epoch::new(20));
}

/// With a background step beside them, commits only append: the background frees the half
/// appends left as soon as its batches are in place.
#[test]
fn the_background_frees_each_half_so_commits_only_append() {
    let stores = stores();
    // Records of this config take 1024 bytes: three fit in each half.
    let config = atomic_config().with_journal_bytes(RECORD_AREA_START + 6 * 1024);
    let pipe = open(&stores, config);
    let mut checkpoints = 0;
    for round in 1..=40u8 {
        pipe.try_write(u64::from(round % 8), &chunk(round)).unwrap();
        let syncs = pipe.stats().syncs;
        pipe.flush_step(NOW).unwrap();
        assert_eq!(
            pipe.stats().syncs,
            syncs + 1,
            "round {round}: one journal sync"
        );
        // One batch waits to be written in place: only a half to free makes the background
        // due at once.
        let due_now = pipe.next_background_at(NOW) == Some(NOW);
        pipe.background_step(NOW).unwrap();
        let background_syncs = pipe.stats().syncs - syncs - 1;
        assert!(background_syncs == 0 || background_syncs == CHECKPOINT_SYNCS);
        assert_eq!(
            due_now,
            background_syncs > 0,
            "round {round}: due at once exactly when the half appends left is to be freed"
        );
        checkpoints += u32::from(background_syncs > 0);
    }
    assert!(
        checkpoints >= 12,
        "a checkpoint per half switch: {checkpoints}"
    );
    assert_eq!(pipe.stats().commits_behind_checkpoints, 0);
    drop(pipe);
    let pipe = open(&stores, config);
    for index in 0..8u64 {
        let last = (1..=40u8)
            .rev()
            .find(|r| u64::from(r % 8) == index)
            .unwrap();
        assert_eq!(pipe.read(index, 1).unwrap(), chunk(last), "chunk {index}");
    }
    assert_eq!(pipe.durable_epoch(), Epoch::new(40));
}

/// A background that goes to sleep while a batch is being committed finds nothing to do and
/// no deadline (the batch is neither open nor published): the publish must wake it, since it
/// starts the idle checkpoint's clock — else nothing ever checkpoints an idle pipe.
#[test]
fn a_publish_wakes_a_background_that_went_to_sleep_during_the_commit() {
    type HookPipe = Pipe<'static, Arc<Faulty>>;
    let journal = Arc::new(Faulty::default());
    let config = atomic_config();
    let pipe: Arc<HookPipe> = Arc::new(
        Pipe::with_journal(Arc::new(Faulty::default()), Arc::clone(&journal), config).unwrap(),
    );
    let parked = Arc::new(std::sync::Mutex::new(None));
    let (during_commit, saw) = (Arc::downgrade(&pipe), Arc::clone(&parked));
    *journal.on_sync.lock().unwrap() = Some(std::boxed::Box::new(move || {
        let pipe = during_commit.upgrade().unwrap();
        *saw.lock().unwrap() = Some(pipe.park_background(NOW));
    }));
    let epoch = pipe.try_write(1, &chunk(3)).unwrap();
    assert_eq!(
        pipe.flush_step(NOW),
        Ok(committed(epoch, true)),
        "the publish wakes the sleeping background"
    );
    assert_eq!(
        *parked.lock().unwrap(),
        Some(None),
        "the background slept without a deadline during the commit's journal sync"
    );
    let idle_at = NOW.saturating_add(config.flush_interval);
    assert_eq!(pipe.next_background_at(NOW), Some(idle_at));
    assert_eq!(
        pipe.background_step(NOW),
        Ok(Wake::default()),
        "writes it in place"
    );
    let epoch = pipe.try_write(2, &chunk(4)).unwrap();
    assert_eq!(
        pipe.flush_step(NOW),
        Ok(committed(epoch, false)),
        "woken once: a background that has not gone back to sleep is not woken again"
    );
}

/// An idle pipe checkpoints `flush_interval` after its last publish, so recovery stays short;
/// one with a batch open or being committed does not, however long ago the last publish was.
#[test]
fn an_idle_checkpoint_waits_for_flush_interval_and_an_idle_pipe() {
    let stores = stores();
    let pipe = open(&stores, atomic_config());
    let interval = atomic_config().flush_interval;
    pipe.try_write(1, &chunk(3)).unwrap();
    pipe.flush_step(NOW).unwrap();
    assert_eq!(
        pipe.background_step(NOW),
        Ok(Wake::default()),
        "writes it in place"
    );
    let later = NOW.saturating_add(interval);
    assert_eq!(
        pipe.next_background_at(NOW),
        Some(later),
        "then checkpoints when idle"
    );

    pipe.try_write(2, &chunk(4)).unwrap();
    let syncs = pipe.stats().syncs;
    let aged_at = later.saturating_add(interval);
    assert_eq!(
        pipe.next_background_at(later),
        Some(aged_at),
        "only the open batch ages"
    );
    assert_eq!(pipe.background_step(later), Ok(Wake::default()));
    assert_eq!(
        pipe.stats().syncs,
        syncs,
        "no checkpoint while a batch is open"
    );

    let epoch = pipe.try_write(3, &chunk(5)).unwrap();
    assert_eq!(pipe.flush_step(later), Ok(committed(epoch, false)));
    assert_eq!(
        pipe.background_step(later),
        Ok(Wake::default()),
        "writes it in place"
    );
    let idle_at = later.saturating_add(interval);
    assert_eq!(pipe.next_background_at(later), Some(idle_at));
    assert_eq!(pipe.background_step(idle_at), Ok(Wake::default()));
    assert_eq!(pipe.stats().syncs, syncs + 1 + CHECKPOINT_SYNCS);
    assert_eq!(
        pipe.next_background_at(idle_at),
        None,
        "every record covered"
    );
}

#[test]
fn a_journal_of_another_chunk_size_is_a_mismatch() {
    let stores = stores();
    drop(open(&stores, atomic_config()));
    let other = atomic_config().with_chunk_size(16);
    assert!(matches!(
        Pipe::with_journal(Arc::clone(&stores.0), Arc::clone(&stores.1), other),
        Err(Error::Mismatch(_))
    ));
}

#[test]
fn a_failed_journal_sync_poisons_and_publishes_nothing() {
    let journal = Arc::new(Faulty::default());
    let pipe = Pipe::with_journal(
        Arc::new(Faulty::default()),
        Arc::clone(&journal),
        atomic_config(),
    )
    .unwrap();
    let epoch = pipe.try_write(0, &chunk(1)).unwrap();
    Faulty::failing(&journal.fail_syncs, true);
    let failure = crate::StoreError::new(crate::StoreErrorKind::Io, crate::Op::Sync);
    assert_eq!(pipe.flush_step(NOW), Err(Error::Poisoned(failure)));
    assert_eq!(
        pipe.poll_durable(epoch),
        core::task::Poll::Ready(Err(Error::Poisoned(failure)))
    );
    assert_eq!(pipe.lock().pool.available(), 4, "its staging is free");
    assert_eq!(pipe.stats().syncs, 1, "the failed sync was made");
    assert_eq!(pipe.background_step(NOW), Err(Error::Poisoned(failure)));
    assert_eq!(pipe.next_background_at(NOW), None);
    assert_eq!(pipe.next_flush_at(NOW), None);
}

#[test]
fn a_failed_apply_poisons_the_pipe() {
    let data = Arc::new(Faulty::default());
    let pipe = Pipe::with_journal(
        Arc::clone(&data),
        Arc::new(Faulty::default()),
        atomic_config(),
    )
    .unwrap();
    let epoch = pipe.try_write(0, &chunk(1)).unwrap();
    assert_eq!(pipe.flush_step(NOW), Ok(committed(epoch, false)));
    Faulty::failing(&data.fail_writes, true);
    let failure = crate::StoreError::new(crate::StoreErrorKind::Io, crate::Op::Write);
    assert_eq!(pipe.background_step(NOW), Err(Error::Poisoned(failure)));
    assert_eq!(
        pipe.poll_durable(epoch),
        core::task::Poll::Ready(Ok(())),
        "it was durable"
    );
    assert!(matches!(pipe.read(0, 1), Err(Error::Poisoned(_))));
}

/// A writer short of staging that published batches hold makes the commit write them in place
/// itself — though spare batch plans are left — and wakes it.
#[test]
fn a_commit_applies_when_a_writer_waits_for_staging() {
    let stores = stores();
    let pipe = open(&stores, atomic_config().with_staging_chunks(2));
    let epoch = pipe.try_write(0, &[1; 2 * CHUNK]).unwrap();
    assert_eq!(pipe.flush_step(NOW), Ok(committed(epoch, false)));
    assert_eq!(pipe.try_write(2, &chunk(3)), Err(Error::WouldBlock));
    let writers = Wake {
        writers: true,
        ..Wake::default()
    };
    assert_eq!(pipe.flush_step(NOW), Ok(writers));
    assert_eq!(store_chunk(&stores.0, 1), chunk(1), "in place");
}

/// A closing pipe with nothing left to write in place gives the background nothing to do.
#[test]
fn a_closing_pipe_with_nothing_queued_has_no_background_work() {
    let stores = stores();
    let pipe = open(&stores, atomic_config());
    assert!(pipe.try_close().is_ready());
    assert_eq!(pipe.next_background_at(NOW), None);
}
