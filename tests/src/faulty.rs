//! [`FaultyStore`]: a store wrapper that fails or holds operations on demand.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use chunkpipe_core::{Capabilities, ChunkStore, Op, StoreError, StoreErrorKind};

/// Wraps a store; tests arm it to fail the next writes or syncs, or to hold syncs at a gate.
/// The data and journal stores of one pipe share their controls ([`FaultyStore::beside`]), so
/// "the next sync" is whichever of them syncs next.
#[derive(Debug)]
pub struct FaultyStore<S> {
    inner: S,
    faults: Arc<Faults>,
    /// This store's own flag (not shared): writes are acknowledged and dropped.
    losing_writes: AtomicBool,
}

#[derive(Debug, Default)]
struct Faults {
    crashed: AtomicBool,
    failing_writes: AtomicU32,
    failing_syncs: AtomicU32,
    panicking_syncs: AtomicU32,
    syncs: AtomicU64,
    gate: Gate,
}

#[derive(Debug, Default)]
struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    closed: bool,
    held: u32,
}

impl<S> FaultyStore<S> {
    /// Wraps `inner` with no faults armed.
    pub fn new(inner: S) -> Self {
        FaultyStore {
            inner,
            faults: Arc::default(),
            losing_writes: AtomicBool::new(false),
        }
    }

    /// Wraps `inner` sharing the fault controls of `other`.
    pub fn beside<T>(inner: S, other: &FaultyStore<T>) -> Self {
        FaultyStore {
            inner,
            faults: Arc::clone(&other.faults),
            losing_writes: AtomicBool::new(false),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The next `write_at` fails with `EIO`-like `Io`.
    pub fn fail_next_write(&self) {
        self.faults.failing_writes.fetch_add(1, Ordering::SeqCst);
    }

    /// The next `sync` fails with `Io`.
    pub fn fail_next_sync(&self) {
        self.faults.failing_syncs.fetch_add(1, Ordering::SeqCst);
    }

    /// The next `sync` panics (a broken store, or a bug under a step).
    pub fn panic_next_sync(&self) {
        self.faults.panicking_syncs.fetch_add(1, Ordering::SeqCst);
    }

    /// The machine stops here: from now on every operation of this store and the stores beside
    /// it fails, so nothing more reaches storage. Dropping the pipe then leaves the storage as a
    /// crash at this point would (on top of what [`lose_unsynced_writes`](Self::lose_unsynced_writes)
    /// dropped).
    pub fn crash(&self) {
        self.faults.crashed.store(true, Ordering::SeqCst);
    }

    /// From now on this store (only) acknowledges writes and drops them, the way a volatile
    /// write cache that the coming [`crash`](Self::crash) empties would. A `sync` of this store
    /// then fails, since a real one would have kept them: a test that arms this may only expect
    /// success from paths that do not sync this store before the crash.
    pub fn lose_unsynced_writes(&self) {
        self.losing_writes.store(true, Ordering::SeqCst);
    }

    /// What happens at a sync or barrier before the store's own: a crash, lost writes, the gate,
    /// an armed panic or failure.
    fn before_sync(&self) -> Result<(), StoreError> {
        self.crashed(Op::Sync)?;
        if self.losing_writes.load(Ordering::SeqCst) {
            return Err(StoreError::new(StoreErrorKind::Io, Op::Sync));
        }
        self.pass_gate();
        assert!(
            !Self::take(&self.faults.panicking_syncs),
            "FaultyStore: sync armed to panic"
        );
        if Self::take(&self.faults.failing_syncs) {
            return Err(StoreError::new(StoreErrorKind::Io, Op::Sync));
        }
        Ok(())
    }

    fn crashed(&self, op: Op) -> Result<(), StoreError> {
        if self.faults.crashed.load(Ordering::SeqCst) {
            return Err(StoreError::new(StoreErrorKind::Io, op));
        }
        Ok(())
    }

    /// Syncs that returned `Ok`.
    pub fn successful_syncs(&self) -> u64 {
        self.faults.syncs.load(Ordering::SeqCst)
    }

    /// From now on, every `sync` blocks at the gate until [`open_gate`](Self::open_gate).
    pub fn close_gate(&self) {
        self.faults.gate.state.lock().unwrap().closed = true;
    }

    /// Lets held and future syncs through.
    pub fn open_gate(&self) {
        self.faults.gate.state.lock().unwrap().closed = false;
        self.faults.gate.changed.notify_all();
    }

    /// Blocks until some `sync` is held at the closed gate.
    pub fn wait_until_sync_held(&self) {
        let guard = self.faults.gate.state.lock().unwrap();
        drop(
            self.faults
                .gate
                .changed
                .wait_while(guard, |s| s.held == 0)
                .unwrap(),
        );
    }

    fn pass_gate(&self) {
        let mut state = self.faults.gate.state.lock().unwrap();
        if state.closed {
            state.held += 1;
            self.faults.gate.changed.notify_all();
            state = self
                .faults
                .gate
                .changed
                .wait_while(state, |s| s.closed)
                .unwrap();
            state.held -= 1;
        }
    }

    fn take(counter: &AtomicU32) -> bool {
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

impl<S: ChunkStore> ChunkStore for FaultyStore<S> {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn len(&self) -> Result<u64, StoreError> {
        self.inner.len()
    }

    fn read_at(&self, offset: u64, bufs: &mut [&mut [u8]]) -> Result<(), StoreError> {
        self.crashed(Op::Read)?;
        self.inner.read_at(offset, bufs)
    }

    fn write_at(&self, offset: u64, bufs: &[&[u8]]) -> Result<(), StoreError> {
        self.crashed(Op::Write)?;
        if Self::take(&self.faults.failing_writes) {
            return Err(StoreError::new(StoreErrorKind::Io, Op::Write));
        }
        if self.losing_writes.load(Ordering::SeqCst) {
            return Ok(());
        }
        self.inner.write_at(offset, bufs)
    }

    fn grow(&self, new_len: u64) -> Result<(), StoreError> {
        self.crashed(Op::Grow)?;
        self.inner.grow(new_len)
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.before_sync()?;
        self.inner.sync()?;
        self.faults.syncs.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// Faults as a sync (armed failures, the gate, losing writes), then the store's barrier.
    fn barrier(&self) -> Result<(), StoreError> {
        self.before_sync()?;
        self.inner.barrier()?;
        self.faults.syncs.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn start_writeback(&self, offset: u64, len: u64) -> Result<(), StoreError> {
        self.inner.start_writeback(offset, len)
    }

    fn weak_syncs(&self) -> u64 {
        self.inner.weak_syncs()
    }

    fn release(&self) {
        self.inner.release();
    }
}
