//! Unit tests of the sans-IO pipe, driven by hand over a [`MemStore`].

use std::vec::Vec;

use crate::{ChunkStore, Config, Epoch, Error, Instant, Journal, MemStore, Pipe};

const CHUNK: usize = 8;

fn config(chunks: u64, staging: u32) -> Config {
    Config::new()
        .with_chunk_size(CHUNK as u32)
        .with_initial_chunks(chunks)
        .with_staging_chunks(staging)
        .with_journal(Journal::Off)
}

fn pipe(chunks: u64, staging: u32) -> Pipe<'static, MemStore<'static>> {
    Pipe::new(MemStore::new(), config(chunks, staging)).unwrap()
}

fn chunk(byte: u8) -> [u8; CHUNK] {
    [byte; CHUNK]
}

fn store_chunk(pipe: &Pipe<'_, MemStore<'_>>, index: u64) -> [u8; CHUNK] {
    let mut out = [0; CHUNK];
    pipe.store()
        .read_at(index * CHUNK as u64, &mut [&mut out])
        .unwrap();
    out
}

#[test]
fn epochs_start_at_one_and_batches_share_them() {
    let pipe = pipe(8, 8);
    assert_eq!(pipe.durable_epoch(), Epoch::NONE);
    let a = pipe.try_write(0, &chunk(1)).unwrap();
    let b = pipe.try_write(1, &chunk(2)).unwrap();
    assert_eq!((a, b), (Epoch::new(1), Epoch::new(1)));
    assert_eq!(pipe.flush_step(Instant::ZERO), Ok(Some(a)));
    let c = pipe.try_write(2, &chunk(3)).unwrap();
    assert_eq!(c, Epoch::new(2));
    assert_eq!(pipe.flush_step(Instant::ZERO), Ok(Some(c)));
    assert_eq!(
        pipe.flush_step(Instant::ZERO),
        Ok(None),
        "nothing left to do"
    );
    assert_eq!(pipe.stats().batches, 2);
}

#[test]
fn a_write_is_durable_only_after_its_flush_step() {
    let pipe = pipe(4, 4);
    let epoch = pipe.try_write(2, &chunk(9)).unwrap();
    assert!(pipe.poll_durable(epoch).is_pending());
    assert_eq!(
        store_chunk(&pipe, 2),
        chunk(0),
        "not written before the flush step"
    );
    assert_eq!(pipe.stats().write_amplification(CHUNK as u32), None);
    pipe.flush_step(Instant::ZERO).unwrap();
    assert!(matches!(
        pipe.poll_durable(epoch),
        core::task::Poll::Ready(Ok(()))
    ));
    assert_eq!(store_chunk(&pipe, 2), chunk(9));
    assert_eq!(
        pipe.stats().write_amplification(CHUNK as u32),
        Some(1.0),
        "Journal::Off writes each chunk once"
    );
}

#[test]
fn last_writer_wins_within_a_batch_in_store_and_reads() {
    let pipe = pipe(4, 8);
    pipe.try_write(1, &chunk(1)).unwrap();
    let mut two = Vec::from(chunk(2));
    two.extend_from_slice(&chunk(3));
    pipe.try_write(0, &two).unwrap();
    pipe.try_write(1, &chunk(4)).unwrap();
    assert_eq!(
        pipe.read(1, 1).unwrap(),
        chunk(4),
        "staged reads see the newest write"
    );
    pipe.flush_step(Instant::ZERO).unwrap();
    assert_eq!(store_chunk(&pipe, 1), chunk(4));
    assert_eq!(store_chunk(&pipe, 0), chunk(2));
}

#[test]
fn full_staging_is_would_block_and_frees_after_publish() {
    let pipe = pipe(8, 2);
    pipe.try_write(0, &chunk(1)).unwrap();
    pipe.try_write(1, &chunk(1)).unwrap();
    assert_eq!(pipe.try_write(2, &chunk(1)), Err(Error::WouldBlock));
    assert!(matches!(pipe.transaction(1), Err(Error::WouldBlock)));
    pipe.flush_step(Instant::ZERO).unwrap();
    assert!(pipe.try_write(2, &chunk(1)).is_ok());
}

