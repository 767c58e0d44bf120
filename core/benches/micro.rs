//! Micro-benchmarks of the core's hot paths, on RAM stores (no I/O cost): staging a write and
//! releasing it (alone and with writers contending), sealing and publishing a batch, journal
//! record encoding and CRC-32C, and reads from staging and from the store.
//!
//! Run: `cargo bench -p chunkpipe-core` (CI runs each once with `-- --test`).
// `criterion_group!` defines an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use chunkpipe_core::journal::format::{self, RecordHead};
use chunkpipe_core::{Config, Epoch, Instant, Journal, MemStore, Pipe};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const CHUNK: usize = 4096;

fn pipe(journal: Journal, staging: u32) -> Pipe<'static, Arc<MemStore<'static>>> {
    let config = Config::new()
        .with_chunk_size(CHUNK as u32)
        .with_initial_chunks(1024)
        .with_staging_chunks(staging)
        .with_journal(journal)
        .with_journal_bytes(64 << 20);
    match journal {
        Journal::Off => Pipe::new(Arc::new(MemStore::new()), config),
        _ => Pipe::with_journal(Arc::new(MemStore::new()), Arc::new(MemStore::new()), config),
    }
    .unwrap()
}

/// One write staged, then its batch sealed, published and its slot released.
fn staging(c: &mut Criterion) {
    let mut group = c.benchmark_group("staging");
    let data = vec![7u8; CHUNK];
    let p = pipe(Journal::Off, 1024);
    group.bench_function("try_write + flush_step (1 chunk)", |b| {
        let mut i = 0u64;
        b.iter(|| {
            p.try_write(i % 1024, &data).unwrap();
            p.flush_step(Instant::ZERO).unwrap();
            i += 1;
        });
    });
    // Contended: another thread keeps writing while this one writes and flushes.
    let p = Arc::new(pipe(Journal::Off, 1024));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let other = {
        let (p, stop, data) = (Arc::clone(&p), Arc::clone(&stop), data.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = p.try_write(512 + i % 512, &data);
                i += 1;
            }
        })
    };
    group.bench_function("try_write + flush_step, one writer contending", |b| {
        let mut i = 0u64;
        b.iter(|| {
            while p.try_write(i % 512, &data).is_err() {
                p.flush_step(Instant::ZERO).unwrap();
            }
            p.flush_step(Instant::ZERO).unwrap();
            i += 1;
        });
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    other.join().unwrap();
    group.finish();
}

/// A batch of n staged chunks sealed and published by one flush step (both modes).
fn sealing(c: &mut Criterion) {
    let mut group = c.benchmark_group("seal and publish");
    let data = vec![7u8; CHUNK];
    for journal in [Journal::Off, Journal::Atomic] {
        for n in [1u64, 16, 256] {
            let p = pipe(journal, 256);
            group.throughput(Throughput::Elements(n));
            group.bench_with_input(BenchmarkId::new(format!("{journal:?}"), n), &n, |b, &n| {
                b.iter(|| {
                    for i in 0..n {
                        p.try_write(i * 3 % 1024, &data).unwrap();
                    }
                    // Publish, then (Atomic) write in place and free the slots.
                    p.flush_step(Instant::ZERO).unwrap();
                    p.flush_step(Instant::ZERO).unwrap();
                });
            });
        }
    }
    group.finish();
}

/// Journal record header encoding and the payload CRC.
fn journal_record(c: &mut Criterion) {
    let mut group = c.benchmark_group("journal record");
    let mut block = vec![0u8; format::header_block_bytes(256) as usize];
    let head = RecordHead {
        id: 1,
        lap: 2,
        epoch: Epoch::new(9),
        chunks: 256,
    };
    group.bench_function("encode header (256 entries)", |b| {
        let entries = || (0..256u64).map(|i| (i, i as u32));
        b.iter(|| format::encode_record_header(black_box(&head), entries(), &mut block));
    });
    for kib in [4usize, 64] {
        let payload = vec![0xA5u8; kib * 1024];
        group.throughput(Throughput::Bytes(payload.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("crc32c", format!("{kib} KiB")),
            &payload,
            |b, p| {
                b.iter(|| format::crc32c(&[black_box(p)]));
            },
        );
    }
    group.finish();
}

/// Reading one chunk: from staging (a write not yet flushed) and from the store.
fn reads(c: &mut Criterion) {
    let mut group = c.benchmark_group("read 1 chunk");
    let data = vec![7u8; CHUNK];
    let p = pipe(Journal::Off, 64);
    p.try_write(1, &data).unwrap();
    p.flush_step(Instant::ZERO).unwrap();
    p.try_write(2, &data).unwrap();
    let mut out = vec![0u8; CHUNK];
    group.bench_function("from the store", |b| {
        b.iter(|| p.read_into(black_box(1), &mut out).unwrap());
    });
    group.bench_function("from staging", |b| {
        b.iter(|| p.read_into(black_box(2), &mut out).unwrap());
    });
    group.finish();
}

criterion_group!(benches, staging, sealing, journal_record, reads);
criterion_main!(benches);
