//! A model-based property test: random operation sequences run against the real pipe on the
//! simulated disk and against a reference model — a map from chunk to value plus the writes
//! waiting in the open batch — checked after every operation, shrunk to a minimal failing
//! sequence when one fails.
//!
//! The steps and crashes are driven here, between operations: every batch a flush step
//! published survives a crash whole, the open batch is lost whole, in both durability modes; and
//! staging is full exactly when the model says, and its writers are woken exactly when it frees.

use std::collections::BTreeMap;
use std::sync::Arc;

use chunkpipe_core::{Config, Error, Instant, Journal, Pipe};
use chunkpipe_sim::{DATA_FILE, JOURNAL_FILE, SimDisk, SimStore};
use proptest::prelude::*;

const CHUNK: usize = 512;
const CHUNKS: u64 = 8;

#[derive(Clone, Debug)]
enum Op {
    /// `try_write` of `count` chunks at `index`, all holding `value`.
    Write { index: u64, count: u64, value: u8 },
    /// A transaction of single-chunk writes.
    Transaction(Vec<(u64, u8)>),
    /// A sync request, then one flush step.
    Flush,
    /// One background step.
    Background,
    /// Reads chunk `index`.
    Read(u64),
    /// Power loss between steps, then reopen and recovery.
    Crash,
    /// Close (everything accepted becomes durable), then reopen.
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..CHUNKS, 1..=3u64, 1..=255u8).prop_map(|(index, count, value)| Op::Write {
            index,
            count: count.min(CHUNKS - index),
            value
        }),
        2 => prop::collection::vec((0..CHUNKS, 1..=255u8), 1..=3).prop_map(Op::Transaction),
        3 => Just(Op::Flush),
        2 => Just(Op::Background),
        3 => (0..CHUNKS).prop_map(Op::Read),
        1 => Just(Op::Crash),
        1 => Just(Op::Reopen),
    ]
}

/// Staging slots of the pipe under test.
const STAGING: u64 = 4;

/// The reference: values as of the durable epoch, the open batch's writes in order, and the
/// staging slots still held by published batches (`Journal::Atomic` frees them when a batch is
/// written in place: by the background step, or by a commit that needs them).
#[derive(Default)]
struct Model {
    durable: BTreeMap<u64, u8>,
    open: Vec<(u64, u8)>,
    /// `Journal::Atomic`: the chunk counts of published batches not yet in place.
    unapplied: Vec<u64>,
    /// A write found staging full, and no batch was retired since.
    writer_waited: bool,
    journaled: bool,
}

/// Batch plans a pipe has besides the open batch's: published batches waiting to be written
/// in place hold one each.
const SPARE_PLANS: usize = 3;

impl Model {
    fn visible(&self, index: u64) -> u8 {
        let staged = self.open.iter().rev().find(|(i, _)| *i == index);
        staged
            .map(|(_, v)| *v)
            .or_else(|| self.durable.get(&index).copied())
            .unwrap_or(0)
    }

    /// Whether `chunks` more staging slots are free; a write that finds them short waits.
    fn fits(&mut self, chunks: u64) -> bool {
        let held = self.open.len() as u64 + self.unapplied.iter().sum::<u64>();
        let fits = held + chunks <= STAGING;
        self.writer_waited |= !fits;
        fits
    }

    /// A background step: every published batch is written in place. Returns whether that
    /// freed staging a writer waited for.
    fn apply(&mut self) -> bool {
        let freed = !self.unapplied.is_empty();
        self.unapplied.clear();
        freed && std::mem::take(&mut self.writer_waited)
    }

    /// A flush step after a sync request: the open batch is published (`Journal::Atomic`:
    /// after the published batches are written in place, if they hold every spare plan or a
    /// writer waits). Returns whether a writer was woken.
    fn flush(&mut self) -> bool {
        let mut woken = false;
        if self.journaled
            && (self.unapplied.len() == SPARE_PLANS
                || self.writer_waited && !self.unapplied.is_empty())
        {
            woken = self.apply();
        }
        if self.open.is_empty() {
            return woken;
        }
        if self.journaled {
            self.unapplied.push(self.open.len() as u64);
        } else {
            // Written in place at once: its staging is free.
            woken = std::mem::take(&mut self.writer_waited);
        }
        for (index, value) in self.open.drain(..) {
            self.durable.insert(index, value);
        }
        woken
    }

    /// Everything accepted is durable and in place (close), or lost (crash): staging is empty.
    fn settle(&mut self, keep_open: bool) {
        if keep_open {
            self.flush();
        }
        self.open.clear();
        self.unapplied.clear();
        self.writer_waited = false;
    }
}

struct System {
    disk: Arc<SimDisk>,
    config: Config,
    pipe: Option<Pipe<'static, SimStore>>,
}

