//! Unit tests of the sans-IO pipe, driven by hand over a [`MemStore`]: what every durability
//! mode shares here, each engine's steps and wakes in `off.rs` and `atomic.rs`, the blocking
//! layer's use of them in `blocking.rs`, real threads in `concurrent.rs`.

use std::vec::Vec;

use crate::{ChunkStore, Config, Epoch, Error, Instant, Journal, MemStore, Pipe, Wake};

mod atomic;
mod blocking;
mod concurrent;
mod off;
mod waiters;

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

fn store_chunk<S: ChunkStore>(store: &S, index: u64) -> [u8; CHUNK] {
    let mut out = [0; CHUNK];
    store
        .read_at(index * CHUNK as u64, &mut [&mut out])
        .unwrap();
    out
}

/// A wake that makes `epoch` durable and nothing else.
fn durable(epoch: Epoch) -> Wake {
    Wake {
        durable: Some(epoch),
        ..Wake::default()
    }
}

/// Combining two wakes keeps every reason to wake anyone (and the newer durable epoch).
#[test]
fn wakes_combine_field_by_field() {
    let fields = [
        Wake {
            writers: true,
            ..Wake::default()
        },
        Wake {
            settled: true,
            ..Wake::default()
        },
        Wake {
            background: true,
            ..Wake::default()
        },
        Wake {
            refused: true,
            ..Wake::default()
        },
        durable(Epoch::new(3)),
    ];
    for field in fields {
        let mut combined = field;
        combined |= Wake::default();
        assert_eq!(combined, field, "kept when the other wake is empty");
        let mut combined = Wake::default();
        combined |= field;
        assert_eq!(combined, field, "taken from the other wake");
    }
    let mut newer = durable(Epoch::new(5));
    newer |= durable(Epoch::new(3));
    assert_eq!(newer, durable(Epoch::new(5)));
}

/// Whom each field of a `Wake` concerns: `progress` waiters for an epoch, staging or a
/// settling; the background only for `background`. Work for the background alone is progress
/// (its runner looks for more at once) but wakes no waiter.
#[test]
fn each_wake_field_concerns_its_own_sleepers() {
    let only = |wake: Wake| (wake.waiters(), wake.progressed());
    assert_eq!(only(Wake::default()), (false, false));
    assert_eq!(only(durable(Epoch::new(1))), (true, true));
    let writers = Wake {
        writers: true,
        ..Wake::default()
    };
    let settled = Wake {
        settled: true,
        ..Wake::default()
    };
    let background = Wake {
        background: true,
        ..Wake::default()
    };
    assert_eq!(only(writers), (true, true));
    assert_eq!(only(settled), (true, true));
    assert_eq!(only(background), (false, true));
}

#[test]
fn epochs_start_at_one_and_batches_share_them() {
    let pipe = pipe(8, 8);
    assert_eq!(pipe.durable_epoch(), Epoch::NONE);
    let a = pipe.try_write(0, &chunk(1)).unwrap();
    let b = pipe.try_write(1, &chunk(2)).unwrap();
    assert_eq!((a, b), (Epoch::new(1), Epoch::new(1)));
    pipe.request_durable(a);
    assert_eq!(pipe.flush_step(Instant::ZERO), Ok(durable(a)));
    let c = pipe.try_write(2, &chunk(3)).unwrap();
    assert_eq!(c, Epoch::new(2));
    pipe.request_durable(c);
    assert_eq!(pipe.flush_step(Instant::ZERO), Ok(durable(c)));
    assert_eq!(
        pipe.flush_step(Instant::ZERO),
        Ok(Wake::default()),
        "nothing left"
    );
    assert_eq!(pipe.stats().batches, 2);
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
    assert_eq!(store_chunk(pipe.store(), 1), chunk(4));
    assert_eq!(store_chunk(pipe.store(), 0), chunk(2));
}