#[test]
fn writes_larger_than_staging_are_too_large() {
    let pipe = pipe(8, 2);
    let three = [0u8; 3 * CHUNK];
    assert_eq!(
        pipe.try_write(0, &three),
        Err(Error::TooLarge {
            chunks: 3,
            capacity: 2
        })
    );
    assert!(matches!(
        pipe.transaction(3),
        Err(Error::TooLarge {
            chunks: 3,
            capacity: 2
        })
    ));
}

#[test]
fn transactions_join_one_batch_only_at_commit() {
    let pipe = pipe(8, 8);
    let mut tx = pipe.transaction(3).unwrap();
    tx.write(0, &chunk(1)).unwrap();
    tx.write(5, &chunk(2)).unwrap();
    assert_eq!(
        pipe.read(0, 1).unwrap(),
        chunk(0),
        "uncommitted writes are invisible"
    );
    assert_eq!(
        pipe.flush_step(Instant::ZERO),
        Ok(None),
        "nothing joined yet"
    );
    let epoch = tx.commit().unwrap();
    assert_eq!(pipe.read(5, 1).unwrap(), chunk(2));
    assert_eq!(pipe.flush_step(Instant::ZERO), Ok(Some(epoch)));
    assert_eq!(
        (store_chunk(&pipe, 0), store_chunk(&pipe, 5)),
        (chunk(1), chunk(2))
    );
}

#[test]
fn transaction_limits_and_drop_release_staging() {
    let pipe = pipe(8, 4);
    let tx = pipe.transaction(2).unwrap();
    assert_eq!(
        tx.commit(),
        Err(Error::InvalidInput("commit of an empty transaction"))
    );
    let mut tx = pipe.transaction(2).unwrap();
    tx.write(0, &chunk(1)).unwrap();
    assert_eq!(
        tx.write(1, &[0; 2 * CHUNK]),
        Err(Error::TooLarge {
            chunks: 3,
            capacity: 2
        })
    );
    assert!(
        matches!(pipe.transaction(3), Err(Error::WouldBlock)),
        "2 of 4 slots are held"
    );
    drop(tx);
    let all = pipe
        .transaction(4)
        .expect("dropping the transaction released its slots");
    drop(all);
    assert_eq!(pipe.read(0, 1).unwrap(), chunk(0));
}

#[test]
fn bad_input_is_an_error_value() {
    let pipe = pipe(4, 4);
    let bad_len = Error::InvalidInput("buffer length must be a non-zero multiple of chunk_size");
    assert_eq!(pipe.try_write(0, &[]), Err(bad_len));
    assert_eq!(pipe.try_write(0, &[0; CHUNK + 1]), Err(bad_len));
    assert_eq!(
        pipe.try_write(4, &chunk(0)),
        Err(Error::OutOfRange {
            index: 4,
            count: 1,
            len_chunks: 4
        })
    );
    assert_eq!(
        pipe.try_write(u64::MAX, &chunk(0)),
        Err(Error::OutOfRange {
            index: u64::MAX,
            count: 1,
            len_chunks: 4
        })
    );
    assert!(matches!(pipe.read(3, 2), Err(Error::OutOfRange { .. })));
    assert!(matches!(
        pipe.read(0, u64::MAX),
        Err(Error::OutOfRange { .. })
    ));
    assert!(matches!(pipe.request_grow(0), Err(Error::InvalidInput(_))));
    assert!(matches!(
        pipe.request_grow(u64::MAX),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        pipe.poll_durable(Epoch::new(7)),
        core::task::Poll::Ready(Err(Error::InvalidInput(_)))
    ));
}

#[test]
fn grow_is_handled_by_the_flush_step() {
    let pipe = pipe(2, 4);
    let ticket = pipe.request_grow(3).unwrap();
    assert_eq!(ticket.target_chunks(), 5);
    assert!(pipe.poll_grow(&ticket).is_pending());
    assert!(matches!(
        pipe.try_write(4, &chunk(1)),
        Err(Error::OutOfRange { .. })
    ));
    assert_eq!(pipe.next_flush_at(Instant::ZERO), Some(Instant::ZERO));
    pipe.flush_step(Instant::ZERO).unwrap();
    assert!(matches!(
        pipe.poll_grow(&ticket),
        core::task::Poll::Ready(Ok(5))
    ));
    assert_eq!(pipe.store().len(), Ok(5 * CHUNK as u64));
    assert!(pipe.try_write(4, &chunk(1)).is_ok());
}

