//! Async waiting: [`Durable`], a future that resolves once an epoch is durable, woken by the
//! step that publishes it, and [`Pipe::write_async`] / [`Pipe::transaction_async`], which wait
//! for staging room, woken by whatever frees it — with no allocation per wait and no polling.
//!
//! Every waiting future carries its own list node. The first poll that finds its epoch not yet
//! durable links the node into the pipe's waiter list, under the state lock, and asks for the
//! epoch to be made durable now (as a blocking [`wait`](crate::BlockingPipe::wait) does). The
//! list is kept in epoch order, so the step that publishes epoch `e` unlinks the nodes at the
//! front up to `e` and wakes their wakers — after releasing the lock, a few at a time. When the
//! pipe is poisoned, every node is unlinked and woken. A future dropped while linked unlinks
//! itself. So a thousand waiting tasks cost the pipe no memory of its own: the list is threaded
//! through the futures, which do not move while they wait (they are `!Unpin`).
//!
//! Writers waiting for staging wait in a second list the same way. A writer reads the room
//! generation (`State::room_generation`, advanced whenever staging is freed that a writer
//! waited for), tries, and on `WouldBlock` waits until the generation moves: staging freed
//! between its try and its wait ends the wait at once. Every freeing that reports
//! `Wake::writers` — a step, a read, a transaction giving staging back — wakes the list; so do
//! poisoning and closing.
//!
//! Nobody leads a commit for a future — a task must not block its executor on a device sync.
//! The **background** leads it: an async registration that asks for a new epoch wakes the
//! background waker ([`Pipe::set_background_waker`]), and the background step commits a batch an
//! async waiter wants as soon as a flush step would (`engine::async_due_at`). Under `std`,
//! [`ThreadedPipe`](crate::ThreadedPipe) registers its background thread; without it, the task
//! or main loop that runs the steps registers itself.
//!
//! **Safety argument.** A node is read or written only under the state lock, by the list or by
//! its own future (which reaches it through a shared reference and an `UnsafeCell`). A linked
//! node is pinned: it was linked from `poll`, through `Pin<&mut Durable>`, so it stays at its
//! address until its future is dropped, and the drop unlinks it under the lock first. The list
//! therefore never holds a pointer to a node that moved or is gone.

// The one other module with `unsafe` besides `staging`: an intrusive list is the only way to
// let any number of futures wait without allocating.
#![allow(unsafe_code)]

use core::cell::{Cell, UnsafeCell};
use core::future::Future;
use core::marker::PhantomPinned;
use core::pin::Pin;
use core::ptr::NonNull;
use core::task::{Context, Poll, Waker};

use crate::state::{Shared, State};
use crate::{ChunkStore, Epoch, Error, Pipe};

/// How many wakers a waking pass takes out under the lock before it releases the lock and wakes
/// them: the lock is never held across a waker, and a pass costs no allocation.
const WAKE_BATCH: usize = 16;

/// One waiting future's place in the list.
struct Node {
    epoch: Epoch,
    waker: Option<Waker>,
    prev: Option<NonNull<Node>>,
    next: Option<NonNull<Node>>,
    /// In the list (set and cleared under the state lock).
    linked: bool,
    /// A linked node must not move.
    _pinned: PhantomPinned,
}

/// The async waiters, in epoch order (oldest first), threaded through their futures' nodes.
#[derive(Default)]
pub(crate) struct WaiterList {
    head: Option<NonNull<Node>>,
    tail: Option<NonNull<Node>>,
}

// SAFETY: the list's pointers are followed only under the state lock, which serializes every
// access to the nodes (module docs); the nodes hold nothing but epochs, links and a `Waker`,
// which is `Send`.
unsafe impl Send for WaiterList {}

impl WaiterList {
    /// Links `node` after the last node of an epoch at most its own (usually the tail).
    ///
    /// # Safety
    /// `node` is valid, pinned, not linked, and every node access happens under the state
    /// lock, which the caller holds.
    unsafe fn link(&mut self, node: NonNull<Node>) {
        // SAFETY: the caller holds the state lock; `node` and every linked node are valid.
        unsafe {
            let epoch = (*node.as_ptr()).epoch;
            let mut after = self.tail;
            while let Some(prev) = after {
                if (*prev.as_ptr()).epoch <= epoch {
                    break;
                }
                after = (*prev.as_ptr()).prev;
            }
            let before = match after {
                Some(prev) => (*prev.as_ptr()).next.replace(node),
                None => self.head.replace(node),
            };
            match before {
                Some(next) => (*next.as_ptr()).prev = Some(node),
                None => self.tail = Some(node),
            }
            let n = &mut *node.as_ptr();
            (n.prev, n.next, n.linked) = (after, before, true);
        }
    }

