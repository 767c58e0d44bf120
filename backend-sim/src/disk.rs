//! The simulated disk: a durable image, a volatile cache of pending sectors, faults, crashes.
//!
//! Per sector the disk knows whether the cached bytes are *dirty* (written since the last sync,
//! on their way to the durable image). A failed sync makes its dirty sectors clean without
//! persisting them — they stay readable in the cache, like Linux pages after a failed `fsync`,
//! but no later sync persists them and a crash drops them. A length change is pending until the
//! next successful sync.
//!
//! | event | what happens |
//! |---|---|
//! | `write_at` | bytes go to the cache; their sectors become dirty |
//! | `sync` (ok) | dirty sectors and the cached length reach the durable image |
//! | `sync` (fault) | dirty sectors become clean without being persisted: gone at the next crash |
//! | crash | each dirty sector is kept or dropped by a coin flip (torn chunks, reordering); everything else not durable, and an unsynced length, is dropped; the cache becomes the durable image |
//!
//! Media faults damage what the device stores, and are counted per file ([`SimDisk::media_faults`])
//! so the oracle can tell damage it caused from damage nobody caused:
//!
//! | fault | what happens |
//! |---|---|
//! | bit flip | a bit of a durable sector flips; if the sector is clean, in the cache too (the page was evicted and read again) |
//! | bad sector | a durable sector becomes unreadable: reads over it fail (but for a dirty cached page, which a read never takes from the device) until a write to it is persisted |
//! | lost write | `write_at` lands in the cache, but its sectors are not dirty: no sync persists them, a crash drops them |
//! | misdirected write | `write_at` lands in the cache, but the device writes it some sectors away: a sync persists it there, and its own sectors keep their old bytes |
//!
//! Every store operation counts as one *I/O point*: faults are drawn there, and a crash can be
//! armed to strike at the n-th point, in the middle of a flush step or of recovery. Once crashed,
//! every operation fails until the disk is [`restart`](SimDisk::restart)ed.

use std::collections::BTreeSet;
use std::sync::Mutex;

use chunkpipe_core::{ChunkStore, Op, StoreError, StoreErrorKind};

use crate::faults::{Fault, FaultPlan};
use crate::rng::SimRng;

/// Deliberate bugs a store can be given, to prove the oracle catches them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreBug {
    /// `sync` returns `Ok` without persisting anything.
    LyingSync,
    /// Every 7th `write_at` returns `Ok` without writing.
    DroppedWrite,
}

/// A simulated disk holding a few files (data, journal) that lose power together; see the
/// module docs. Shared by the store handles of successive pipes.
pub struct SimDisk {
    state: Mutex<DiskState>,
}

/// One simulated file: what a process sees (the cache) and what survives power loss.
#[derive(Default)]
struct FileState {
    cache: Vec<u8>,
    durable: Vec<u8>,
    dirty: BTreeSet<usize>,
    /// Unreadable sectors (until written).
    bad: BTreeSet<usize>,
    /// Misdirected writes on their way to the device: where they land, and their bytes.
    misdirected: Vec<(usize, Vec<u8>)>,
    /// Media faults that struck this file.
    media_faults: u64,
}

struct DiskState {
    sector_size: usize,
    /// The files on this disk (0: data, 1: journal); they lose power together.
    files: Vec<FileState>,
    /// Decides which dirty sectors a crash keeps.
    crash_rng: SimRng,
    /// Faults to draw at I/O points (none for a fault-free disk).
    faults: Option<(FaultPlan, SimRng)>,
    /// Crash when this many more I/O points have passed.
    crash_in: Option<u32>,
    crashed: bool,
    bug: Option<StoreBug>,
    writes: u64,
    /// Faults that fired, by kind.
    fired: [u64; Fault::COUNT],
    /// Virtual nanoseconds of I/O latency accumulated since last taken.
    latency_ns: u64,
}