#[test]
fn sync_and_close_report_what_is_pending() {
    let pipe = pipe(4, 4);
    assert_eq!(
        pipe.request_sync(),
        Ok(None),
        "nothing pending: returns at once"
    );
    let epoch = pipe.try_write(0, &chunk(1)).unwrap();
    assert_eq!(pipe.request_sync(), Ok(Some(epoch)));
    assert!(pipe.try_close().is_pending());
    assert_eq!(pipe.try_write(1, &chunk(1)), Err(Error::Closed));
    pipe.flush_step(Instant::ZERO).unwrap();
    assert!(matches!(pipe.try_close(), core::task::Poll::Ready(Ok(()))));
}

/// `Journal::Off` once someone runs checkpoint steps: a flush step writes its batch in place,
/// frees its staging and leaves the sync; it writes one more batch meanwhile and then waits; one
/// checkpoint step syncs once and publishes both; a closing pipe's flush step syncs itself.
#[test]
fn checkpoint_steps_sync_what_flush_steps_wrote_in_place() {
    let now = Instant::ZERO;
    let pipe = pipe(8, 1);
    assert_eq!(pipe.checkpoint_step(now), Ok(false), "nothing owed yet");
    let first = pipe.try_write(0, &chunk(1)).unwrap();
    let report = pipe.step(now).unwrap();
    assert_eq!(report.written, Some(first));
    assert_eq!((report.published, report.sync_owed), (None, true));
    assert_eq!(store_chunk(&pipe, 0), chunk(1));
    assert!(pipe.poll_durable(first).is_pending());
    let second = pipe
        .try_write(1, &chunk(2))
        .expect("staging freed once written in place");
    assert_eq!(pipe.step(now).unwrap().written, Some(second));
    let third = pipe.try_write(2, &chunk(3)).unwrap();
    let waiting = pipe.step(now).unwrap();
    assert_eq!(waiting.written, None, "two batches ahead of the syncs");
    assert!(waiting.sync_owed && !waiting.progressed());
    assert_eq!(pipe.next_flush_at(now), None, "the checkpointer wakes it");
    assert_eq!(pipe.next_checkpoint_at(now), Some(now));
    assert_eq!(store_chunk(&pipe, 2), chunk(0));
    let syncs = pipe.stats().syncs;
    assert_eq!(pipe.checkpoint_step(now), Ok(true));
    assert_eq!(pipe.durable_epoch(), second);
    assert_eq!((pipe.stats().syncs, pipe.stats().batches), (syncs + 1, 2));
    assert_eq!(pipe.next_checkpoint_at(now), None);
    assert!(pipe.try_close().is_pending());
    assert_eq!(
        pipe.flush_step(now),
        Ok(Some(third)),
        "closing: it syncs itself"
    );
    assert!(pipe.try_close().is_ready());
    assert_eq!(store_chunk(&pipe, 2), chunk(3));
}

/// `Journal::Off` with a checkpointer: a threaded flusher syncs a batch it wrote in place
/// itself when nothing else is coming, but hands the sync over when the batch freed staging a
/// writer was waiting for (that writer forms the next batch, written while this one syncs).
#[test]
fn a_flusher_hands_the_sync_over_when_a_blocked_writer_forms_the_next_batch() {
    use crate::blocking::syncs_itself;
    let now = Instant::ZERO;
    let pipe = pipe(8, 1);
    assert_eq!(pipe.checkpoint_step(now), Ok(false), "a checkpointer runs");
    pipe.try_write(0, &chunk(1)).unwrap();
    let alone = pipe.step(now).unwrap();
    assert!(alone.written.is_some() && alone.sync_owed && !alone.staging_freed);
    assert!(syncs_itself(&alone), "nothing to write meanwhile");
    assert!(pipe.sync_step(now).unwrap().is_some());

    pipe.try_write(1, &chunk(2)).unwrap();
    assert_eq!(pipe.try_write(2, &chunk(3)), Err(Error::WouldBlock));
    let freed = pipe.step(now).unwrap();
    assert!(freed.written.is_some() && freed.sync_owed && freed.staging_freed);
    assert!(
        !syncs_itself(&freed),
        "the blocked writer forms the next batch"
    );

    pipe.try_write(2, &chunk(3)).unwrap();
    let next = pipe.step(now).unwrap();
    assert!(
        next.written.is_some(),
        "written in place before the last one synced"
    );
    assert_eq!(pipe.checkpoint_step(now), Ok(true));
    assert_eq!(store_chunk(&pipe, 2), chunk(3));
}

