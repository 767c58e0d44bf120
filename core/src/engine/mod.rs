//! The engines: how a batch becomes durable, one per durability mode, each with its own state,
//! its steps and its invariants.
//!
//! | engine | commit (`flush_step`) | background (`background_step`) | invariant |
//! |---|---|---|---|
//! | [`off::OffEngine`] | write the batch in place; sync if someone asked for it | sync what was written in place | at most two batches written ahead of the syncs |
//! | [`atomic::AtomicEngine`] | append the batch to the journal, sync it, publish | write published batches in place, pace their writeback, checkpoint | every batch is in place before a checkpoint covers it |
//!
//! Two steps, with roles fixed by what they are, never by who called what before:
//!
//! - **`flush_step`** makes the open batch durable: it is the commit. Under `std` the thread
//!   that waits for durability and finds no commit running runs it itself (leader/follower
//!   group commit): it commits for everyone staged so far, and writers that arrive meanwhile
//!   form the next batch. At most one runs at a time per engine.
//! - **`background_step`** does what would otherwise delay a commit: writing published batches
//!   in place and checkpoints (`Journal::Atomic`), syncs nobody asked for yet (`Journal::Off`),
//!   and committing a batch nobody has led for `flush_interval`.
//!
//! Each step returns a [`Wake`]: what it made ready, so its caller wakes exactly who waits for
//! it. **A step publishes at most once, as its last action**: so a step that fails has
//! published nothing, and every epoch a step publishes was covered by the one sync that step
//! completed last.

pub(crate) mod apply;
pub(crate) mod atomic;
pub(crate) mod checkpoint;
pub(crate) mod off;
pub(crate) mod queue;

use crate::staging::SealedBatch;
use crate::state::{Shared, State};
use crate::waiters::ReadyWakers;
use crate::{ChunkStore, Config, Epoch, Error, Instant, Op, StoreError, StoreErrorKind};

/// What a step made ready: whom its caller must wake. Nothing else is worth a wake-up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Wake {
    /// Every batch up to this epoch is durable now: waiters on them can return.
    pub durable: Option<Epoch>,
    /// Staging was freed that a writer waited for.
    pub writers: bool,
    /// A grow request was handled, or a close has nothing more to wait for: their waiters.
    pub settled: bool,
    /// The background step has work now (a batch to write in place, a sync or a checkpoint
    /// owed).
    pub background: bool,
    /// Callers were refused the commit turn ([`Error::WouldBlock`]) while this step held it,
    /// and it is free now: they look again (one of them leads the next commit).
    pub refused: bool,
}

impl Wake {
    /// Whether anyone waiting for progress — on an epoch, on staging, on a grow or a close, or
    /// for the commit turn — must be woken.
    pub fn waiters(&self) -> bool {
        self.durable.is_some() || self.writers || self.settled || self.refused
    }

    /// Whether the step did anything a caller could wait for (a reason to look for more work
    /// at once rather than sleep).
    pub fn progressed(&self) -> bool {
        self.waiters() || self.background
    }
}

impl core::ops::BitOrAssign for Wake {
    fn bitor_assign(&mut self, other: Wake) {
        self.durable = self.durable.max(other.durable);
        self.writers |= other.writers;
        self.settled |= other.settled;
        self.background |= other.background;
        self.refused |= other.refused;
    }
}

/// The engine of a pipe's durability mode.
#[allow(
    clippy::large_enum_variant,
    reason = "a pipe holds one engine for its whole life, and boxing needs an allocator"
)]
pub(crate) enum Engine<'a, S> {
    Off(off::OffEngine),
    Atomic(atomic::AtomicEngine<'a, S>),
}

impl<'a, S: ChunkStore> Engine<'a, S> {
    /// Commits the open batch (see the module docs).
    pub(crate) fn flush_step(&self, shared: &Shared<'a, S>, now: Instant) -> Result<Wake, Error> {
        let unwinding = PoisonOnUnwind(shared);
        let result = match self {
            Engine::Off(off) => off.flush_step(shared, now),
            Engine::Atomic(atomic) => atomic.flush_step(shared, now),
        };
        core::mem::forget(unwinding);
        stepped(shared, result)
    }

