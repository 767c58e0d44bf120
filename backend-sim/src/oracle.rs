//! The oracle: a reference model of what the pipe has promised, checked after every step and
//! after every crash and recovery.
//!
//! The model keeps, per chunk, the writes that joined a batch since the last recovery (in join
//! order, with their epochs) and what each unit held at that recovery. From that it knows what
//! a read must return (the newest joined write: reads see writes once they join) and what a
//! recovered unit may hold: the last write with an epoch the pipe had published as durable, or
//! any later one — never older, never bytes nobody wrote.
//!
//! Media faults (bit flips, unreadable sectors, lost and misdirected writes) may make the pipe
//! report damage instead: `Corrupt` (or a read error from an unreadable sector) at a read or at
//! an open is accepted where a media fault struck, and is a violation (a false alarm) where
//! none did; a read that returns `Ok` must still be exact (a recovery may mend a damaged chunk
//! by replaying its record, never by making up bytes). One loss is accepted, and
//! counted: the newest acknowledged batches, when a media fault struck the journal after the
//! first of them was published and the journal holds no sound record of any later one — the
//! pipe then has no evidence they ever existed (no single-copy log can tell that from a torn
//! tail). Where such a record is there, the pipe must report damage instead.

use chunkpipe_core::journal::format::{self, Superblock, SuperblockCopy};
use chunkpipe_core::{Epoch, Error, Journal, Op, StoreErrorKind};

use crate::data::{UNIT, ZEROS, decode_unit};

/// A broken promise: the simulation's verdict.
pub type Violation = String;

/// What recoveries found that `Journal::Off` allows but reports: torn chunks and transactions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TearReport {
    /// Chunks recovered with units from different writes.
    pub torn_chunks: u64,
    /// Transactions recovered partly.
    pub torn_transactions: u64,
}

/// The reference model.
pub struct Model {
    journal: Journal,
    units_per_chunk: usize,
    /// The durable epoch the reopened pipe reported, for the check that follows.
    recovered_epoch: Epoch,
    /// Per chunk and unit: the write id it held at the last recovery.
    base: Vec<Vec<u64>>,
    /// Per chunk: writes joined since the last recovery, `(write id, epoch)`, in join order.
    history: Vec<Vec<(u64, Epoch)>>,
    /// Transactions committed since the last recovery: their write ids and chunks.
    transactions: Vec<Vec<(u64, u64)>>,
    next_write_id: u64,
    issued: Epoch,
    durable: Epoch,
    /// The first epoch of the failed batch, once the pipe reported a failure.
    failed_from: Option<Epoch>,
    /// Checks made so far.
    pub checks: u64,
    /// Tears found by recoveries.
    pub tears: TearReport,
    /// The simulation's step now.
    step: u64,
    /// Each rise of the durable epoch since the last recovery: the epoch, the step.
    durable_steps: Vec<(Epoch, u64)>,
    /// The newest epoch of a sound record in the journal, as recovery found it (set by the
    /// runner before [`Model::recovered`]).
    journal_evidence: Epoch,
    /// A media fault struck some file of this disk.
    media_struck: bool,
    /// The last step a media fault struck the journal.
    journal_struck_at: Option<u64>,
}

impl Model {
    /// A model of a fresh store of `chunks` zero chunks.
    pub fn new(chunks: u64, chunk_size: usize, journal: Journal) -> Self {
        let units_per_chunk = chunk_size / UNIT;
        let mut model = Model {
            journal,
            units_per_chunk,
            recovered_epoch: Epoch::NONE,
            base: Vec::new(),
            history: Vec::new(),
            transactions: Vec::new(),
            next_write_id: 1,
            issued: Epoch::NONE,
            durable: Epoch::NONE,
            failed_from: None,
            checks: 0,
            tears: TearReport::default(),
            step: 0,
            durable_steps: Vec::new(),
            journal_evidence: Epoch::NONE,
            media_struck: false,
            journal_struck_at: None,
        };
        model.resize(chunks);
        model
    }

    /// The simulation's step now.
    pub fn set_step(&mut self, step: u64) {
        self.step = step;
    }