#[test]
fn max_batch_delay_holds_a_batch_until_it_passes_or_a_sync_asks() {
    let config = config(4, 4)
        .with_max_batch_delay(core::time::Duration::from_micros(50))
        .with_flush_interval(core::time::Duration::from_millis(1));
    let pipe = Pipe::new(MemStore::new(), config).unwrap();
    let t0 = Instant::from_nanos(1_000);
    let epoch = pipe.try_write(0, &chunk(1)).unwrap();
    assert_eq!(pipe.flush_step(t0), Ok(None));
    assert_eq!(pipe.next_flush_at(t0), Some(Instant::from_nanos(51_000)));
    assert_eq!(pipe.flush_step(Instant::from_nanos(50_999)), Ok(None));
    assert_eq!(
        pipe.flush_step(Instant::from_nanos(51_000)),
        Ok(Some(epoch))
    );
    let next = pipe.try_write(0, &chunk(2)).unwrap();
    pipe.request_sync().unwrap();
    assert_eq!(
        pipe.flush_step(Instant::from_nanos(60_000)),
        Ok(Some(next)),
        "sync skips the delay"
    );
}

#[test]
fn works_without_an_allocator_in_lent_memory() {
    let config = config(4, 2);
    let mut staging = [0u8; 1024];
    assert!(config.staging_memory_bytes() <= staging.len());
    let mut disk = [0u8; 4 * CHUNK];
    let memory = crate::StagingMemory::new(&mut staging);
    let pipe = Pipe::new_in(MemStore::in_buffer(&mut disk), config, memory).unwrap();
    let epoch = pipe.try_write(3, &chunk(5)).unwrap();
    assert_eq!(pipe.flush_step(Instant::ZERO), Ok(Some(epoch)));
    let mut out = [0u8; CHUNK];
    pipe.read_into(3, &mut out).unwrap();
    assert_eq!(out, chunk(5));
}

#[test]
fn a_store_of_the_wrong_length_is_refused() {
    let store = MemStore::new();
    store.grow(CHUNK as u64 + 3).unwrap();
    assert!(matches!(
        Pipe::new(store, config(0, 2)),
        Err(Error::InvalidInput(_))
    ));
}

#[test]
fn a_writer_blocked_on_full_staging_ends_the_batch_delay() {
    let config = config(4, 1)
        .with_max_batch_delay(core::time::Duration::from_millis(1))
        .with_flush_interval(core::time::Duration::from_millis(10));
    let pipe = Pipe::new(MemStore::new(), config).unwrap();
    let epoch = pipe.try_write(0, &chunk(1)).unwrap();
    assert_eq!(
        pipe.flush_step(Instant::ZERO),
        Ok(None),
        "the delay holds the batch"
    );
    assert_eq!(pipe.try_write(1, &chunk(2)), Err(Error::WouldBlock));
    assert_eq!(pipe.next_flush_at(Instant::ZERO), Some(Instant::ZERO));
    assert_eq!(
        pipe.flush_step(Instant::ZERO),
        Ok(Some(epoch)),
        "sealed at once"
    );
}

#[test]
fn staging_memory_follows_the_documented_formula() {
    for (slots, chunk) in [(1u32, 8u32), (4, 64), (63, 512), (1024, 4096)] {
        let (s, c) = (slots as usize, chunk as usize);
        let header = (44 + 12 * s).div_ceil(512) * 512;
        let formula = s * c + header + c + 5 * s * 16 + (2 * s).next_power_of_two() * 16 + 7;
        let config = Config::new()
            .with_chunk_size(chunk)
            .with_staging_chunks(slots);
        assert_eq!(config.staging_memory_bytes(), formula, "{slots} × {chunk}");
    }
}