    /// Unlinks `node`.
    ///
    /// # Safety
    /// `node` is linked in this list, and the caller holds the state lock.
    unsafe fn unlink(&mut self, node: NonNull<Node>) {
        // SAFETY: the caller holds the state lock; `node` and its neighbours are linked.
        unsafe {
            let n = &mut *node.as_ptr();
            match n.prev {
                Some(prev) => (*prev.as_ptr()).next = n.next,
                None => self.head = n.next,
            }
            match n.next {
                Some(next) => (*next.as_ptr()).prev = n.prev,
                None => self.tail = n.prev,
            }
            (n.prev, n.next, n.linked) = (None, None, false);
        }
    }

    /// Unlinks up to `out.len()` nodes that are ready — their epoch is at most `durable`, or
    /// `all` — and moves their wakers into `out`. Returns how many it took.
    fn take_ready(&mut self, durable: Epoch, all: bool, out: &mut [Option<Waker>]) -> usize {
        let mut taken = 0;
        while taken < out.len() {
            let Some(node) = self.head else { break };
            // SAFETY: `take_ready` runs under the state lock (it is reached only through a
            // `StateGuard`); the head is linked, hence valid.
            unsafe {
                if !all && (*node.as_ptr()).epoch > durable {
                    break;
                }
                self.unlink(node);
                out[taken] = (*node.as_ptr()).waker.take();
            }
            taken += 1;
        }
        taken
    }
}

/// Keeps `waker` in `slot`, unless the one there already wakes the same task (no clone then).
pub(crate) fn keep_waker(slot: &mut Option<Waker>, waker: &Waker) {
    match slot {
        Some(old) => old.clone_from(waker),
        None => *slot = Some(waker.clone()),
    }
}

/// A future's place in one of the pipe's waiter lists: its node, and whether it was ever
/// linked (so that dropping a future that never waited takes no lock).
struct Place {
    /// Touched only under the state lock once linked (module docs).
    node: UnsafeCell<Node>,
    /// Only the future's owner touches it.
    registered: Cell<bool>,
}

impl Place {
    fn new(epoch: Epoch) -> Self {
        Place {
            node: UnsafeCell::new(Node {
                epoch,
                waker: None,
                prev: None,
                next: None,
                linked: false,
                _pinned: PhantomPinned,
            }),
            registered: Cell::new(false),
        }
    }

    fn node(&self) -> NonNull<Node> {
        // SAFETY: `UnsafeCell::get` never returns null.
        unsafe { NonNull::new_unchecked(self.node.get()) }
    }

    /// Under the state lock: leaves `list` once the wait is `over`; otherwise keeps `waker`
    /// and joins `list` if not in it yet. Returns whether it just joined.
    ///
    /// # Safety
    /// The caller holds the state lock, `list` is one of its lists and the only one this place
    /// is ever linked in, and `self` is pinned (reached through `Pin`) and is left before it is
    /// dropped ([`leave`](Place::leave)).
    unsafe fn settle(&self, list: &mut WaiterList, over: bool, waker: &Waker) -> bool {
        let node = self.node();
        // SAFETY: under the state lock, the node is touched by nobody else; linked, it is in
        // `list`; unlinked, it is pinned and will be left before it is dropped.
        unsafe {
            let linked = (*node.as_ptr()).linked;
            if over {
                if linked {
                    list.unlink(node);
                }
                return false;
            }
            keep_waker(&mut (*node.as_ptr()).waker, waker);
            if linked {
                return false;
            }
            list.link(node);
        }
        self.registered.set(true);
        true
    }

    /// Under the state lock: leaves `list` if in it (a future being dropped).
    ///
    /// # Safety
    /// As [`settle`](Place::settle).
    unsafe fn leave(&self, list: &mut WaiterList) {
        let node = self.node();
        // SAFETY: as in `settle`.
        unsafe {
            if (*node.as_ptr()).linked {
                list.unlink(node);
            }
        }
    }
}

