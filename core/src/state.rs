//! What every part of the pipe shares: the data store, the config, and the bookkeeping under
//! the state lock — staging, the open batch, epochs, the grow requests, the poison latch.
//!
//! The state lock is held only for O(1)-ish bookkeeping (and the copy of a write into staging),
//! never across a store call. Which epoch a write gets and which batch is sealed are decided
//! under it, so a write can never receive the epoch of a batch that was already sealed without
//! it. Each durability mode keeps its own state in its engine (`engine/`), under locks of its
//! own taken after this one.

use core::task::Poll;

use crate::latch::Latch;
use crate::mirror::{Mirrored, ReadMirror};
use crate::staging::{self, ChunkIndex, PlanEntry, Region, SlotPool};
use crate::sync::{Mutex, MutexGuard};
use crate::waiters::WaiterList;
use crate::{Config, Epoch, Error, Instant, StoreError};

/// Counters describing what a pipe has done, for tuning and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PipeStats {
    /// Batches published.
    pub batches: u64,
    /// Chunks in published batches (before dropping superseded writes).
    pub chunks: u64,
    /// Calls to the stores' `sync` and `barrier` made by steps (a checkpoint counts up to three;
    /// a batch whose write failed, none).
    pub syncs: u64,
    /// Bytes of journal records appended (`Journal::Atomic`).
    pub journal_bytes: u64,
    /// Bytes written in place to the data store (superseded writes are not written).
    pub in_place_bytes: u64,
    /// `Journal::Atomic`: commits that had to take a checkpoint first, because the journal half
    /// they needed was not yet free (the background fell behind). Each delayed that commit by a
    /// data sync.
    pub commits_behind_checkpoints: u64,
    /// Syncs of the data store (and its metadata and directory entries) weaker than the
    /// `ChunkStore::sync` contract, made where the file system refused the full one and the
    /// config allowed it ([`WeakSyncs`](crate::WeakSyncs)): a power loss can lose what they
    /// covered. Read from the store when the stats are taken.
    pub data_weak_syncs: u64,
    /// The same for the journal store (`Journal::Atomic`): with it, every acknowledgement rests
    /// on a journal sync.
    pub journal_weak_syncs: u64,
}

impl PipeStats {
    /// Bytes the pipe wrote to its stores per byte of published chunks: about 2 with
    /// `Journal::Atomic` (journal + in place), at most 1 with `Journal::Off`; `None` before
    /// anything was published.
    pub fn write_amplification(&self, chunk_size: u32) -> Option<f64> {
        let published = self.chunks * u64::from(chunk_size);
        (published > 0)
            .then(|| (self.journal_bytes + self.in_place_bytes) as f64 / published as f64)
    }
}

/// The batch writers are joining.
pub(crate) struct OpenBatch<'a> {
    pub(crate) plan: Region<'a, PlanEntry>,
    pub(crate) len: usize,
    pub(crate) epoch: Epoch,
    /// When a step first saw this batch hold writes (for `max_batch_delay`, for gathering, and
    /// for the background step, which commits a batch nobody has led for `flush_interval`).
    pub(crate) seen_at: Option<Instant>,
}

/// Waiters per batch, so that group commit can tell when the writers a publish released are
/// back: a commit that leaves without them carries them only one device flush later.
///
/// In a closed loop (each writer waits for its write, then writes again) the waiters of the
/// batch just published return within microseconds, while a commit takes a device flush. A
/// batch sealed before they join splits the writers into two groups that take turns, each
/// waiting through the other's flush; a batch that gathers them keeps one group whose every
/// member shares each flush. So the open batch is held ([`GATHER`](crate::engine::GATHER) at
/// most) until as many waiters joined it as were waiting when the last batch was published.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Gather {
    /// Waiters for the open batch.
    open: u32,
    /// Waiters for sealed batches not yet published.
    sealed: u32,
    /// Waiters at the last publish: as many are expected in the open batch.
    expected: u32,
}