/// The `Pipe` value itself (staging aside) stays small: under 1.25 KiB, here with `std` and in
/// the embedded example with the core alone (`embedded-example/src/lib.rs`).
#[test]
fn a_pipe_value_stays_small() {
    let size = core::mem::size_of::<Pipe<'static, MemStore<'static>>>();
    assert!(
        size < 1280,
        "Pipe<MemStore> is {size} bytes; update the Config docs"
    );
}

mod atomic {
    //! `Journal::Atomic` on RAM stores: commit, apply, checkpoint, recovery.

    use std::sync::Arc;

    use super::*;
    use crate::journal::format::{RECORD_AREA_START, half_range, record_bytes};

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

    fn data_chunk(stores: &Stores, index: u64) -> [u8; CHUNK] {
        let mut out = [0; CHUNK];
        stores
            .0
            .read_at(index * CHUNK as u64, &mut [&mut out])
            .unwrap();
        out
    }

    #[test]
    fn a_batch_is_durable_at_its_journal_sync_and_written_in_place_next_step() {
        let stores = stores();
        let pipe = open(&stores, atomic_config());
        let epoch = pipe.try_write(3, &chunk(7)).unwrap();
        assert_eq!(pipe.flush_step(Instant::ZERO), Ok(Some(epoch)));
        assert_eq!(pipe.durable_epoch(), epoch);
        assert_eq!(data_chunk(&stores, 3), chunk(0), "not in place yet");
        assert_eq!(
            pipe.read(3, 1).unwrap(),
            chunk(7),
            "reads see it from staging"
        );
        assert_eq!(
            pipe.next_flush_at(Instant::ZERO),
            Some(Instant::ZERO),
            "applying is work"
        );
        assert_eq!(pipe.flush_step(Instant::ZERO), Ok(None));
        assert_eq!(data_chunk(&stores, 3), chunk(7), "written in place");
        let stats = pipe.stats();
        let record = crate::journal::format::record_bytes(1, CHUNK as u64);
        assert_eq!(
            (stats.journal_bytes, stats.in_place_bytes),
            (record, CHUNK as u64)
        );
        let amplification = (record + CHUNK as u64) as f64 / CHUNK as f64;
        assert_eq!(stats.write_amplification(CHUNK as u32), Some(amplification));
    }

    /// Writing published batches in place frees staging, which only a writer short of it
    /// waits for: the apply says so only when one did (an epoch waiter gains nothing from a
    /// wake-up per batch), in the flush step and in the checkpoint step alike.
    #[test]
    fn an_apply_wakes_waiters_only_when_a_writer_waited_for_staging() {
        let stores = stores();
        let pipe = open(&stores, atomic_config().with_staging_chunks(1));
        let now = Instant::ZERO;
        let nobody_waited = pipe.try_write(0, &chunk(1)).unwrap();
        assert_eq!(pipe.flush_step(now), Ok(Some(nobody_waited)));
        let applied = pipe.step(now).unwrap();
        assert!(applied.applied && !applied.staging_freed && !applied.progressed());

        let published = pipe.try_write(1, &chunk(2)).unwrap();
        assert_eq!(pipe.flush_step(now), Ok(Some(published)));
        assert_eq!(pipe.try_write(2, &chunk(3)), Err(Error::WouldBlock));
        let applied = pipe.step(now).unwrap();
        assert!(applied.applied && applied.staging_freed && applied.progressed());

        let published = pipe.try_write(2, &chunk(3)).unwrap();
        assert_eq!(
            pipe.checkpoint_step(now),
            Ok(false),
            "now in the background"
        );
        assert_eq!(pipe.flush_step(now), Ok(Some(published)));
        let work = pipe.checkpoint_work(now).unwrap();
        assert!(work.done && !work.wakes_waiters, "nobody waited");
        let published = pipe.try_write(3, &chunk(4)).unwrap();
        assert_eq!(pipe.flush_step(now), Ok(Some(published)));
        assert_eq!(pipe.try_write(4, &chunk(5)), Err(Error::WouldBlock));
        let work = pipe.checkpoint_work(now).unwrap();
        assert!(
            work.done && work.wakes_waiters,
            "a writer waited for staging"
        );
        assert_eq!(data_chunk(&stores, 3), chunk(4));
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
            self.writes
                .lock()
                .unwrap()
                .push((offset, bufs.len(), bytes));
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
    /// consecutive chunks in it, and of nothing else: scattered chunks are left to the
    /// checkpoint's data sync.
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
        let now = Instant::ZERO;
        // Chunks 2..5 are consecutive (from two writes): 1.5 MiB; 8 and 10 are not.
        pipe.try_write(2, &[1; 2 * HALF_MIB]).unwrap();
        pipe.try_write(4, &[2; HALF_MIB]).unwrap();
        pipe.try_write(8, &[3; HALF_MIB]).unwrap();
        pipe.try_write(10, &[4; HALF_MIB]).unwrap();
        assert!(pipe.flush_step(now).unwrap().is_some());
        assert!(
            data.hints.lock().unwrap().is_empty(),
            "hinted before its apply"
        );
        assert!(pipe.step(now).unwrap().applied);
        let stretch = (2 * HALF_MIB as u64, 3 * HALF_MIB as u64);
        assert_eq!(*data.hints.lock().unwrap(), [stretch]);

        // Consecutive chunks under a mebibyte are left to the checkpoint too.
        pipe.try_write(12, &[5; HALF_MIB]).unwrap();
        assert!(pipe.flush_step(now).unwrap().is_some());
        assert!(pipe.step(now).unwrap().applied);
        assert_eq!(*data.hints.lock().unwrap(), [stretch]);
    }