    /// A media fault struck the journal (`journal`) or the data file at `step`.
    pub fn media_struck(&mut self, journal: bool, step: u64) {
        self.media_struck = true;
        if journal {
            self.journal_struck_at = Some(step);
        }
    }

    /// Whether `e` is the pipe reporting media damage: `Corrupt`, or (where
    /// `persistent_read_errors`: no transient read errors are drawn) a read error, which an
    /// unreadable sector gives. `Corrupt` where no media fault struck is a false alarm.
    ///
    /// # Errors
    /// The violation of a false alarm.
    pub fn damage_reported(
        &self,
        e: &Error,
        persistent_read_errors: bool,
    ) -> Result<bool, Violation> {
        match e {
            Error::Corrupt(damage) if !self.media_struck => Err(format!(
                "damage reported where no media fault struck: {damage}"
            )),
            Error::Corrupt(_) => Ok(true),
            Error::Store(s) if s.op == Op::Read && s.kind == StoreErrorKind::Io => {
                Ok(persistent_read_errors && self.media_struck)
            }
            _ => Ok(false),
        }
    }

    /// Follows a change of the pipe's length.
    pub fn resize(&mut self, chunks: u64) {
        let chunks = chunks as usize;
        if chunks > self.base.len() {
            self.base.resize(chunks, vec![ZEROS; self.units_per_chunk]);
            self.history.resize(chunks, Vec::new());
        }
    }

    /// A fresh write id.
    pub fn new_write_id(&mut self) -> u64 {
        let id = self.next_write_id;
        self.next_write_id += 1;
        id
    }

    /// Whether the pipe has reported a failure since the last recovery.
    pub fn failed(&self) -> bool {
        self.failed_from.is_some()
    }

    /// Records writes `(write id, chunk)` that joined the batch of `epoch` together (one write
    /// call, or one transaction). Epochs never go back in join order, and a write never joins a
    /// batch that was already published.
    pub fn joined(
        &mut self,
        writes: &[(u64, u64)],
        epoch: Epoch,
        transaction: bool,
    ) -> Result<(), Violation> {
        self.checks += 1;
        if epoch < self.issued {
            return Err(format!("{epoch} handed out after {}", self.issued));
        }
        if epoch <= self.durable {
            return Err(format!(
                "a write joined {epoch}, already published (durable {})",
                self.durable
            ));
        }
        self.issued = epoch;
        for &(write_id, chunk) in writes {
            self.history[chunk as usize].push((write_id, epoch));
        }
        if transaction {
            self.transactions.push(writes.to_vec());
        }
        Ok(())
    }

    /// Checks the pipe's durable epoch after a step: it never goes back, never passes what was
    /// handed out, and never covers a failed batch.
    pub fn observe_durable(&mut self, durable: Epoch) -> Result<(), Violation> {
        self.checks += 1;
        if durable < self.durable {
            return Err(format!(
                "durable epoch went back from {} to {durable}",
                self.durable
            ));
        }
        if durable > self.issued {
            return Err(format!(
                "durable {durable} passes the newest epoch handed out, {}",
                self.issued
            ));
        }
        if let Some(failed) = self.failed_from.filter(|&f| durable >= f) {
            return Err(format!(
                "durable {durable} covers {failed}, whose batch failed"
            ));
        }
        if durable > self.durable {
            self.durable_steps.push((durable, self.step));
        }
        self.durable = durable;
        Ok(())
    }

    /// A flush step failed; the durable epoch was `before` when it started and is `after` now.
    /// The batch it handled and every later one failed — so the step must not have published
    /// anything (publishing before the sync returned is exactly what this catches).
    pub fn flush_failed(&mut self, before: Epoch, after: Epoch) -> Result<(), Violation> {
        self.checks += 1;
        if after > before {
            return Err(format!(
                "a failed flush step published {after} (publish before sync?)"
            ));
        }
        let first = Epoch::new(after.get() + 1);
        self.failed_from = Some(self.failed_from.map_or(first, |f| f.min(first)));
        Ok(())
    }