impl Gather {
    /// A waiter asked for `epoch` (the open batch is `open`, everything up to `durable` is
    /// durable).
    pub(crate) fn waiter(&mut self, epoch: Epoch, open: Epoch, durable: Epoch) {
        if epoch >= open {
            self.open = self.open.saturating_add(1);
        } else if epoch > durable {
            self.sealed = self.sealed.saturating_add(1);
        }
    }

    /// The open batch was sealed.
    pub(crate) fn sealed(&mut self) {
        self.sealed = self.sealed.saturating_add(core::mem::take(&mut self.open));
    }

    /// A publish released the waiters of the sealed batches.
    fn published(&mut self) {
        self.expected = self.open.saturating_add(core::mem::take(&mut self.sealed));
    }

    /// Whether the open batch is still short of the waiters expected in it.
    pub(crate) fn short(&self) -> bool {
        self.open < self.expected
    }
}

/// Pending and finished grow requests.
#[derive(Default)]
pub(crate) struct GrowState {
    /// Requests issued so far; a request is identified by its sequence number.
    pub(crate) requested: u64,
    /// Every request up to this one has been handled (successfully or not).
    pub(crate) completed: u64,
    /// The length in chunks the pending requests add up to.
    pub(crate) target_chunks: u64,
    /// The most recent grow failure.
    pub(crate) last_error: Option<StoreError>,
}

/// Everything the state lock protects.
pub(crate) struct State<'a> {
    pub(crate) pool: SlotPool<'a>,
    pub(crate) index: ChunkIndex<'a>,
    pub(crate) open: OpenBatch<'a>,
    /// Plan memory for the next batches to seal: one plan is always the open batch's, and each
    /// sealed batch holds one until it is retired.
    pub(crate) spare_plans: [Option<Region<'a, PlanEntry>>; staging::PLANS - 1],
    /// Every batch up to this epoch is durable.
    pub(crate) durable: Epoch,
    /// The newest epoch someone asked to be made durable now (a wait, a sync): a flush step
    /// makes durable what is asked for; the rest the background step makes durable soon.
    pub(crate) wanted: Epoch,
    /// Who waits for which batch, for group commit to gather them.
    pub(crate) gather: Gather,
    /// The async waiters ([`Durable`](crate::Durable) futures), in epoch order.
    pub(crate) durable_waiters: WaiterList,
    /// Async writers waiting for staging ([`Pipe::write_async`](crate::Pipe::write_async)).
    pub(crate) room_waiters: WaiterList,
    /// Counts the times staging was freed that a writer waited for: an async writer that
    /// found staging full waits until it changes.
    pub(crate) room_generation: u64,
    /// The newest epoch an async waiter asked for: the background leads its commit, since no
    /// async task may block on one (`engine::async_due_at`).
    pub(crate) async_wanted: Epoch,
    /// Woken when an async waiter asks for an epoch no async waiter asked for before
    /// ([`Pipe::set_background_waker`](crate::Pipe::set_background_waker)).
    pub(crate) background_waker: Option<core::task::Waker>,
    /// The commit turn: who holds it, who was refused it.
    pub(crate) turn: crate::engine::Turn,
    pub(crate) len_chunks: u64,
    pub(crate) grow: GrowState,
    pub(crate) latch: Latch,
    pub(crate) closing: bool,
    /// A write or transaction found staging full, and no step has freed staging since: the
    /// step that does must wake it, and holding a batch open to gather writers is pointless.
    pub(crate) writers_waiting: bool,
    /// The background step went to sleep with nothing to do: the next step or write that gives
    /// it a deadline wakes it — a write opening a batch (so a batch nobody waits for still gets
    /// committed), a publish (which starts the idle checkpoint's clock).
    pub(crate) background_idle: bool,
    pub(crate) stats: PipeStats,
    /// What the read mirror was last told.
    pub(crate) mirrored: Mirrored,
}