    /// A fresh journal is written once, front to back, in vectored calls of up to 256
    /// buffers (one call per chunk made a 64 MiB journal 16,384 direct writes), ending in a
    /// tail shorter than a chunk where its length asks for one.
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
        pipe.flush_step(Instant::ZERO).unwrap();
        drop(pipe); // a crash: the batch is only in the journal
        assert_eq!(data_chunk(&stores, 1), chunk(0));
        let pipe = open(&stores, atomic_config());
        let report = pipe.recovery().unwrap();
        assert_eq!(
            (report.replayed, report.last_epoch, report.torn_tail),
            (1, epoch, false)
        );
        assert_eq!(
            (data_chunk(&stores, 1), data_chunk(&stores, 6)),
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
    fn recovery_stops_at_a_damaged_record() {
        let stores = stores();
        let pipe = open(&stores, atomic_config());
        let first = pipe.try_write(0, &chunk(1)).unwrap();
        pipe.flush_step(Instant::ZERO).unwrap();
        pipe.try_write(1, &chunk(2)).unwrap();
        pipe.flush_step(Instant::ZERO).unwrap();
        drop(pipe);
        // Flip one payload byte of the second record. The first open formatted the journal
        // and recovered it, which starts appends in a new lap: at the start of half 1.
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
            (data_chunk(&stores, 0), data_chunk(&stores, 1)),
            (chunk(1), chunk(0))
        );
    }

    #[test]
    fn close_checkpoints_so_a_reopen_replays_nothing() {
        let stores = stores();
        let pipe = open(&stores, atomic_config());
        let epoch = pipe.try_write(2, &chunk(5)).unwrap();
        assert!(pipe.try_close().is_pending());
        pipe.flush_step(Instant::ZERO).unwrap();
        assert!(
            pipe.try_close().is_pending(),
            "applied and checkpointed only at the next step"
        );
        pipe.flush_step(Instant::ZERO).unwrap();
        assert!(matches!(pipe.try_close(), core::task::Poll::Ready(Ok(()))));
        drop(pipe);
        let pipe = open(&stores, atomic_config());
        let report = pipe.recovery().unwrap();
        assert_eq!(
            (report.replayed, report.last_epoch),
            (0, epoch),
            "old-generation records are not replayed"
        );
        assert_eq!(data_chunk(&stores, 2), chunk(5));
    }

