//! An API sequence fuzzer: fuzzer-chosen operations — valid and invalid writes, transactions,
//! reads, grows, flush and checkpoint steps, crashes armed at any I/O point, reopens — on the
//! simulated disk. Every call must return a value (no panic), no read may return a torn chunk,
//! and in `Journal::Atomic` the durable epoch never goes back, across crashes too.
#![no_main]

use std::sync::Arc;

use arbitrary::Arbitrary;
use chunkpipe_core::{Config, Epoch, Instant, Journal, Pipe};
use chunkpipe_sim::{DATA_FILE, JOURNAL_FILE, SimDisk, SimStore};
use libfuzzer_sys::fuzz_target;

const CHUNK: usize = 512;

#[derive(Arbitrary, Debug)]
enum Op {
    Write {
        index: u8,
        chunks: u8,
        value: u8,
        ragged: bool,
    },
    Transaction {
        reserve: u8,
        writes: Vec<(u8, u8)>,
    },
    Read {
        index: u8,
        count: u8,
    },
    Flush,
    Background,
    Sync,
    Grow {
        chunks: u8,
    },
    ArmCrash {
        in_io_points: u8,
    },
    Crash,
    Close,
}

#[derive(Arbitrary, Debug)]
struct Run {
    journaled: bool,
    ops: Vec<Op>,
}

struct Sim {
    disk: Arc<SimDisk>,
    config: Config,
    pipe: Option<Pipe<'static, SimStore>>,
    durable: Epoch,
    now: Instant,
}

impl Sim {
    /// Reopens after a power loss (retrying while an armed crash strikes recovery).
    fn reopen(&mut self) {
        self.pipe = None;
        self.disk.crash();
        let file = |n| SimStore::file(Arc::clone(&self.disk), n);
        for _ in 0..8 {
            self.disk.restart();
            let opened = match self.config.journal {
                Journal::Off => Pipe::new(file(DATA_FILE), self.config),
                _ => Pipe::with_journal(file(DATA_FILE), file(JOURNAL_FILE), self.config),
            };
            if let Ok(pipe) = opened {
                // (Journal::Off keeps no epochs on disk: they restart after a reopen.)
                if self.config.journal == Journal::Atomic {
                    assert!(pipe.durable_epoch() >= self.durable, "recovery went back");
                }
                self.durable = pipe.durable_epoch();
                self.pipe = Some(pipe);
                return;
            }
        }
        panic!("recovery did not succeed on a quiet disk");
    }

    fn step(&mut self, op: &Op) {
        if self.disk.crashed() || self.pipe.is_none() {
            self.reopen();
        }
        let pipe = self.pipe.as_ref().unwrap();
        match *op {
            Op::Write {
                index,
                chunks,
                value,
                ragged,
            } => {
                let len = usize::from(chunks % 5) * CHUNK + usize::from(ragged);
                let _ = pipe.try_write(u64::from(index), &vec![value; len]);
            }
            Op::Transaction {
                reserve,
                ref writes,
            } => {
                if let Ok(mut tx) = pipe.transaction(u32::from(reserve % 6)) {
                    for &(index, value) in writes.iter().take(6) {
                        let _ = tx.write(u64::from(index), &[value; CHUNK]);
                    }
                    let _ = tx.commit();
                }
            }
            Op::Read { index, count } => {
                if let Ok(bytes) = pipe.read(u64::from(index), u64::from(count % 4)) {
                    for chunk in bytes.chunks(CHUNK) {
                        assert!(
                            chunk.iter().all(|&b| b == chunk[0])
                                || self.config.journal == Journal::Off,
                            "a torn chunk in Journal::Atomic"
                        );
                    }
                }
            }
            Op::Flush => {
                let _ = pipe.flush_step(self.now);
            }
            Op::Background => {
                let _ = pipe.background_step(self.now);
            }
            Op::Sync => {
                let _ = pipe.request_sync();
            }
            Op::Grow { chunks } => {
                let _ = pipe.request_grow(u64::from(chunks % 8));
            }
            Op::ArmCrash { in_io_points } => self.disk.arm_crash(u32::from(in_io_points % 8)),
            Op::Crash => self.reopen(),
            Op::Close => {
                for _ in 0..16 {
                    if pipe.try_close().is_ready() {
                        break;
                    }
                    let _ = pipe.flush_step(self.now);
                    let _ = pipe.background_step(self.now);
                }
            }
        }
        if let Some(pipe) = &self.pipe {
            assert!(
                pipe.durable_epoch() >= self.durable,
                "durable epoch went back"
            );
            self.durable = pipe.durable_epoch();
        }
        self.now = self
            .now
            .saturating_add(core::time::Duration::from_millis(1));
    }
}

fuzz_target!(|run: Run| {
    let config = Config::new()
        .with_chunk_size(CHUNK as u32)
        .with_initial_chunks(8)
        .with_staging_chunks(4)
        .with_journal(if run.journaled {
            Journal::Atomic
        } else {
            Journal::Off
        })
        .with_journal_bytes(8 * 1024);
    let mut sim = Sim {
        disk: Arc::new(SimDisk::new(512)),
        config,
        pipe: None,
        durable: Epoch::NONE,
        now: Instant::ZERO,
    };
    sim.reopen();
    for op in run.ops.iter().take(64) {
        sim.step(op);
    }
});