impl System {
    fn new(journal: Journal) -> Self {
        let config = Config::new()
            .with_chunk_size(CHUNK as u32)
            .with_initial_chunks(CHUNKS)
            .with_staging_chunks(STAGING as u32)
            .with_journal(journal)
            .with_journal_bytes(16 * 1024);
        let mut system = System {
            disk: Arc::new(SimDisk::new(512)),
            config,
            pipe: None,
        };
        system.open();
        system
    }

    fn open(&mut self) {
        let file = |n| SimStore::file(Arc::clone(&self.disk), n);
        let pipe = match self.config.journal {
            Journal::Off => Pipe::new(file(DATA_FILE), self.config),
            _ => Pipe::with_journal(file(DATA_FILE), file(JOURNAL_FILE), self.config),
        };
        self.pipe = Some(pipe.expect("reopen"));
    }

    fn pipe(&self) -> &Pipe<'static, SimStore> {
        self.pipe.as_ref().expect("open")
    }

    fn read(&self, index: u64) -> Vec<u8> {
        self.pipe().read(index, 1).expect("read")
    }
}

fn run(journal: Journal, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut system = System::new(journal);
    let mut model = Model {
        journaled: journal == Journal::Atomic,
        ..Model::default()
    };
    for op in ops {
        match op {
            Op::Crash => crash(&mut system, &mut model)?,
            Op::Reopen => reopen(&mut system, &mut model)?,
            _ => step(&system, &mut model, op)?,
        }
    }
    Ok(())
}

/// Runs an operation that keeps the pipe open, and checks it against the model.
fn step(system: &System, model: &mut Model, op: &Op) -> Result<(), TestCaseError> {
    let pipe = system.pipe();
    match op {
        Op::Write {
            index,
            count,
            value,
        } => {
            let data = vec![*value; CHUNK * *count as usize];
            let result = pipe.try_write(*index, &data);
            prop_assert_eq!(result.is_ok(), model.fits(*count), "{:?}", result);
            if result.is_ok() {
                model.open.extend((0..*count).map(|i| (index + i, *value)));
            }
        }
        Op::Transaction(writes) => match pipe.transaction(writes.len() as u32) {
            Ok(mut tx) => {
                prop_assert!(model.fits(writes.len() as u64));
                for (index, value) in writes {
                    tx.write(*index, &[*value; CHUNK]).expect("tx write");
                }
                tx.commit().expect("commit");
                model.open.extend(writes.iter().copied());
            }
            Err(Error::WouldBlock) => prop_assert!(!model.fits(writes.len() as u64)),
            Err(e) => prop_assert!(false, "transaction failed: {e}"),
        },
        Op::Flush => {
            pipe.request_sync().expect("sync request");
            let wake = pipe.flush_step(Instant::ZERO).expect("flush");
            prop_assert_eq!(wake.durable.is_some(), !model.open.is_empty(), "{:?}", wake);
            prop_assert_eq!(wake.writers, model.flush(), "{:?}", wake);
        }
        Op::Background => {
            let wake = pipe.background_step(Instant::ZERO).expect("background");
            let woken = if model.journaled {
                model.apply()
            } else {
                false
            };
            prop_assert_eq!(wake.writers, woken, "{:?}", wake);
            prop_assert_eq!(wake.durable, None, "everything asked for was synced");
        }
        Op::Read(index) => {
            prop_assert_eq!(system.read(*index), vec![model.visible(*index); CHUNK]);
        }
        Op::Crash | Op::Reopen => unreachable!("handled by run"),
    }
    Ok(())
}

/// Power loss between steps: what was published survives, the open batch is lost whole.
fn crash(system: &mut System, model: &mut Model) -> Result<(), TestCaseError> {
    system.pipe = None;
    system.disk.crash();
    system.disk.restart();
    system.open();
    model.settle(false);
    for index in 0..CHUNKS {
        let want = model.durable.get(&index).copied().unwrap_or(0);
        prop_assert_eq!(system.read(index), vec![want; CHUNK], "chunk {}", index);
    }
    Ok(())
}

/// Close (everything accepted becomes durable), power loss, reopen: nothing is lost.
fn reopen(system: &mut System, model: &mut Model) -> Result<(), TestCaseError> {
    let pipe = system.pipe.take().expect("open");
    while pipe.try_close().is_pending() {
        pipe.flush_step(Instant::ZERO).expect("flush on close");
        pipe.background_step(Instant::ZERO)
            .expect("background on close");
    }
    drop(pipe);
    model.settle(true);
    system.disk.crash();
    system.disk.restart();
    system.open();
    for index in 0..CHUNKS {
        prop_assert_eq!(system.read(index), vec![model.visible(index); CHUNK]);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_pipe_matches_the_model_with_the_journal(ops in prop::collection::vec(op(), 1..60)) {
        run(Journal::Atomic, &ops)?;
    }

    #[test]
    fn the_pipe_matches_the_model_in_place(ops in prop::collection::vec(op(), 1..60)) {
        run(Journal::Off, &ops)?;
    }
}