impl SimDisk {
    /// An empty, fault-free disk with `sector_size`-byte sectors.
    pub fn new(sector_size: usize) -> Self {
        SimDisk {
            state: Mutex::new(DiskState {
                sector_size,
                files: Vec::new(),
                crash_rng: SimRng::new(0),
                faults: None,
                crash_in: None,
                crashed: false,
                bug: None,
                writes: 0,
                fired: [0; Fault::COUNT],
                latency_ns: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DiskState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Draws faults from `plan` with `rng` at every I/O point from now on (`None`: no faults).
    pub fn set_faults(&self, faults: Option<(FaultPlan, SimRng)>) {
        self.lock().faults = faults;
    }

    /// Stops drawing faults; returns the plan and its generator to put back later.
    pub fn take_faults(&self) -> Option<(FaultPlan, SimRng)> {
        self.lock().faults.take()
    }

    /// Gives the disk a deliberate bug.
    pub fn set_bug(&self, bug: Option<StoreBug>) {
        self.lock().bug = bug;
    }

    /// Seeds the coin flips of crashes.
    pub fn set_crash_rng(&self, rng: SimRng) {
        self.lock().crash_rng = rng;
    }

    /// Crashes at the `points`-th I/O point from now.
    pub fn arm_crash(&self, points: u32) {
        self.lock().crash_in = Some(points);
    }

    /// Whether the disk has crashed (every operation fails until `restart`).
    pub fn crashed(&self) -> bool {
        self.lock().crashed
    }

    /// Crashes now: see the module docs.
    pub fn crash(&self) {
        self.lock().crash();
    }

    /// Brings a crashed disk back: the cache is the durable image, nothing pending.
    pub fn restart(&self) {
        let mut state = self.lock();
        state.crashed = false;
        state.crash_in = None;
    }

    /// The cached bytes of `file` at `offset..offset + len`, without passing an I/O point (for
    /// the oracle; right after a restart the cache is exactly the durable image). Short at the
    /// end.
    pub fn cached_bytes(&self, file: usize, offset: usize, len: usize) -> Vec<u8> {
        let state = self.lock();
        let Some(f) = state.files.get(file) else {
            return Vec::new();
        };
        let end = (offset + len).min(f.cache.len());
        f.cache
            .get(offset..end)
            .map(<[u8]>::to_vec)
            .unwrap_or_default()
    }

    /// Faults fired so far, indexed by [`Fault::index`].
    pub fn fired(&self) -> [u64; Fault::COUNT] {
        self.lock().fired
    }

    /// Time passes over the stored data: draws a bit flip or a bad sector in a durable sector,
    /// at the plan's rates (the runner calls this between steps).
    pub fn age(&self) {
        let mut state = self.lock();
        let Some((plan, mut rng)) = state.faults.take() else {
            return;
        };
        if let Some(media) = plan.draw_media(&mut rng) {
            state.strike_media(media, &mut rng);
        }
        state.faults = Some((plan, rng));
    }

    /// Media faults that struck `file` so far.
    pub fn media_faults(&self, file: usize) -> u64 {
        self.lock().files.get(file).map_or(0, |f| f.media_faults)
    }

    /// Takes the virtual I/O latency accumulated since the last call.
    pub fn take_latency_ns(&self) -> u64 {
        std::mem::take(&mut self.lock().latency_ns)
    }
}

impl DiskState {
    fn crash(&mut self) {
        let size = self.sector_size;
        for file in &mut self.files {
            let durable_len = file.durable.len();
            for &sector in &file.dirty {
                let start = sector * size;
                if start < durable_len && self.crash_rng.chance(0.5) {
                    let end = (start + size).min(durable_len);
                    file.durable[start..end].copy_from_slice(&file.cache[start..end]);
                    file.bad.remove(&sector);
                }
            }
            for (at, bytes) in std::mem::take(&mut file.misdirected) {
                if self.crash_rng.chance(0.5) {
                    land(&mut file.durable, at, &bytes);
                }
            }
            file.dirty.clear();
            file.cache = file.durable.clone();
        }
        self.crashed = true;
    }

    /// A bit flip or a bad sector, in a durable sector of a file drawn with `rng`.
    fn strike_media(&mut self, fault: Fault, rng: &mut SimRng) {
        let size = self.sector_size;
        let files: Vec<usize> = (0..self.files.len())
            .filter(|&f| self.files[f].durable.len() >= size)
            .collect();
        if files.is_empty() {
            return;
        }
        let f = files[rng.below(files.len() as u64) as usize];
        let file = &mut self.files[f];
        let sector = rng.below((file.durable.len() / size) as u64) as usize;
        match fault {
            Fault::BitFlip => {
                let byte = sector * size + rng.below(size as u64) as usize;
                let bit = 1u8 << rng.below(8);
                file.durable[byte] ^= bit;
                if !file.dirty.contains(&sector) {
                    file.cache[byte] ^= bit;
                }
            }
            _ => {
                file.bad.insert(sector);
            }
        }
        file.media_faults += 1;
        self.fired[fault.index()] += 1;
    }

    fn file(&mut self, file: usize) -> &mut FileState {
        if self.files.len() <= file {
            self.files.resize_with(file + 1, FileState::default);
        }
        &mut self.files[file]
    }

    /// One I/O point: fails if crashed, strikes an armed crash, draws a fault.
    fn io_point(&mut self, op: Op) -> Result<Option<Fault>, StoreError> {
        if self.crashed {
            return Err(StoreError::new(StoreErrorKind::Io, op));
        }
        if let Some(n) = self.crash_in.as_mut() {
            if *n == 0 {
                self.crash();
                self.fired[Fault::Crash.index()] += 1;
                return Err(StoreError::new(StoreErrorKind::Io, op));
            }
            *n -= 1;
        }
        let Some((plan, rng)) = self.faults.as_mut() else {
            return Ok(None);
        };
        let (latency_ns, stalled) = plan.latency_ns(rng);
        self.latency_ns += latency_ns;
        if stalled {
            self.fired[Fault::Latency.index()] += 1;
        }
        let fault = plan.draw(op, rng);
        if let Some(fault) = fault {
            self.fired[fault.index()] += 1;
        }
        Ok(fault)
    }

    fn sync(&mut self, file: usize) -> Result<(), StoreError> {
        match self.io_point(Op::Sync)? {
            Some(Fault::SyncError) => {
                // Linux after a failed fsync: the pages are marked clean but never persisted.
                self.file(file).dirty.clear();
                Err(StoreError::new(StoreErrorKind::Io, Op::Sync))
            }
            _ if self.bug == Some(StoreBug::LyingSync) => Ok(()),
            _ => {
                let size = self.sector_size;
                self.file(file).persist(size);
                Ok(())
            }
        }
    }
}

impl FileState {
    fn check_range(
        &self,
        offset: u64,
        len: usize,
        op: Op,
    ) -> Result<std::ops::Range<usize>, StoreError> {
        let out = StoreError::new(StoreErrorKind::OutOfBounds, op);
        let start = usize::try_from(offset).map_err(|_| out)?;
        let end = start
            .checked_add(len)
            .filter(|&e| e <= self.cache.len())
            .ok_or(out)?;
        Ok(start..end)
    }

    fn mark_dirty(&mut self, range: std::ops::Range<usize>, sector_size: usize) {
        if range.is_empty() {
            return;
        }
        for sector in range.start / sector_size..=(range.end - 1) / sector_size {
            self.dirty.insert(sector);
        }
    }

    fn persist(&mut self, sector_size: usize) {
        self.durable.resize(self.cache.len(), 0);
        for &sector in &self.dirty {
            let start = sector * sector_size;
            let end = (start + sector_size).min(self.cache.len());
            if start < end {
                self.durable[start..end].copy_from_slice(&self.cache[start..end]);
                // Written at last: the device remapped the sector if it was bad.
                self.bad.remove(&sector);
            }
        }
        for (at, bytes) in std::mem::take(&mut self.misdirected) {
            land(&mut self.durable, at, &bytes);
        }
        self.dirty.clear();
    }

    /// Whether a read of `range` needs an unreadable sector from the device (a dirty sector
    /// comes from the cache).
    fn unreadable(&self, range: &std::ops::Range<usize>, sector_size: usize) -> bool {
        !range.is_empty()
            && (self.bad)
                .range(range.start / sector_size..=(range.end - 1) / sector_size)
                .any(|sector| !self.dirty.contains(sector))
    }
}

/// How far (in bytes, a whole number of sectors, never 0) a misdirected write of `len` bytes
/// lands from its place: up to a few times its own length either way.
fn misdirection(state: &mut DiskState, len: usize) -> isize {
    let sectors = len.div_ceil(state.sector_size).max(1) as u64;
    let Some((_, rng)) = state.faults.as_mut() else {
        return state.sector_size as isize;
    };
    let by = 1 + rng.below(3 * sectors) as isize;
    let by = by * state.sector_size as isize;
    if rng.chance(0.5) { by } else { -by }
}

/// Writes `bytes` at `at` of `image`, as far as it is long.
fn land(image: &mut [u8], at: usize, bytes: &[u8]) {
    let end = (at + bytes.len()).min(image.len());
    if at < end {
        image[at..end].copy_from_slice(&bytes[..end - at]);
    }
}

/// A pipe's handle on one file of a [`SimDisk`].
#[derive(Clone)]
pub struct SimStore {
    disk: std::sync::Arc<SimDisk>,
    file: usize,
}

/// The data file of a simulated disk.
pub const DATA_FILE: usize = 0;
/// The journal file of a simulated disk.
pub const JOURNAL_FILE: usize = 1;

impl SimStore {
    /// A handle on the data file of `disk`.
    pub fn new(disk: std::sync::Arc<SimDisk>) -> Self {
        Self::file(disk, DATA_FILE)
    }

    /// A handle on file number `file` of `disk`.
    pub fn file(disk: std::sync::Arc<SimDisk>, file: usize) -> Self {
        SimStore { disk, file }
    }

    /// The disk.
    pub fn disk(&self) -> &SimDisk {
        &self.disk
    }
}

impl ChunkStore for SimStore {
    fn len(&self) -> Result<u64, StoreError> {
        let mut state = self.disk.lock();
        state.io_point(Op::Len)?;
        Ok(state.file(self.file).cache.len() as u64)
    }

    fn read_at(&self, offset: u64, bufs: &mut [&mut [u8]]) -> Result<(), StoreError> {
        let mut state = self.disk.lock();
        let range = state.file(self.file).check_range(
            offset,
            bufs.iter().map(|b| b.len()).sum(),
            Op::Read,
        )?;
        if state.io_point(Op::Read)? == Some(Fault::ReadError) {
            return Err(StoreError::new(StoreErrorKind::Io, Op::Read));
        }
        let sector_size = state.sector_size;
        if state.file(self.file).unreadable(&range, sector_size) {
            return Err(StoreError::new(StoreErrorKind::Io, Op::Read));
        }
        let mut src = &state.file(self.file).cache[range];
        for buf in bufs.iter_mut() {
            let (head, rest) = src.split_at(buf.len());
            buf.copy_from_slice(head);
            src = rest;
        }
        Ok(())
    }

    fn write_at(&self, offset: u64, bufs: &[&[u8]]) -> Result<(), StoreError> {
        let mut state = self.disk.lock();
        let range = state.file(self.file).check_range(
            offset,
            bufs.iter().map(|b| b.len()).sum(),
            Op::Write,
        )?;
        let fault = state.io_point(Op::Write)?;
        state.writes += 1;
        if fault == Some(Fault::WriteError) {
            return Err(StoreError::new(StoreErrorKind::Io, Op::Write));
        }
        if state.bug == Some(StoreBug::DroppedWrite) && state.writes % 7 == 0 {
            return Ok(());
        }
        // A partial write lands its first half (by bytes), then fails.
        let end = if fault == Some(Fault::PartialWrite) {
            range.start + range.len() / 2
        } else {
            range.end
        };
        let sector_size = state.sector_size;
        let shift = match fault {
            Some(Fault::MisdirectedWrite) => Some(misdirection(&mut state, range.len())),
            _ => None,
        };
        let file = state.file(self.file);
        let mut at = range.start;
        for buf in bufs {
            let n = buf.len().min(end.saturating_sub(at));
            file.cache[at..at + n].copy_from_slice(&buf[..n]);
            at += buf.len();
        }
        match fault {
            Some(Fault::LostWrite) => file.media_faults += 1,
            Some(Fault::MisdirectedWrite) => {
                let landing = shift.map_or(range.start, |s| range.start.saturating_add_signed(s));
                file.misdirected
                    .push((landing, file.cache[range.clone()].to_vec()));
                file.media_faults += 1;
            }
            _ => file.mark_dirty(range.start..end, sector_size),
        }
        if fault == Some(Fault::PartialWrite) {
            return Err(StoreError::new(StoreErrorKind::Io, Op::Write));
        }
        Ok(())
    }

    /// Extends the cached length (zeros), then syncs, like the file backends: the new length is
    /// durable when this returns `Ok`.
    fn grow(&self, new_len: u64) -> Result<(), StoreError> {
        let mut state = self.disk.lock();
        let new_len = usize::try_from(new_len)
            .map_err(|_| StoreError::new(StoreErrorKind::NoSpace, Op::Grow))?;
        if new_len <= state.file(self.file).cache.len() {
            return Ok(());
        }
        if state.io_point(Op::Grow)? == Some(Fault::NoSpace) {
            return Err(StoreError::new(StoreErrorKind::NoSpace, Op::Grow));
        }
        state.file(self.file).cache.resize(new_len, 0);
        state.sync(self.file)
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.disk.lock().sync(self.file)
    }

    fn start_writeback(&self, _offset: u64, _len: u64) -> Result<(), StoreError> {
        // A hint only: it moves nothing towards durability (the oracle would catch it if it did).
        Ok(())
    }
}