/// A future that resolves once `epoch` is durable: `Ok(())`, or the error
/// [`Pipe::poll_durable`] gives ([`Error::Poisoned`] if its batch or an earlier one failed).
/// Made by [`Pipe::durable`], which says who commits.
///
/// It allocates nothing: its list node lives inside it. It is woken by the step that publishes
/// its epoch (or poisons the pipe), never by a timer.
#[must_use = "a future does nothing unless awaited"]
pub struct Durable<'p, 'a, S> {
    pipe: &'p Pipe<'a, S>,
    epoch: Epoch,
    place: Place,
}

// SAFETY: moving the future to another thread moves its node with it, and the node is touched
// only under the state lock (module docs); the rest is a shared reference to a pipe that is
// `Sync` and an epoch.
unsafe impl<'a, S> Send for Durable<'_, 'a, S> where Pipe<'a, S>: Sync {}

// SAFETY: a shared `&Durable` gives access to nothing but its epoch (`poll` needs
// `Pin<&mut Self>`), so sharing one between threads cannot race on the node.
unsafe impl<'a, S> Sync for Durable<'_, 'a, S> where Pipe<'a, S>: Sync {}

impl<'p, 'a, S> Durable<'p, 'a, S> {
    pub(crate) fn new(pipe: &'p Pipe<'a, S>, epoch: Epoch) -> Self {
        Durable {
            pipe,
            epoch,
            place: Place::new(epoch),
        }
    }

    /// The epoch it waits for.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }
}

impl<S> Future for Durable<'_, '_, S> {
    type Output = Result<(), Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Only shared access from here on: the node is reached through its `UnsafeCell`, and
        // the pin keeps it in place.
        let this = self.into_ref().get_ref();
        let mut state = this.pipe.shared.lock();
        let ready = state.poll_durable(this.epoch);
        let list = &mut state.durable_waiters;
        // SAFETY: we hold the state lock; this place is only ever in `durable_waiters`; it is
        // pinned, and `drop` leaves the list.
        let joined = unsafe { this.place.settle(list, ready.is_ready(), cx.waker()) };
        if joined {
            let background = request_async(&mut state, this.epoch);
            drop(state);
            if let Some(background) = background {
                background.wake();
            }
        }
        ready
    }
}

/// An async waiter asks for `epoch` (not yet durable, handed out) to be made durable now:
/// returns the background waker to wake if this is the first to ask for it — the background
/// leads commits for async waiters.
fn request_async(state: &mut State<'_>, epoch: Epoch) -> Option<Waker> {
    state.ask_durable(epoch);
    if epoch <= state.async_wanted {
        return None;
    }
    state.async_wanted = epoch;
    state.background_waker.clone()
}

impl<S> Drop for Durable<'_, '_, S> {
    fn drop(&mut self) {
        if self.place.registered.get() {
            let mut state = self.pipe.shared.lock();
            // SAFETY: as in `poll`.
            unsafe { self.place.leave(&mut state.durable_waiters) };
        }
    }
}

impl<S> core::fmt::Debug for Durable<'_, '_, S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Durable")
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

/// Resolves once staging may have room again: a step, read or transaction freed staging a
/// writer waited for since `generation` ([`State::room_generation`]), or the pipe was poisoned
/// or closed. The writer then tries again ([`Pipe::write_async`]).
struct Room<'p, 'a, S> {
    pipe: &'p Pipe<'a, S>,
    generation: u64,
    place: Place,
}

impl<S> Future for Room<'_, '_, S> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.into_ref().get_ref();
        let mut guard = this.pipe.shared.lock();
        let state = &mut *guard;
        let over = state.room_generation != this.generation
            || state.closing
            || state.latch.check().is_err();
        // SAFETY: we hold the state lock; this place is only ever in `room_waiters`; it is
        // pinned, and `drop` leaves the list.
        unsafe { this.place.settle(&mut state.room_waiters, over, cx.waker()) };
        if over { Poll::Ready(()) } else { Poll::Pending }
    }
}

