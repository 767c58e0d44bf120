//! The workloads (BENCHMARKS.md): W1 durable small writes, W2 bulk writes, W3 hot-cache random
//! reads, W4 transactions, W5 mixed reads and writes.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::sys::{self, DeviceCounters};
use super::targets::Target;

/// Chunks of the file W1, W4 and W5 write: 256 MiB of 4 KiB chunks.
pub const SMALL_FILE_CHUNKS: u64 = 65_536;
/// `--hot`: chunks each W1 thread cycles through, and the file then holds 16 threads' worth.
pub const HOT_CHUNKS_PER_THREAD: u64 = 64;
/// Chunks per W2 write (64 KiB of 4 KiB chunks).
pub const W2_CHUNKS_PER_WRITE: u64 = 16;
/// W2 waits for durability after this many writes.
pub const W2_WRITES_PER_SYNC: u64 = 256;
/// Chunks per W4 transaction.
pub const W4_CHUNKS_PER_TX: usize = 4;
/// W5: per cent of operations that are reads.
pub const W5_READ_PERCENT: u64 = 70;
/// W5: every this many writes, the writer waits for durability.
pub const W5_WAIT_EVERY: u64 = 8;

/// Where W1 and W4 write (BENCHMARKS.md fixes it: the naive peer is sensitive to it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// W1 thread t of T sweeps its own slice of the 256 MiB file: chunk t·(N/T) + (i mod N/T)
    /// at its i-th write; W4 draws from the whole file.
    Sweep,
    /// `--hot`: each W1 thread cycles over its own 64 chunks, W4 draws from a 4 MiB file.
    Hot,
}

impl Pattern {
    /// Chunks of the file W1, W4 and W5 write.
    pub fn small_file_chunks(self) -> u64 {
        match self {
            Pattern::Sweep => SMALL_FILE_CHUNKS,
            Pattern::Hot => HOT_CHUNKS_PER_THREAD * 16,
        }
    }

    /// The chunk W1 thread `thread` of `threads` writes at its `i`-th write.
    fn w1_chunk(self, thread: u64, threads: u64, i: u64) -> u64 {
        let slice = match self {
            Pattern::Sweep => SMALL_FILE_CHUNKS / threads,
            Pattern::Hot => HOT_CHUNKS_PER_THREAD,
        };
        thread * slice + i % slice
    }
}

/// One row's workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// Each thread writes one chunk at its own indexes and waits until it is durable.
    W1,
    /// One thread writes 16-chunk writes at sequential indexes and waits for durability every
    /// 256 writes; a write counts once a sync has covered it.
    W2,
    /// Random reads of `chunks` chunks over the whole W3 file.
    W3 {
        /// Chunks per read.
        chunks: u64,
    },
    /// Each thread commits a transaction of 4 random chunks and waits until it is durable.
    W4,
    /// Each thread: 70 % random 1-chunk reads, 30 % 1-chunk writes, waiting for durability on
    /// every 8th write. Latency columns show reads only.
    W5,
}

impl Workload {
    /// How the table names it.
    pub fn label(self, threads: usize) -> String {
        match self {
            Workload::W1 => format!("W1 durable 1-chunk writes, {threads} thr"),
            Workload::W2 => format!(
                "W2 bulk 64 KiB writes, sync every {W2_WRITES_PER_SYNC}, {threads} thr (throughput in durable MB/s)"
            ),
            Workload::W3 { chunks } => format!("W3 random {chunks}-chunk reads, {threads} thr"),
            Workload::W4 => {
                format!(
                    "W4 durable transactions of {W4_CHUNKS_PER_TX} random chunks, {threads} thr"
                )
            }
            Workload::W5 => format!(
                "W5 mixed: {W5_READ_PERCENT} % reads, 1 in {W5_WAIT_EVERY} writes waits, {threads} thr (latency: reads only)"
            ),
        }
    }

