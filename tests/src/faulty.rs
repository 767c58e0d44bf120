//! [`FaultyStore`]: a store wrapper that fails or holds operations on demand.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use chunkpipe_core::{Capabilities, ChunkStore, Op, StoreError, StoreErrorKind};

/// Wraps a store; tests arm it to fail the next writes or syncs, or to hold syncs at a gate.
/// The data and journal stores of one pipe share their controls ([`FaultyStore::beside`]), so
/// "the next sync" is whichever of them syncs next.
#[derive(Debug)]
pub struct FaultyStore<S> {
    inner: S,
    faults: Arc<Faults>,
}

#[derive(Debug, Default)]
struct Faults {
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
        }
    }

    /// Wraps `inner` sharing the fault controls of `other`.
    pub fn beside<T>(inner: S, other: &FaultyStore<T>) -> Self {
        FaultyStore {
            inner,
            faults: Arc::clone(&other.faults),
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

    /// The next `sync` panics (a broken store, or a bug under the flusher).
    pub fn panic_next_sync(&self) {
        self.faults.panicking_syncs.fetch_add(1, Ordering::SeqCst);
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
        self.inner.read_at(offset, bufs)
    }

    fn write_at(&self, offset: u64, bufs: &[&[u8]]) -> Result<(), StoreError> {
        if Self::take(&self.faults.failing_writes) {
            return Err(StoreError::new(StoreErrorKind::Io, Op::Write));
        }
        self.inner.write_at(offset, bufs)
    }

    fn grow(&self, new_len: u64) -> Result<(), StoreError> {
        self.inner.grow(new_len)
    }

    fn sync(&self) -> Result<(), StoreError> {
        self.pass_gate();
        assert!(
            !Self::take(&self.faults.panicking_syncs),
            "FaultyStore: sync armed to panic"
        );
        if Self::take(&self.faults.failing_syncs) {
            return Err(StoreError::new(StoreErrorKind::Io, Op::Sync));
        }
        self.inner.sync()?;
        self.faults.syncs.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn start_writeback(&self, offset: u64, len: u64) -> Result<(), StoreError> {
        self.inner.start_writeback(offset, len)
    }
}