impl<'a> State<'a> {
    /// The state of a pipe just opened, `len_chunks` long, with `durable` published.
    pub(crate) fn opened(
        pool: SlotPool<'a>,
        index: ChunkIndex<'a>,
        plans: [Region<'a, PlanEntry>; staging::PLANS],
        durable: Epoch,
        len_chunks: u64,
    ) -> Self {
        let [open_plan, spare_plans @ ..] = plans;
        State {
            pool,
            index,
            open: OpenBatch {
                plan: open_plan,
                len: 0,
                epoch: durable.next(),
                seen_at: None,
            },
            spare_plans: spare_plans.map(Some),
            durable,
            wanted: durable,
            gather: Gather::default(),
            durable_waiters: WaiterList::default(),
            room_waiters: WaiterList::default(),
            room_generation: 0,
            async_wanted: durable,
            background_waker: None,
            turn: crate::engine::Turn::default(),
            len_chunks,
            grow: GrowState::default(),
            latch: Latch::default(),
            closing: false,
            writers_waiting: false,
            background_idle: false,
            stats: PipeStats::default(),
            mirrored: Mirrored::START,
        }
    }

    /// Takes plan memory for the batch to seal next, if any is spare.
    pub(crate) fn take_spare_plan(&mut self) -> Option<Region<'a, PlanEntry>> {
        self.spare_plans.iter_mut().find_map(Option::take)
    }

    /// Whether a plan is spare: a batch can be sealed.
    pub(crate) fn has_spare_plan(&self) -> bool {
        self.spare_plans.iter().any(Option::is_some)
    }

    /// Gives back the plan memory of a retired batch.
    pub(crate) fn put_spare_plan(&mut self, plan: Region<'a, PlanEntry>) {
        if let Some(entry) = self.spare_plans.iter_mut().find(|entry| entry.is_none()) {
            *entry = Some(plan);
        }
    }

    /// A write or transaction found staging full: notes it and returns the error to give it.
    pub(crate) fn staging_full(&mut self) -> Error {
        self.writers_waiting = true;
        Error::WouldBlock
    }

    /// Staging was freed: whether a writer waited for it (and so must be woken).
    pub(crate) fn staging_freed(&mut self) -> bool {
        let waited = core::mem::take(&mut self.writers_waiting);
        self.room_generation += u64::from(waited);
        waited
    }

    /// The newest epoch handed to any write.
    pub(crate) fn issued(&self) -> Epoch {
        if self.open.len > 0 {
            self.open.epoch
        } else {
            Epoch::new(self.open.epoch.get() - 1)
        }
    }

    /// Every epoch handed to a write is published: no batch is open or being committed.
    pub(crate) fn all_published(&self) -> bool {
        self.issued() <= self.durable
    }

    /// `Ok` while the pipe takes writes.
    pub(crate) fn check_writable(&self) -> Result<(), Error> {
        self.latch.check()?;
        if self.closing {
            return Err(Error::Closed);
        }
        Ok(())
    }

    /// Appends a `HELD` slot to the open batch and makes it the newest value of its chunk.
    pub(crate) fn join_open(&mut self, slot: u32) {
        let chunk = self.pool.chunk_of(slot);
        self.pool.open(slot);
        let order = self.open.len as u32;
        self.open.plan[self.open.len] = PlanEntry::new(chunk, slot, order);
        self.open.len += 1;
        self.index.insert(chunk, slot);
    }

    /// Something the background step acts on appeared (a write or transaction joined the open
    /// batch, a batch was published): whether it must be woken, because it slept with nothing
    /// to do. It is woken once; it notes again when it next goes to sleep with nothing to do.
    pub(crate) fn rouse_background(&mut self) -> bool {
        core::mem::take(&mut self.background_idle)
    }

    /// Someone asks for `epoch` to be made durable now (see [`Pipe::request_durable`]).
    ///
    /// [`Pipe::request_durable`]: crate::Pipe::request_durable
    pub(crate) fn ask_durable(&mut self, epoch: Epoch) {
        let epoch = epoch.min(self.issued());
        self.wanted = self.wanted.max(epoch);
        let (open, durable) = (self.open.epoch, self.durable);
        self.gather.waiter(epoch, open, durable);
    }