    #[test]
    fn a_full_journal_checkpoints_and_keeps_every_batch() {
        let stores = stores();
        let config = atomic_config().with_journal_bytes(RECORD_AREA_START + 3 * 1024);
        let pipe = open(&stores, config);
        for round in 1..=20u8 {
            pipe.try_write(u64::from(round % 8), &chunk(round)).unwrap();
            pipe.flush_step(Instant::ZERO).unwrap();
        }
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

    #[test]
    fn checkpoint_steps_free_each_half_so_flush_steps_only_append() {
        let stores = stores();
        // Records of this config take 1024 bytes: three fit in each half.
        let config = atomic_config().with_journal_bytes(RECORD_AREA_START + 6 * 1024);
        let pipe = open(&stores, config);
        assert_eq!(
            pipe.checkpoint_step(Instant::ZERO),
            Ok(false),
            "nothing owed yet"
        );
        let mut taken = 0;
        for round in 1..=40u8 {
            pipe.try_write(u64::from(round % 8), &chunk(round)).unwrap();
            let syncs = pipe.stats().syncs;
            pipe.flush_step(Instant::ZERO).unwrap();
            assert_eq!(
                pipe.stats().syncs,
                syncs + 1,
                "round {round}: the flush step synced the journal once and checkpointed nothing"
            );
            taken += u32::from(pipe.checkpoint_step(Instant::ZERO).unwrap());
        }
        assert!(taken >= 12, "a checkpoint per half switch: {taken}");
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

    #[test]
    fn without_checkpoint_steps_the_flush_step_checkpoints_when_idle() {
        let stores = stores();
        let pipe = open(&stores, atomic_config());
        pipe.try_write(1, &chunk(3)).unwrap();
        pipe.flush_step(Instant::ZERO).unwrap();
        let later = Instant::ZERO.saturating_add(atomic_config().flush_interval);
        assert_eq!(
            pipe.next_flush_at(Instant::ZERO),
            Some(Instant::ZERO),
            "apply it"
        );
        pipe.flush_step(Instant::ZERO).unwrap();
        assert_eq!(
            pipe.next_flush_at(Instant::ZERO),
            Some(later),
            "then checkpoint when idle"
        );
        assert!(pipe.step(later).unwrap().checkpointed);
        assert_eq!(pipe.next_flush_at(later), None);
    }

    #[test]
    fn a_pipe_with_a_batch_open_takes_no_idle_checkpoint() {
        let stores = stores();
        let pipe = open(&stores, atomic_config());
        let interval = atomic_config().flush_interval;
        pipe.try_write(1, &chunk(3)).unwrap();
        pipe.flush_step(Instant::ZERO).unwrap();
        assert_eq!(
            pipe.checkpoint_step(Instant::ZERO),
            Ok(true),
            "writes it in place"
        );
        pipe.try_write(2, &chunk(4)).unwrap();
        let later = Instant::ZERO.saturating_add(interval);
        let syncs = pipe.stats().syncs;
        assert_eq!(pipe.next_checkpoint_at(later), None, "a batch is open");
        assert_eq!(
            pipe.checkpoint_step(later),
            Ok(false),
            "no idle checkpoint while a batch is open, however long ago the last publish was"
        );
        assert_eq!(pipe.stats().syncs, syncs);
        pipe.flush_step(later).unwrap();
        assert_eq!(pipe.checkpoint_step(later), Ok(true), "writes it in place");
        let idle_at = later.saturating_add(interval);
        assert_eq!(pipe.next_checkpoint_at(later), Some(idle_at));
        assert_eq!(
            pipe.checkpoint_step(idle_at),
            Ok(true),
            "idle now: checkpoints"
        );
        assert_eq!(
            pipe.stats().syncs,
            syncs + 3,
            "the journal's and the checkpoint's two"
        );
        assert_eq!(
            pipe.next_checkpoint_at(idle_at),
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
}

mod concurrent {
    //! Real threads over a `ThreadedPipe` (flusher and checkpointer threads included), small
    //! enough for Miri, which runs these with several scheduling seeds.

    use std::sync::Arc;

    use super::*;
    use crate::ThreadedPipe;

    #[test]
    fn writers_waiters_and_a_reader_share_a_threaded_pipe() {
        let config = config(4, 2)
            .with_journal(Journal::Atomic)
            .with_journal_bytes(crate::journal::format::RECORD_AREA_START + 4096);
        let pipe = Arc::new(
            ThreadedPipe::start_journaled(MemStore::new(), MemStore::new(), config).unwrap(),
        );
        let writers: Vec<_> = (0..2u8)
            .map(|w| {
                let pipe = Arc::clone(&pipe);
                std::thread::spawn(move || {
                    for round in 1..=3u8 {
                        pipe.write_durable(u64::from(w), &chunk(10 * w + round))
                            .unwrap();
                    }
                })
            })
            .collect();
        let reader = {
            let pipe = Arc::clone(&pipe);
            std::thread::spawn(move || {
                for _ in 0..3 {
                    for w in 0..2u8 {
                        let got = pipe.read(u64::from(w), 1).unwrap();
                        let byte = got[0];
                        assert!(got.iter().all(|&b| b == byte), "a torn chunk");
                        assert!(byte == 0 || (byte / 10 == w && byte % 10 <= 3), "{byte}");
                    }
                }
            })
        };
        for thread in writers.into_iter().chain([reader]) {
            thread.join().unwrap();
        }
        for w in 0..2u8 {
            assert_eq!(pipe.read(u64::from(w), 1).unwrap(), chunk(10 * w + 3));
        }
        Arc::try_unwrap(pipe).unwrap().close().unwrap();
    }

    /// The checkpointer sleeps until it is told of work. Here nobody tells it: the flush step
    /// writes the batch in place itself (no next batch waits), so only the flusher's idle
    /// round can wake it for the idle checkpoint that is then owed.
    #[test]
    fn an_idle_threaded_pipe_takes_its_idle_checkpoint() {
        let config = config(4, 2)
            .with_journal(Journal::Atomic)
            .with_journal_bytes(crate::journal::format::RECORD_AREA_START + 4096)
            .with_flush_interval(core::time::Duration::from_millis(1));
        let pipe = ThreadedPipe::start_journaled(MemStore::new(), MemStore::new(), config).unwrap();
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let wait_until = |what: &str, done: &dyn Fn() -> bool| {
            while !done() {
                assert!(std::time::Instant::now() < give_up, "{what}");
                std::thread::sleep(core::time::Duration::from_millis(1));
            }
        };
        // The checkpointer has taken its first step (and sleeps: nothing is owed).
        wait_until("checkpointer started", &|| {
            pipe.pipe().lock().checkpoints.in_background
        });
        pipe.write_durable(1, &chunk(7)).unwrap();
        wait_until("no idle checkpoint", &|| {
            !pipe.pipe().lock().journal_dirty()
        });
        pipe.close().unwrap();
    }
}

/// Reads skip the lock only while nothing is staged (`read.rs`): a staged write turns that off
/// until its batch is in place and its slots are free, and a poisoned pipe keeps it off. The
/// length the lock-free path checks follows a grow. Every read returns the newest data.
#[test]
fn reads_skip_the_lock_only_while_nothing_is_staged() {
    let pipe = pipe(4, 4);
    assert_eq!(pipe.read(1, 1).unwrap(), chunk(0));
    assert!(pipe.read_mirror.unstaged(), "nothing staged after open");
    pipe.try_write(1, &chunk(5)).unwrap();
    assert!(!pipe.read_mirror.unstaged(), "a staged write");
    assert_eq!(pipe.read(1, 1).unwrap(), chunk(5), "served from staging");
    pipe.flush_step(Instant::ZERO).unwrap();
    assert!(pipe.read_mirror.unstaged(), "in place, slots free");
    assert_eq!(pipe.read(1, 1).unwrap(), chunk(5), "served from the store");

    assert!(matches!(pipe.read(4, 1), Err(Error::OutOfRange { .. })));
    pipe.request_grow(2).unwrap();
    pipe.flush_step(Instant::ZERO).unwrap();
    assert!(pipe.read_mirror.unstaged());
    assert_eq!(pipe.read(5, 1).unwrap(), chunk(0), "the grown length");

    pipe.fail_stop();
    assert!(!pipe.read_mirror.unstaged(), "poisoned");
    assert!(matches!(pipe.read(1, 1), Err(Error::Poisoned(_))));
}