#[test]
fn full_staging_is_would_block_and_wakes_the_writer_once_freed() {
    let pipe = pipe(8, 2);
    pipe.try_write(0, &chunk(1)).unwrap();
    pipe.try_write(1, &chunk(1)).unwrap();
    assert_eq!(pipe.try_write(2, &chunk(1)), Err(Error::WouldBlock));
    assert!(matches!(pipe.transaction(1), Err(Error::WouldBlock)));
    let wake = pipe.flush_step(Instant::ZERO).unwrap();
    assert!(wake.writers, "{wake:?}");
    assert!(pipe.try_write(2, &chunk(1)).is_ok());
}

#[test]
fn writes_larger_than_staging_are_too_large() {
    let pipe = pipe(8, 2);
    let three = [0u8; 3 * CHUNK];
    let too_large = Error::TooLarge {
        chunks: 3,
        capacity: 2,
    };
    assert_eq!(pipe.try_write(0, &three), Err(too_large));
    assert!(matches!(pipe.transaction(3), Err(e) if e == too_large));
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
        Ok(Wake::default()),
        "nothing joined yet"
    );
    let epoch = tx.commit().unwrap();
    assert_eq!(pipe.read(5, 1).unwrap(), chunk(2));
    pipe.request_durable(epoch);
    assert_eq!(pipe.flush_step(Instant::ZERO), Ok(durable(epoch)));
    let store = pipe.store();
    assert_eq!(
        (store_chunk(store, 0), store_chunk(store, 5)),
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
    assert_eq!(tx.len_chunks(), 0);
    tx.write(0, &chunk(1)).unwrap();
    assert_eq!(tx.len_chunks(), 1);
    let too_large = Error::TooLarge {
        chunks: 3,
        capacity: 2,
    };
    assert_eq!(tx.write(1, &[0; 2 * CHUNK]), Err(too_large));
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
    for index in [4, u64::MAX] {
        let out_of_range = Error::OutOfRange {
            index,
            count: 1,
            len_chunks: 4,
        };
        assert_eq!(pipe.try_write(index, &chunk(0)), Err(out_of_range));
    }
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

/// A close waits for a grow requested before it, until a flush step has handled it.
#[test]
fn a_close_waits_for_a_pending_grow() {
    let pipe = pipe(2, 4);
    let ticket = pipe.request_grow(3).unwrap();
    assert!(pipe.try_close().is_pending(), "the grow is pending");
    pipe.flush_step(Instant::ZERO).unwrap();
    assert!(matches!(
        pipe.poll_grow(&ticket),
        core::task::Poll::Ready(Ok(5))
    ));
    assert!(matches!(pipe.try_close(), core::task::Poll::Ready(Ok(()))));
}

#[test]
fn a_grow_is_handled_by_the_flush_step_and_settles_its_waiter() {
    let pipe = pipe(2, 4);
    let ticket = pipe.request_grow(3).unwrap();
    assert_eq!(ticket.target_chunks(), 5);
    assert!(pipe.poll_grow(&ticket).is_pending());
    assert!(matches!(
        pipe.try_write(4, &chunk(1)),
        Err(Error::OutOfRange { .. })
    ));
    assert_eq!(pipe.next_flush_at(Instant::ZERO), Some(Instant::ZERO));
    let settled = Wake {
        settled: true,
        ..Wake::default()
    };
    assert_eq!(pipe.flush_step(Instant::ZERO), Ok(settled));
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
    assert!(pipe.closing());
    assert_eq!(pipe.try_write(1, &chunk(1)), Err(Error::Closed));
    assert_eq!(pipe.flush_step(Instant::ZERO), Ok(durable(epoch)));
    assert!(matches!(pipe.try_close(), core::task::Poll::Ready(Ok(()))));
}

#[test]
fn max_batch_delay_holds_a_batch_until_it_passes_or_a_sync_asks() {
    let config = config(4, 4)
        .with_max_batch_delay(core::time::Duration::from_micros(50))
        .with_flush_interval(core::time::Duration::from_millis(1));
    let pipe = Pipe::new(MemStore::new(), config).unwrap();
    let t0 = Instant::from_nanos(1_000);
    pipe.try_write(0, &chunk(1)).unwrap();
    assert_eq!(pipe.flush_step(t0), Ok(Wake::default()));
    assert_eq!(pipe.next_flush_at(t0), Some(Instant::from_nanos(51_000)));
    assert_eq!(
        pipe.flush_step(Instant::from_nanos(50_999)),
        Ok(Wake::default())
    );
    assert_eq!(
        pipe.flush_step(Instant::from_nanos(51_000))
            .map(|w| w.background),
        Ok(true)
    );
    let next = pipe.try_write(0, &chunk(2)).unwrap();
    pipe.request_sync().unwrap();
    assert_eq!(
        pipe.flush_step(Instant::from_nanos(60_000)),
        Ok(durable(next)),
        "sync skips the delay, and its sync covers the batch before too"
    );
}

#[test]
fn a_writer_blocked_on_full_staging_ends_the_batch_delay() {
    let config = config(4, 1)
        .with_max_batch_delay(core::time::Duration::from_millis(1))
        .with_flush_interval(core::time::Duration::from_millis(10));
    let pipe = Pipe::new(MemStore::new(), config).unwrap();
    pipe.try_write(0, &chunk(1)).unwrap();
    assert_eq!(
        pipe.flush_step(Instant::ZERO),
        Ok(Wake::default()),
        "the delay holds it"
    );
    assert_eq!(pipe.try_write(1, &chunk(2)), Err(Error::WouldBlock));
    assert_eq!(pipe.next_flush_at(Instant::ZERO), Some(Instant::ZERO));
    let wake = pipe.flush_step(Instant::ZERO).unwrap();
    assert!(
        wake.writers,
        "sealed at once, and its writer woken: {wake:?}"
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
    pipe.request_durable(epoch);
    assert_eq!(pipe.flush_step(Instant::ZERO), Ok(durable(epoch)));
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

/// Reads skip the lock only while nothing is staged (`read.rs`): a staged write turns that off
/// until its batch is in place and its slots are free, and a poisoned pipe keeps it off. The
/// length the lock-free path checks follows a grow. Every read returns the newest data.
#[test]
fn reads_skip_the_lock_only_while_nothing_is_staged() {
    let pipe = pipe(4, 4);
    let mirror = pipe.shared.mirror();
    assert_eq!(pipe.read(1, 1).unwrap(), chunk(0));
    assert!(mirror.unstaged(), "nothing staged after open");
    pipe.try_write(1, &chunk(5)).unwrap();
    assert!(!mirror.unstaged(), "a staged write");
    assert_eq!(pipe.read(1, 1).unwrap(), chunk(5), "served from staging");
    pipe.flush_step(Instant::ZERO).unwrap();
    assert!(mirror.unstaged(), "in place, slots free");
    assert_eq!(pipe.read(1, 1).unwrap(), chunk(5), "served from the store");

    assert!(matches!(pipe.read(4, 1), Err(Error::OutOfRange { .. })));
    pipe.request_grow(2).unwrap();
    pipe.flush_step(Instant::ZERO).unwrap();
    assert!(mirror.unstaged());
    assert_eq!(pipe.read(5, 1).unwrap(), chunk(0), "the grown length");

    pipe.fail_stop();
    assert!(!mirror.unstaged(), "poisoned");
    assert!(matches!(pipe.read(1, 1), Err(Error::Poisoned(_))));
}

/// A RAM store whose writes, syncs or grows fail, or whose syncs panic, while told to; and
/// that runs a hook, once, at its next sync, and another at its next read.
#[derive(Default)]
struct Faulty {
    on_sync: std::sync::Mutex<Option<std::boxed::Box<dyn FnOnce() + Send>>>,
    on_read: std::sync::Mutex<Option<std::boxed::Box<dyn FnOnce() + Send>>>,
    inner: MemStore<'static>,
    fail_writes: core::sync::atomic::AtomicBool,
    fail_syncs: core::sync::atomic::AtomicBool,
    panic_syncs: core::sync::atomic::AtomicBool,
    /// Grows fail with no space.
    fail_grows: core::sync::atomic::AtomicBool,
    /// Grows fail at the sync that makes the new length durable (as a file store's would).
    fail_grow_syncs: core::sync::atomic::AtomicBool,
}

impl Faulty {
    fn failing(flag: &core::sync::atomic::AtomicBool, fail: bool) {
        flag.store(fail, core::sync::atomic::Ordering::SeqCst);
    }

    fn check(
        flag: &core::sync::atomic::AtomicBool,
        op: crate::Op,
    ) -> Result<(), crate::StoreError> {
        if flag.load(core::sync::atomic::Ordering::SeqCst) {
            return Err(crate::StoreError::new(crate::StoreErrorKind::Io, op));
        }
        Ok(())
    }
}

impl ChunkStore for Faulty {
    fn len(&self) -> Result<u64, crate::StoreError> {
        self.inner.len()
    }
    fn read_at(&self, offset: u64, bufs: &mut [&mut [u8]]) -> Result<(), crate::StoreError> {
        let hook = self.on_read.lock().unwrap().take();
        if let Some(hook) = hook {
            hook();
        }
        self.inner.read_at(offset, bufs)
    }
    fn write_at(&self, offset: u64, bufs: &[&[u8]]) -> Result<(), crate::StoreError> {
        Self::check(&self.fail_writes, crate::Op::Write)?;
        self.inner.write_at(offset, bufs)
    }
    fn grow(&self, new_len: u64) -> Result<(), crate::StoreError> {
        if self.fail_grows.load(core::sync::atomic::Ordering::SeqCst) {
            let no_space = crate::StoreError::new(crate::StoreErrorKind::NoSpace, crate::Op::Grow);
            return Err(no_space);
        }
        Self::check(&self.fail_grow_syncs, crate::Op::Sync)?;
        self.inner.grow(new_len)
    }
    fn sync(&self) -> Result<(), crate::StoreError> {
        let hook = self.on_sync.lock().unwrap().take();
        if let Some(hook) = hook {
            hook();
        }
        if self.panic_syncs.load(core::sync::atomic::Ordering::SeqCst) {
            panic!("a store that panics");
        }
        Self::check(&self.fail_syncs, crate::Op::Sync)?;
        self.inner.sync()
    }
}

/// Group commit: after a publish released two waiters, the next batch someone waits for is held
/// (up to `GATHER`) until two waiters joined it, and the flush step after the second seals it;
/// a waiter alone is sealed once `GATHER` has passed.
#[test]
fn a_batch_gathers_as_many_waiters_as_the_last_publish_released() {
    const NOW: Instant = Instant::ZERO;
    let pipe = pipe(8, 8);
    let first = pipe.try_write(0, &chunk(1)).unwrap();
    pipe.request_durable(first);
    pipe.try_write(1, &chunk(1)).unwrap();
    pipe.request_durable(first);
    assert_eq!(
        pipe.flush_step(NOW),
        Ok(durable(first)),
        "nothing to gather yet"
    );
    let second = pipe.try_write(0, &chunk(2)).unwrap();
    pipe.request_durable(second);
    assert_eq!(
        pipe.flush_step(NOW),
        Ok(Wake::default()),
        "held for the other waiter"
    );
    let due = NOW.saturating_add(crate::engine::GATHER);
    assert_eq!(pipe.next_flush_at(NOW), Some(due));
    pipe.try_write(1, &chunk(2)).unwrap();
    pipe.request_durable(second);
    assert_eq!(pipe.next_flush_at(NOW), Some(NOW));
    assert_eq!(pipe.flush_step(NOW), Ok(durable(second)));

    let third = pipe.try_write(0, &chunk(3)).unwrap();
    pipe.request_durable(third);
    assert_eq!(pipe.flush_step(NOW), Ok(Wake::default()));
    assert_eq!(pipe.flush_step(due), Ok(durable(third)));
}

/// A grow that fails for lack of space fails its request, not the pipe, and the next request
/// starts from the length the store has; one that fails at the sync making the length durable
/// poisons the pipe (the store may or may not have the new length).
#[test]
fn a_failed_grow_fails_its_request_and_only_a_failed_sync_poisons() {
    use std::sync::Arc;
    let store = Arc::new(Faulty::default());
    let pipe = Pipe::new(Arc::clone(&store), config(2, 4)).unwrap();
    Faulty::failing(&store.fail_grows, true);
    let ticket = pipe.request_grow(3).unwrap();
    let settled = Wake {
        settled: true,
        ..Wake::default()
    };
    assert_eq!(pipe.flush_step(Instant::ZERO), Ok(settled));
    let no_space = crate::StoreError::new(crate::StoreErrorKind::NoSpace, crate::Op::Grow);
    assert_eq!(
        pipe.poll_grow(&ticket),
        core::task::Poll::Ready(Err(Error::Store(no_space)))
    );
    assert_eq!(
        pipe.poisoned(),
        None,
        "a grow that found no space fails alone"
    );
    Faulty::failing(&store.fail_grows, false);
    let again = pipe.request_grow(1).unwrap();
    assert_eq!(
        again.target_chunks(),
        3,
        "from the length the store has, not the failed target"
    );
    assert_eq!(pipe.flush_step(Instant::ZERO), Ok(settled));
    assert!(matches!(
        pipe.poll_grow(&again),
        core::task::Poll::Ready(Ok(3))
    ));

    Faulty::failing(&store.fail_grow_syncs, true);
    let ticket = pipe.request_grow(1).unwrap();
    let failed_sync = crate::StoreError::new(crate::StoreErrorKind::Io, crate::Op::Sync);
    assert_eq!(
        pipe.flush_step(Instant::ZERO),
        Err(Error::Poisoned(failed_sync))
    );
    assert_eq!(
        pipe.poll_grow(&ticket),
        core::task::Poll::Ready(Err(Error::Poisoned(failed_sync)))
    );
}

/// Waiters for a sealed batch (written, not yet synced) count among those its publish
/// releases; a request for an epoch already durable counts for nothing.
#[test]
fn waiters_of_a_sealed_batch_are_gathered_into_the_next() {
    const NOW: Instant = Instant::ZERO;
    let pipe = pipe(8, 8);
    let first = pipe.try_write(0, &chunk(1)).unwrap();
    assert!(
        pipe.flush_step(NOW).unwrap().background,
        "in place, its sync left to the background"
    );
    pipe.request_durable(first);
    pipe.request_durable(first);
    pipe.request_durable(Epoch::NONE);
    assert_eq!(
        pipe.background_step(NOW),
        Ok(durable(first)),
        "two waiters released"
    );
    pipe.request_durable(first);
    let second = pipe.try_write(1, &chunk(2)).unwrap();
    pipe.request_durable(second);
    assert_eq!(
        pipe.flush_step(NOW),
        Ok(Wake::default()),
        "held for the second waiter"
    );
    pipe.request_durable(second);
    assert_eq!(
        pipe.flush_step(NOW),
        Ok(durable(second)),
        "both are in: sealed"
    );
}

/// Write amplification is known only once something was published.
#[test]
fn write_amplification_waits_for_a_publish() {
    let pipe = pipe(4, 4);
    assert_eq!(pipe.stats().write_amplification(CHUNK as u32), None);
    let epoch = pipe.try_write(0, &chunk(1)).unwrap();
    pipe.request_durable(epoch);
    pipe.flush_step(Instant::ZERO).unwrap();
    assert_eq!(pipe.stats().write_amplification(CHUNK as u32), Some(1.0));
}