    /// The background's work (see the module docs), then a batch nobody leads.
    pub(crate) fn background_step(
        &self,
        shared: &Shared<'a, S>,
        now: Instant,
    ) -> Result<Wake, Error> {
        let unwinding = PoisonOnUnwind(shared);
        let result = self.background_work(shared, now);
        core::mem::forget(unwinding);
        stepped(shared, result)
    }

    fn background_work(&self, shared: &Shared<'a, S>, now: Instant) -> Result<Wake, Error> {
        let mut wake = match self {
            Engine::Off(off) => off.background_step(shared)?,
            Engine::Atomic(atomic) => atomic.background_step(shared, now)?,
        };
        if wake.durable.is_some() {
            // A step publishes once, last: the aged batch is the next step's.
            return Ok(wake);
        }
        if self.leads_now(&mut shared.lock(), &shared.config, now) {
            match self.flush_step(shared, now) {
                Ok(flushed) => wake |= flushed,
                // A leader runs the commit already.
                Err(Error::WouldBlock) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(wake)
    }

    /// When the background step next has work: `Some(now)` or later; `None` while it has
    /// nothing to do until a commit or a write hands it some, and once the pipe is poisoned
    /// (what is left undone stays undone).
    pub(crate) fn next_background_at(
        &self,
        state: &mut State<'_>,
        config: &Config,
        now: Instant,
    ) -> Option<Instant> {
        state.latch.check().ok()?;
        let own = match self {
            Engine::Off(off) => off.owes(state).then_some(now),
            Engine::Atomic(atomic) => atomic.next_background_at(config, state, now),
        };
        let aged_at = aged_at(state, config, now);
        let async_at = async_due_at(state, config, now);
        [own, aged_at, async_at].into_iter().flatten().min()
    }

    /// Whether the background step commits the open batch now: nobody has led it for
    /// `flush_interval`, or an async waiter wants it and a flush step would commit it now.
    fn leads_now(&self, state: &mut State<'_>, config: &Config, now: Instant) -> bool {
        let due = |at: Option<Instant>| at.is_some_and(|at| at <= now);
        due(aged_at(state, config, now)) || due(async_due_at(state, config, now))
    }

    /// Whether the engine owes a close nothing more: every batch it took is durable and
    /// (`Journal::Atomic`) in place and checkpointed. That no batch is open or being committed
    /// is the close's own check ([`State::all_published`]).
    pub(crate) fn settled(&self, state: &State<'_>) -> bool {
        match self {
            Engine::Off(off) => !off.owes(state),
            Engine::Atomic(atomic) => atomic.settled(state),
        }
    }
}

/// When a batch nobody has led becomes the background step's to commit: `flush_interval` after
/// a step first saw it hold writes (the first look stamps it).
fn aged_at(state: &mut State<'_>, config: &Config, now: Instant) -> Option<Instant> {
    if state.open.len == 0 {
        return None;
    }
    let seen = *state.open.seen_at.get_or_insert(now);
    Some(seen.saturating_add(config.flush_interval).max(now))
}

/// When the background commits the open batch for an async waiter: when a flush step would
/// (an async task never leads a commit itself; see `waiters.rs`). `None` while a flush step
/// runs: it may commit the batch itself; if not, it hands it back when it ends ([`stepped`]).
fn async_due_at(state: &mut State<'_>, config: &Config, now: Instant) -> Option<Instant> {
    if state.open.len == 0 || state.async_wanted < state.open.epoch {
        return None;
    }
    if state.turn.held {
        state.turn.deferred_background = true;
        return None;
    }
    next_flush_at(state, config, now)
}

/// What every step does last: wakes the async waiters it made ready (on epochs it published,
/// on staging it freed; every one when it failed); and, once no commit runs, hands back what was
/// left to the commit that ran: the turn to whoever was refused it, an async waiter's batch to
/// the background ([`async_due_at`]).
fn stepped<S>(shared: &Shared<'_, S>, result: Result<Wake, Error>) -> Result<Wake, Error> {
    match result {
        Ok(mut wake) => {
            // One critical section for both: this runs after every step.
            let mut state = shared.lock();
            if !state.turn.held {
                wake.refused |= core::mem::take(&mut state.turn.refused);
                wake.background |= core::mem::take(&mut state.turn.deferred_background);
            }
            let ready = (wake.durable.is_some() || wake.writers)
                .then(|| state.take_ready_waiters(wake.writers));
            drop(state);
            if ready.is_some_and(ReadyWakers::wake) {
                shared.wake_waiters(wake.writers);
            }
            Ok(wake)
        }
        Err(Error::WouldBlock) => Err(Error::WouldBlock),
        Err(e) => {
            shared.wake_waiters(true);
            Err(e)
        }
    }
}

/// Who holds the commit turn, and who was turned away while it was held (under the state lock).
#[derive(Debug, Default)]
pub(crate) struct Turn {
    /// A flush step holds it.
    pub(crate) held: bool,
    /// A flush step was refused it (`WouldBlock`): its caller sleeps until a step wakes it.
    pub(crate) refused: bool,
    /// The background left an async waiter's batch to the holder ([`async_due_at`]).
    pub(crate) deferred_background: bool,
}

/// A flush step's turn to commit: one at a time per pipe. Taken and given up under the state
/// lock, so that whoever is refused it is noted in the same critical section that sees it held,
/// and the step that ends the turn wakes them ([`stepped`]): a refused caller never sleeps
/// through the end of a commit that did not publish what it waits for.
pub(crate) struct CommitTurn<'s, 'a, S> {
    shared: &'s Shared<'a, S>,
}

impl<'s, 'a, S> CommitTurn<'s, 'a, S> {
    /// Takes the turn, or [`Error::WouldBlock`] while another step holds it.
    pub(crate) fn take(shared: &'s Shared<'a, S>) -> Result<Self, Error> {
        let mut state = shared.lock();
        if state.turn.held {
            state.turn.refused = true;
            return Err(Error::WouldBlock);
        }
        state.turn.held = true;
        Ok(CommitTurn { shared })
    }
}

impl<S> Drop for CommitTurn<'_, '_, S> {
    fn drop(&mut self) {
        self.shared.lock().turn.held = false;
    }
}

/// Handles pending grow requests: grows the data store to the target, then whatever else
/// `also` grows with it (`Journal::Atomic`: the checksum table and its journal space). A
/// failed grow fails its requests but does not poison the pipe, unless the failure was the
/// sync that makes the length durable.
pub(crate) fn grow_step<S: ChunkStore>(
    shared: &Shared<'_, S>,
    also: impl FnOnce(u64) -> Result<(), StoreError>,
) -> Result<Wake, Error> {
    let (seq, target_chunks) = {
        let state = shared.lock();
        state.latch.check()?;
        if state.grow.completed == state.grow.requested {
            return Ok(Wake::default());
        }
        (state.grow.requested, state.grow.target_chunks)
    };
    // request_grow checked that the byte length does not overflow.
    let result = (shared.data)
        .grow(target_chunks * shared.chunk_bytes())
        .and_then(|()| also(target_chunks));
    let mut state = shared.lock();
    state.grow.completed = seq;
    match result {
        Ok(()) => state.len_chunks = state.len_chunks.max(target_chunks),
        Err(e) if e.op == Op::Sync => return Err(state.latch.trip(e)),
        Err(e) => {
            state.grow.last_error = Some(e);
            if state.grow.requested == seq {
                state.grow.target_chunks = state.len_chunks;
            }
        }
    }
    Ok(Wake {
        settled: true,
        ..Wake::default()
    })
}

/// Seals the open batch and assigns its epoch, in one step under the lock: `None` when it is
/// empty or not yet due ([`seal_due_at`]). The caller made sure a plan is spare.
pub(crate) fn seal<'a, S>(
    shared: &Shared<'a, S>,
    now: Instant,
) -> Result<Option<(SealedBatch<'a>, Epoch)>, Error> {
    let mut guard = shared.lock();
    let state = &mut *guard;
    state.latch.check()?;
    if state.open.len == 0 {
        return Ok(None);
    }
    let seen = *state.open.seen_at.get_or_insert(now);
    if now < seal_due_at(state, &shared.config, seen) {
        return Ok(None);
    }
    let Some(spare) = state.take_spare_plan() else {
        let bug = StoreError::new(StoreErrorKind::Internal, Op::Write);
        return Err(state.latch.trip(bug));
    };
    let plan = core::mem::replace(&mut state.open.plan, spare);
    let len = core::mem::replace(&mut state.open.len, 0);
    state.gather.sealed();
    let epoch = state.open.epoch;
    state.open.epoch = epoch.next();
    state.open.seen_at = None;
    Ok(Some((state.pool.seal(plan, len), epoch)))
}

/// How long a commit holds the open batch for the waiters the last publish released to join it
/// ([`Gather`](crate::state::Gather)): a fraction of a device flush, which they then share.
///
/// Zero in the loom models: their clock stands still and loom's condvar never times out, so a
/// hold that only time ends would spin there; the unit tests drive gathering with explicit times.
pub(crate) const GATHER: core::time::Duration = if cfg!(loom) {
    core::time::Duration::ZERO
} else {
    core::time::Duration::from_micros(50)
};

/// When the open batch, first seen by a step at `seen`, is due to be sealed.
///
/// At once when the pipe is closing or a writer waits for staging (nobody more can join). A
/// batch someone waits for — group commit — at once too, unless it has fewer waiters than the
/// last publish released: then it is held for up to [`GATHER`] while they come back
/// ([`Gather`](crate::state::Gather)), and the waiter who brings the count up seals it (it
/// leads). A batch nobody waits for is held for `max_batch_delay`.
fn seal_due_at(state: &State<'_>, config: &Config, seen: Instant) -> Instant {
    if state.closing || state.writers_waiting {
        return seen;
    }
    if state.wanted < state.open.epoch {
        return seen.saturating_add(config.max_batch_delay);
    }
    if state.gather.short() {
        return seen.saturating_add(GATHER);
    }
    seen
}

/// When a flush step next has work: `Some(now)` or later, `None` with nothing to commit.
pub(crate) fn next_flush_at(state: &State<'_>, config: &Config, now: Instant) -> Option<Instant> {
    if state.latch.check().is_err() {
        return None;
    }
    if state.grow.completed < state.grow.requested {
        return Some(now);
    }
    if state.open.len == 0 {
        return None;
    }
    let seen = state.open.seen_at.unwrap_or(now);
    Some(seal_due_at(state, config, seen).max(now))
}

/// The most buffers the core puts into one vectored in-place `write_at` call (a stack array).
const MAX_BUFS_PER_CALL: usize = 64;

/// Writes a prepared batch where its chunks live, in runs of consecutive chunks, one vectored
/// call per run (split at the store's buffer limit).
pub(crate) fn write_in_place<S: ChunkStore>(
    data: &S,
    chunk_bytes: u64,
    batch: &SealedBatch<'_>,
) -> Result<(), StoreError> {
    let max_bufs = data.capabilities().max_bufs.clamp(1, MAX_BUFS_PER_CALL);
    let mut bufs: [&[u8]; MAX_BUFS_PER_CALL] = [&[]; MAX_BUFS_PER_CALL];
    let live = batch.live_len();
    let mut i = 0;
    while i < live {
        let run = batch.consecutive_run(i, max_bufs);
        for (k, buf) in bufs[..run].iter_mut().enumerate() {
            *buf = batch.bytes(i + k);
        }
        data.write_at(batch.chunk(i) * chunk_bytes, &bufs[..run])?;
        i += run;
    }
    Ok(())
}

/// Retires a batch whose slots nobody needs any more (written in place, or failed): its
/// staging is free once readers let go. Returns whether a writer waited for staging.
pub(crate) fn retire<'a>(state: &mut State<'a>, batch: SealedBatch<'a>) -> bool {
    let plan = state.pool.retire(batch, &mut state.index);
    state.put_spare_plan(plan);
    state.staging_freed()
}

/// Retires a batch that failed and latches `e`; returns the poison error.
pub(crate) fn fail<'a, S>(shared: &Shared<'a, S>, batch: SealedBatch<'a>, e: StoreError) -> Error {
    let mut state = shared.lock();
    retire(&mut state, batch);
    if e.op == Op::Sync {
        state.stats.syncs += 1;
    }
    state.latch.trip(e)
}

/// Poisons the pipe when dropped: armed around every step, so that a store that panics in
/// one (or a bug) leaves the pipe poisoned, never half-way through a step and still taking
/// work. A sync that panicked may have failed, and a later successful sync proves nothing
/// about the batches it covered, so nothing in flight may be published after it. Disarmed
/// with `mem::forget` once the step returns.
struct PoisonOnUnwind<'s, 'a, S>(&'s Shared<'a, S>);

impl<S> Drop for PoisonOnUnwind<'_, '_, S> {
    fn drop(&mut self) {
        self.0
            .trip(StoreError::new(StoreErrorKind::Internal, Op::Sync));
        self.0.wake_waiters(true);
    }
}