    /// Its short name (`w1` … `w5`).
    pub fn key(self) -> &'static str {
        match self {
            Workload::W1 => "w1",
            Workload::W2 => "w2",
            Workload::W3 { .. } => "w3",
            Workload::W4 => "w4",
            Workload::W5 => "w5",
        }
    }

    /// Whether it writes (and so has syncs and device flushes to report).
    pub fn writes(self) -> bool {
        !matches!(self, Workload::W3 { .. })
    }

    /// Chunks one operation writes, to turn chunks per sync into operations per sync.
    pub fn chunks_per_op(self) -> u64 {
        match self {
            Workload::W1 => 1,
            Workload::W2 => W2_CHUNKS_PER_WRITE,
            Workload::W3 { .. } => 0,
            Workload::W4 => W4_CHUNKS_PER_TX as u64,
            Workload::W5 => 1,
        }
    }

    /// The table's throughput unit and how many of them one operation is.
    pub fn throughput_unit(self) -> (&'static str, f64) {
        match self {
            Workload::W2 => ("MB/s", (W2_CHUNKS_PER_WRITE * 4096) as f64 / 1e6),
            _ => ("ops/s", 1.0),
        }
    }
}

/// What one row measured.
pub struct RowResult {
    /// Operations completed in the measured window.
    pub ops: u64,
    /// The measured window.
    pub elapsed: Duration,
    /// Latency per operation, in nanoseconds.
    pub latency_ns: Histogram<u64>,
    /// CPU time of the whole process over the window.
    pub cpu_us: u64,
    /// Device flush requests over the window.
    pub device_flushes: Option<u64>,
    /// Bytes the device wrote over the window, whoever wrote them (on a quiet machine: the row).
    pub device_bytes_written: Option<u64>,
    /// Share of the machine's CPU time the hypervisor took over the window, in per cent.
    pub steal_percent: Option<f64>,
}

impl RowResult {
    /// Operations per second.
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs `workload` with `threads` threads against `target`: `warmup`, then `measure`.
pub fn run(
    target: &dyn Target,
    (workload, pattern): (Workload, Pattern),
    threads: usize,
    (warmup, measure): (Duration, Duration),
    (chunk_size, file_chunks): (usize, u64),
    device: &DeviceCounters,
) -> Result<RowResult, String> {
    let start = Instant::now() + Duration::from_millis(5);
    let (measure_from, measure_until) = (start + warmup, start + warmup + measure);
    let barrier = Barrier::new(threads + 1);
    let (per_thread, window) = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    let op = Op {
                        target,
                        workload,
                        pattern,
                        thread: t as u64,
                        threads: threads as u64,
                        chunk_size,
                        file_chunks,
                    };
                    op.run_until(measure_from, measure_until)
                })
            })
            .collect();
        barrier.wait();
        std::thread::sleep(measure_from.saturating_duration_since(Instant::now()));
        let before = (sys::cpu_time_us(), device.read(), sys::steal_ticks());
        std::thread::sleep(measure_until.saturating_duration_since(Instant::now()));
        let after = (sys::cpu_time_us(), device.read(), sys::steal_ticks());
        let results: Vec<_> = workers
            .into_iter()
            .map(|w| w.join().expect("bench thread panicked"))
            .collect();
        (results, (before, after))
    });
    let mut latency_ns =
        Histogram::new_with_bounds(1, 60_000_000_000, 3).map_err(|e| e.to_string())?;
    let mut ops = 0;
    for result in per_thread {
        let (count, hist) = result?;
        ops += count;
        latency_ns.add(hist).map_err(|e| e.to_string())?;
    }
    let ((cpu_before, dev_before, steal_before), (cpu_after, dev_after, steal_after)) = window;
    let device_delta = |field: fn(&sys::DeviceSample) -> Option<u64>| {
        let (before, after) = (
            dev_before.as_ref().and_then(field),
            dev_after.as_ref().and_then(field),
        );
        before.zip(after).map(|(b, a)| a.saturating_sub(b))
    };
    Ok(RowResult {
        ops,
        elapsed: measure,
        latency_ns,
        cpu_us: cpu_after.saturating_sub(cpu_before),
        device_flushes: device_delta(|d| d.flushes),
        device_bytes_written: device_delta(|d| Some(d.bytes_written)),
        steal_percent: steal_before
            .zip(steal_after)
            .map(|(b, a)| sys::steal_percent(a.saturating_sub(b), measure, sys::online_cpus())),
    })
}