    /// A waiter on `epoch` got `Ok` while the pipe's durable epoch was `durable`.
    pub fn wait_ok(&mut self, epoch: Epoch, durable: Epoch) -> Result<(), Violation> {
        self.checks += 1;
        if durable < epoch {
            return Err(format!(
                "wait({epoch}) returned Ok with the durable epoch at {durable}"
            ));
        }
        if let Some(failed) = self.failed_from.filter(|&f| epoch >= f) {
            return Err(format!(
                "wait({epoch}) returned Ok, but batches from {failed} failed"
            ));
        }
        Ok(())
    }

    /// The write id a read of `chunk`, unit `unit` must see now.
    fn current(&self, chunk: usize, unit: usize) -> u64 {
        self.history[chunk]
            .last()
            .map_or(self.base[chunk][unit], |&(id, _)| id)
    }

    /// Checks a read of chunks `index..` that returned `data`.
    pub fn read(&mut self, index: u64, data: &[u8], chunk_size: usize) -> Result<(), Violation> {
        self.checks += 1;
        for (i, chunk_bytes) in data.chunks_exact(chunk_size).enumerate() {
            let chunk = index + i as u64;
            for (unit, bytes) in chunk_bytes.chunks_exact(UNIT).enumerate() {
                let expected = self.current(chunk as usize, unit);
                let got = decode_unit(bytes, chunk, unit);
                if got != Some(expected) {
                    return Err(format!(
                        "read of chunk {chunk} unit {unit}: got write {got:?}, expected {expected}"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Tells the model the durable epoch a reopened pipe reported (before [`Model::recovered`]).
    pub fn set_recovered_epoch(&mut self, epoch: Epoch) {
        self.recovered_epoch = epoch;
    }

    /// Tells the model the journal as recovery found it (before [`Model::recovered`]): the
    /// newest epoch any sound record of it names.
    pub fn set_journal_image(&mut self, image: &[u8]) {
        self.journal_evidence = newest_record(image);
    }

    /// Checks the store recovered after a crash, given as `read_chunk(chunk) -> bytes` for
    /// `chunks` chunks (`None`: the pipe reported the chunk damaged), and makes it the model's
    /// new base. Returns whether it accepted the loss of the newest acknowledged batch (see
    /// the module docs).
    ///
    /// - `Journal::Off`: per unit, the last write the pipe had published as durable, or a
    ///   later one (tears are allowed and counted).
    /// - `Journal::Atomic`: the reopened pipe's durable epoch `R` is at least the one published
    ///   before the crash (and no more than was handed out), and every chunk holds exactly its
    ///   last write with an epoch ≤ `R`: every batch is wholly there or wholly absent.
    pub fn recovered(
        &mut self,
        chunks: u64,
        chunk_size: usize,
        mut read_chunk: impl FnMut(u64) -> Result<Option<Vec<u8>>, Violation>,
    ) -> Result<bool, Violation> {
        if self.journal == Journal::Atomic {
            return self.recovered_atomic(chunks, chunk_size, read_chunk);
        }
        let durable = self.durable;
        let mut new_base = Vec::with_capacity(chunks as usize);
        for chunk in 0..chunks {
            let bytes = read_chunk(chunk)?.unwrap_or_default();
            if bytes.len() < chunk_size {
                return Err(format!(
                    "the recovered store ends inside chunk {chunk} of {chunks}"
                ));
            }
            let units = self.check_recovered_chunk(chunk, &bytes[..chunk_size], durable)?;
            if units.iter().any(|&u| u != units[0]) {
                self.tears.torn_chunks += 1;
            }
            new_base.push(units);
        }
        self.count_torn_transactions(&new_base);
        self.reset_after_recovery(new_base);
        Ok(false)
    }

    /// The reopened pipe's durable epoch against the one published before the crash: never
    /// lower — unless the batches lost are the newest, a media fault struck the journal after
    /// the first of them was published, and no sound record of a later one is in the journal
    /// (returns `true` then; see the module docs).
    fn check_recovered_epoch(&mut self, recovered: Epoch) -> Result<bool, Violation> {
        self.checks += 1;
        if recovered > self.issued {
            return Err(format!(
                "recovery claims {recovered}, past the newest epoch handed out ({})",
                self.issued
            ));
        }
        if recovered >= self.durable {
            return Ok(false);
        }
        let first_lost = recovered.get() + 1;
        let published_at = (self.durable_steps.iter())
            .find(|(epoch, _)| epoch.get() >= first_lost)
            .map(|&(_, step)| step);
        let struck = (self.journal_struck_at)
            .is_some_and(|at| published_at.is_some_and(|published| at >= published));
        let evidence = self.journal_evidence.get() > first_lost;
        if struck && !evidence {
            return Ok(true);
        }
        Err(format!(
            "recovery went back to {recovered}; {} was durable{}",
            self.durable,
            if evidence {
                format!(
                    " and the journal holds a sound record of {}",
                    self.journal_evidence
                )
            } else {
                String::new()
            }
        ))
    }

    fn recovered_atomic(
        &mut self,
        chunks: u64,
        chunk_size: usize,
        mut read_chunk: impl FnMut(u64) -> Result<Option<Vec<u8>>, Violation>,
    ) -> Result<bool, Violation> {
        let recovered = self.recovered_epoch;
        let newest_lost = self.check_recovered_epoch(recovered)?;
        self.resize(chunks);
        for chunk in 0..chunks {
            let c = chunk as usize;
            let found = read_chunk(chunk)?;
            let value =
                self.check_atomic_chunk(chunk, found.as_deref(), chunk_size, newest_lost)?;
            // Epochs past the recovered one are handed out again: what they wrote is gone —
            // but for a lost batch found in place, which now stands as of the recovered epoch.
            let history = &mut self.history[c];
            history.retain(|&(_, epoch)| epoch <= recovered);
            if history.last().map(|&(id, _)| id) != Some(value) {
                history.push((value, recovered));
            }
        }
        self.transactions.clear();
        // The recovered epoch's record is needed again until a checkpoint that survives covers
        // it: as if published now.
        self.durable_steps = vec![(recovered, self.step)];
        // Epochs continue across the reopen.
        self.issued = recovered;
        self.durable = recovered;
        self.failed_from = None;
        Ok(newest_lost)
    }

    /// Checks one chunk of a `Journal::Atomic` store recovered to `self.recovered_epoch`
    /// (`None`: reported damaged) and returns the write it holds now: exactly its last write
    /// with an epoch up to the recovered one — or, where the newest batches were lost to media
    /// damage, a write of theirs found in place. (A chunk reported damaged still stands for its
    /// last write: a healthy read of it must return that.)
    fn check_atomic_chunk(
        &self,
        chunk: u64,
        found: Option<&[u8]>,
        chunk_size: usize,
        newest_lost: bool,
    ) -> Result<u64, Violation> {
        let recovered = self.recovered_epoch;
        let c = chunk as usize;
        let history = self.history.get(c).map(Vec::as_slice).unwrap_or_default();
        let want = (history.iter().rev())
            .find(|&&(_, epoch)| epoch <= recovered)
            .map_or_else(|| self.base.get(c).map_or(ZEROS, |b| b[0]), |&(id, _)| id);
        let Some(bytes) = found else {
            return Ok(want);
        };
        if bytes.len() < chunk_size {
            return Err(format!("the recovered store ends inside chunk {chunk}"));
        }
        let lost = |id: u64| {
            newest_lost
                && (history.iter()).any(|&(w, e)| w == id && e > recovered && e <= self.durable)
        };
        let units: Vec<Option<u64>> = (bytes[..chunk_size].chunks_exact(UNIT).enumerate())
            .map(|(unit, unit_bytes)| decode_unit(unit_bytes, chunk, unit))
            .collect();
        if let Some(id) = units[0].filter(|&id| lost(id)) {
            if units.iter().all(|&u| u == Some(id)) {
                return Ok(id);
            }
        }
        match units.iter().position(|&u| u != Some(want)) {
            None => Ok(want),
            Some(unit) => Err(format!(
                "after recovery to {recovered}, chunk {chunk} unit {unit} holds write {:?}, expected {want}",
                units[unit]
            )),
        }
    }

    /// The write id of every unit of a recovered chunk, after checking each against what the
    /// durable epoch allows.
    fn check_recovered_chunk(
        &mut self,
        chunk: u64,
        bytes: &[u8],
        durable: Epoch,
    ) -> Result<Vec<u64>, Violation> {
        self.checks += 1;
        let c = chunk as usize;
        let history = self.history.get(c).map(Vec::as_slice).unwrap_or_default();
        // Index of the last write the pipe promised durable; every later write may have landed.
        let promised = history.iter().rposition(|&(_, epoch)| epoch <= durable);
        let mut units = Vec::with_capacity(self.units_per_chunk);
        for (unit, unit_bytes) in bytes.chunks_exact(UNIT).enumerate() {
            let got = decode_unit(unit_bytes, chunk, unit).ok_or_else(|| {
                format!("recovered chunk {chunk} unit {unit} holds bytes no write produced")
            })?;
            let allowed = match promised {
                Some(p) => history[p..].iter().any(|&(id, _)| id == got),
                None => {
                    self.base.get(c).is_none_or(|b| b[unit] == got)
                        || history.iter().any(|&(id, _)| id == got)
                }
            };
            if !allowed {
                let wanted = promised.map_or_else(
                    || "its base".to_string(),
                    |p| format!("write {} or later", history[p].0),
                );
                return Err(format!(
                    "recovered chunk {chunk} unit {unit} holds write {got}, older than promised ({wanted}; durable {durable})"
                ));
            }
            units.push(got);
        }
        Ok(units)
    }

    fn count_torn_transactions(&mut self, recovered: &[Vec<u64>]) {
        for tx in &self.transactions {
            let present = |&(id, chunk): &(u64, u64)| {
                recovered
                    .get(chunk as usize)
                    .is_some_and(|u| u.contains(&id))
            };
            let landed = tx.iter().filter(|w| present(w)).count();
            // Superseded writes may legitimately be gone; count only clear half-states.
            if landed > 0 && landed < tx.len() && tx.iter().all(|w| self.is_newest_in_tx(w, tx)) {
                self.tears.torn_transactions += 1;
            }
        }
    }

    fn is_newest_in_tx(&self, &(id, chunk): &(u64, u64), tx: &[(u64, u64)]) -> bool {
        !tx.iter().any(|&(other, c)| c == chunk && other > id)
    }

    /// After a recovery in `Journal::Off` nothing durable records epochs: the reopened pipe
    /// starts again at 1.
    fn reset_after_recovery(&mut self, base: Vec<Vec<u64>>) {
        self.durable_steps.clear();
        self.base = base;
        self.history = vec![Vec::new(); self.base.len()];
        self.transactions.clear();
        self.issued = Epoch::NONE;
        self.durable = Epoch::NONE;
        self.failed_from = None;
    }
}

/// The newest epoch any sound record header (this journal's id, a passing header checksum)
/// in a journal image names, wherever it is in the record area: an independent look at what
/// the journal shows was written, for [`Model::set_journal_image`].
fn newest_record(image: &[u8]) -> Epoch {
    let copy = |n: usize| match image.get(n * 512..(n + 1) * 512) {
        Some(bytes) => Superblock::decode(bytes),
        None => SuperblockCopy::Blank,
    };
    let Some(superblock) = [copy(0), copy(1)].into_iter().find_map(|c| match c {
        SuperblockCopy::Valid(sb) => Some(sb),
        _ => None,
    }) else {
        return Epoch::NONE;
    };
    let end = (superblock.journal_bytes as usize).min(image.len());
    (format::RECORD_AREA_START as usize..end)
        .step_by(format::RECORD_ALIGN as usize)
        .filter_map(|at| {
            let head = format::decode_record_head(&image[at..])?;
            (head.id == superblock.id && format::header_crc_ok(&image[at..], head.chunks))
                .then_some(head.epoch)
        })
        .max()
        .unwrap_or(Epoch::NONE)
}