impl<S> Drop for Room<'_, '_, S> {
    fn drop(&mut self) {
        if self.place.registered.get() {
            let mut state = self.pipe.shared.lock();
            // SAFETY: as in `poll`.
            unsafe { self.place.leave(&mut state.room_waiters) };
        }
    }
}

// SAFETY: as for `Durable`: the node moves with the future and is touched only under the state
// lock.
unsafe impl<'a, S> Send for Room<'_, 'a, S> where Pipe<'a, S>: Sync {}

impl<'a, S: ChunkStore> Pipe<'a, S> {
    /// [`try_write`](Pipe::try_write) for async code: when staging is full, waits —
    /// asynchronously, woken by whatever frees staging — and tries again, instead of returning
    /// [`Error::WouldBlock`]. Returns the epoch to [`.await` durability](Pipe::durable) on.
    ///
    /// Staging is freed by the steps (with `Journal::Atomic`, once a published batch is written
    /// in place by the background), by reads that held it and by transactions that give it
    /// back; someone must run the steps (see [`durable`](Pipe::durable)).
    ///
    /// # Errors
    /// As [`try_write`](Pipe::try_write), except `WouldBlock`.
    pub async fn write_async(&self, index: u64, data: &[u8]) -> Result<Epoch, Error> {
        self.with_room(|| self.try_write(index, data)).await
    }

    /// [`transaction`](Pipe::transaction) for async code: waits for staging as
    /// [`write_async`](Pipe::write_async) does. Commit it, then `.await`
    /// [`durable`](Pipe::durable) on the epoch.
    ///
    /// # Errors
    /// As [`transaction`](Pipe::transaction), except `WouldBlock`.
    pub async fn transaction_async(
        &self,
        max_chunks: u32,
    ) -> Result<crate::Transaction<'_, 'a, S>, Error> {
        self.with_room(|| self.transaction(max_chunks)).await
    }

    /// Runs `attempt` until staging has room for it, waiting for staging to be freed between
    /// attempts. The generation is read before the attempt: staging freed after a full attempt
    /// changes it, so the wait ends at once.
    async fn with_room<T>(
        &self,
        mut attempt: impl FnMut() -> Result<T, Error>,
    ) -> Result<T, Error> {
        loop {
            let generation = self.lock().room_generation;
            match attempt() {
                Err(Error::WouldBlock) => {}
                other => return other,
            }
            Room {
                pipe: self,
                generation,
                place: Place::new(Epoch::NONE),
            }
            .await;
        }
    }
}

/// Wakers of async waiters that are ready, taken out of the lists under the state lock, to be
/// woken once it is released (a waker may run arbitrary code). At most [`WAKE_BATCH`] at a time.
pub(crate) struct ReadyWakers {
    wakers: [Option<Waker>; WAKE_BATCH],
    taken: usize,
}

impl ReadyWakers {
    /// Wakes them (without the state lock). Returns whether the batch was full: more may be
    /// ready.
    pub(crate) fn wake(mut self) -> bool {
        for waker in self.wakers.iter_mut().filter_map(Option::take) {
            waker.wake();
        }
        self.taken == WAKE_BATCH
    }
}

impl State<'_> {
    /// Takes out the wakers of the async waiters that are ready: those whose epoch is durable;
    /// every one, once the pipe is poisoned; and those waiting for staging when `freed` (or the
    /// pipe is poisoned or closing).
    pub(crate) fn take_ready_waiters(&mut self, freed: bool) -> ReadyWakers {
        let mut wakers: [Option<Waker>; WAKE_BATCH] = Default::default();
        let (durable, poisoned) = (self.durable, self.latch.check().is_err());
        let mut taken = self
            .durable_waiters
            .take_ready(durable, poisoned, &mut wakers);
        if freed || poisoned || self.closing {
            taken += self
                .room_waiters
                .take_ready(durable, true, &mut wakers[taken..]);
        }
        ReadyWakers { wakers, taken }
    }
}

impl<S> Shared<'_, S> {
    /// Wakes the async waiters a step, read or transaction made ready (see
    /// [`State::take_ready_waiters`]), a batch at a time, each after releasing the lock.
    pub(crate) fn wake_waiters(&self, freed: bool) {
        loop {
            let ready = self.lock().take_ready_waiters(freed);
            if !ready.wake() {
                return;
            }
        }
    }
}