    /// Whether `epoch` is durable (see [`Pipe::poll_durable`](crate::Pipe::poll_durable)).
    pub(crate) fn poll_durable(&self, epoch: Epoch) -> Poll<Result<(), Error>> {
        if epoch <= self.durable {
            Poll::Ready(Ok(()))
        } else if let Err(e) = self.latch.check() {
            Poll::Ready(Err(e))
        } else if epoch > self.issued() {
            Poll::Ready(Err(Error::InvalidInput("epoch was never handed out")))
        } else {
            Poll::Pending
        }
    }

    /// Every batch up to `epoch` is durable: publishes it.
    pub(crate) fn publish(&mut self, epoch: Epoch) {
        self.durable = self.durable.max(epoch);
        self.gather.published();
    }
}

/// The data store, the config and the state lock: what every step works on.
pub(crate) struct Shared<'a, S> {
    pub(crate) data: S,
    pub(crate) config: Config,
    state: Mutex<State<'a>>,
    mirror: ReadMirror,
}

impl<'a, S> Shared<'a, S> {
    pub(crate) fn new(data: S, config: Config, state: State<'a>) -> Self {
        Shared {
            data,
            config,
            state: Mutex::new(state),
            mirror: ReadMirror::new(),
        }
    }

    /// The state lock. Releasing it refreshes the mirror that reads without the lock consult.
    pub(crate) fn lock(&self) -> StateGuard<'_, 'a> {
        StateGuard {
            guard: self.state.lock(),
            mirror: &self.mirror,
        }
    }

    /// What reads without the lock consult.
    #[cfg(feature = "std")]
    pub(crate) fn mirror(&self) -> &ReadMirror {
        &self.mirror
    }

    /// Latches `e` (unless a failure is latched already) and returns the poison error.
    pub(crate) fn trip(&self, e: StoreError) -> Error {
        self.lock().latch.trip(e)
    }

    /// Bytes per chunk as a `u64`, for offset arithmetic.
    pub(crate) fn chunk_bytes(&self) -> u64 {
        u64::from(self.config.chunk_size)
    }

    /// Checks that `len_bytes` is a non-zero whole number of chunks and that they fit at
    /// `index`; returns the chunk count.
    pub(crate) fn check_range(
        &self,
        index: u64,
        len_bytes: usize,
        len_chunks: u64,
    ) -> Result<u64, Error> {
        let chunk = self.config.chunk_size as usize;
        if len_bytes == 0 || len_bytes % chunk != 0 {
            return Err(Error::InvalidInput(
                "buffer length must be a non-zero multiple of chunk_size",
            ));
        }
        let count = (len_bytes / chunk) as u64;
        match index.checked_add(count) {
            Some(end) if end <= len_chunks => Ok(count),
            _ => Err(Error::OutOfRange {
                index,
                count,
                len_chunks,
            }),
        }
    }

    /// Checks that `chunks` fit in staging at all: a write larger than staging is never split.
    pub(crate) fn check_fits_staging(&self, chunks: u64) -> Result<(), Error> {
        let capacity = u64::from(self.config.staging_chunks);
        if chunks > capacity {
            return Err(Error::TooLarge { chunks, capacity });
        }
        Ok(())
    }
}

/// The state lock's guard. Dropping it first refreshes the read mirror, then unlocks: the
/// mirror never lags a release that another thread could observe.
pub(crate) struct StateGuard<'p, 'a> {
    guard: MutexGuard<'p, State<'a>>,
    mirror: &'p ReadMirror,
}

impl<'a> core::ops::Deref for StateGuard<'_, 'a> {
    type Target = State<'a>;

    fn deref(&self) -> &State<'a> {
        &self.guard
    }
}

impl<'a> core::ops::DerefMut for StateGuard<'_, 'a> {
    fn deref_mut(&mut self) -> &mut State<'a> {
        &mut self.guard
    }
}

impl Drop for StateGuard<'_, '_> {
    fn drop(&mut self) {
        let state = &mut *self.guard;
        let unstaged = state.index.is_empty() && state.latch.check().is_ok();
        self.mirror
            .refresh(&mut state.mirrored, unstaged, state.len_chunks);
    }
}