/// One thread's view of a row.
struct Op<'t> {
    target: &'t dyn Target,
    workload: Workload,
    pattern: Pattern,
    thread: u64,
    threads: u64,
    chunk_size: usize,
    file_chunks: u64,
}

impl Op<'_> {
    fn run_until(
        &self,
        measure_from: Instant,
        until: Instant,
    ) -> Result<(u64, Histogram<u64>), String> {
        let mut hist =
            Histogram::new_with_bounds(1, 60_000_000_000, 3).map_err(|e| e.to_string())?;
        let mut buf = vec![self.thread as u8 + 1; self.chunk_size * W2_CHUNKS_PER_WRITE as usize];
        let mut rng =
            0x9E37_79B9_7F4A_7C15u64 ^ (self.thread + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        let (mut ops, mut counted) = (0, 0);
        for i in 0u64.. {
            let began = Instant::now();
            if began >= until {
                break;
            }
            let Outcome { durable, timed } = self.once(i, &mut rng, &mut buf)?;
            if began >= measure_from {
                if timed {
                    let ns = began.elapsed().as_nanos() as u64;
                    hist.record(ns.max(1)).map_err(|e| e.to_string())?;
                }
                counted += 1;
            }
            // An operation counts once it is durable (W2: when the sync covering it returns),
            // and only if it started inside the measured window.
            ops += durable.min(counted);
            counted -= durable.min(counted);
        }
        Ok((ops, hist))
    }

    /// Runs operation `i`: how many operations (this one and earlier ones) it made durable or
    /// completed, and whether its latency belongs in the row's histogram (W5: reads only).
    fn once(&self, i: u64, rng: &mut u64, buf: &mut [u8]) -> Result<Outcome, String> {
        buf[0] = i as u8;
        let timed = |durable| {
            Ok(Outcome {
                durable,
                timed: true,
            })
        };
        match self.workload {
            Workload::W1 => {
                let index = self.pattern.w1_chunk(self.thread, self.threads, i);
                self.target.write_durable(index, &buf[..self.chunk_size])?;
                timed(1)
            }
            Workload::W2 => {
                let index = (i * W2_CHUNKS_PER_WRITE) % self.file_chunks;
                let bytes = self.chunk_size * W2_CHUNKS_PER_WRITE as usize;
                self.target.write(index, &buf[..bytes])?;
                if (i + 1) % W2_WRITES_PER_SYNC != 0 {
                    return timed(0);
                }
                self.target.sync()?;
                timed(W2_WRITES_PER_SYNC)
            }
            Workload::W3 { chunks } => {
                let index = next_random(rng) % (self.file_chunks - chunks + 1);
                self.target
                    .read(index, &mut buf[..self.chunk_size * chunks as usize])?;
                timed(1)
            }
            Workload::W4 => {
                let mut indexes = [0u64; W4_CHUNKS_PER_TX];
                for n in 0..W4_CHUNKS_PER_TX {
                    indexes[n] = loop {
                        let index = next_random(rng) % self.file_chunks;
                        if !indexes[..n].contains(&index) {
                            break index;
                        }
                    };
                }
                self.target
                    .write_all_durable(&indexes, &buf[..self.chunk_size])?;
                timed(1)
            }
            Workload::W5 => {
                let index = next_random(rng) % self.file_chunks;
                if self.w5_is_read(i) {
                    self.target.read(index, &mut buf[..self.chunk_size])?;
                    return timed(1);
                }
                self.target.write(index, &buf[..self.chunk_size])?;
                // Writes count when acknowledged; one in W5_WAIT_EVERY (by op number, the same
                // for every implementation) also waits for durability.
                if i % W5_WAIT_EVERY == 0 {
                    self.target.sync()?;
                }
                Ok(Outcome {
                    durable: 1,
                    timed: false,
                })
            }
        }
    }

    fn w5_is_read(&self, i: u64) -> bool {
        // A fixed pattern per thread, the same for every implementation.
        (i.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17) ^ self.thread) % 100
            < W5_READ_PERCENT
    }
}

/// What one operation did.
struct Outcome {
    /// Operations it made durable or completed.
    durable: u64,
    /// Whether its latency goes into the histogram.
    timed: bool,
}

/// A xorshift step: cheap, and each thread has its own sequence.
fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}
