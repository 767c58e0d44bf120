//! Async durability: [`Durable`], a future that resolves once an epoch is durable, woken by the
//! step that publishes it — with no allocation per wait and no polling.
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
use crate::{Epoch, Error, Pipe};

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

/// A future that resolves once `epoch` is durable: `Ok(())`, or the error
/// [`Pipe::poll_durable`] gives ([`Error::Poisoned`] if its batch or an earlier one failed).
/// Made by [`Pipe::durable`]; see the [module docs](crate::Pipe::durable) for who commits.
///
/// It allocates nothing: its list node lives inside it. It is woken by the step that publishes
/// its epoch (or poisons the pipe), never by a timer.
#[must_use = "a future does nothing unless awaited"]
pub struct Durable<'p, 'a, S> {
    pipe: &'p Pipe<'a, S>,
    epoch: Epoch,
    /// Touched only under the state lock once linked (module docs).
    node: UnsafeCell<Node>,
    /// Whether the node was ever linked, so that dropping a future that never waited takes no
    /// lock. Only the future's owner touches it.
    registered: Cell<bool>,
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

    /// The epoch it waits for.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    fn node(&self) -> NonNull<Node> {
        // SAFETY: `UnsafeCell::get` never returns null.
        unsafe { NonNull::new_unchecked(self.node.get()) }
    }
}

impl<S> Future for Durable<'_, '_, S> {
    type Output = Result<(), Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Only shared access from here on: the node is reached through its `UnsafeCell`, and
        // the pin keeps it in place.
        let this = self.into_ref().get_ref();
        let mut state = this.pipe.shared.lock();
        let node = this.node();
        // SAFETY: we hold the state lock; the node is ours, pinned, and touched by nobody else
        // without the lock.
        let linked = unsafe { (*node.as_ptr()).linked };
        if let Poll::Ready(result) = state.poll_durable(this.epoch) {
            if linked {
                // SAFETY: linked in this pipe's list; we hold the lock.
                unsafe { state.waiters.unlink(node) };
            }
            return Poll::Ready(result);
        }
        // SAFETY: as above.
        let waker = unsafe { &mut (*node.as_ptr()).waker };
        match waker {
            Some(old) if old.will_wake(cx.waker()) => {}
            _ => *waker = Some(cx.waker().clone()),
        }
        if linked {
            return Poll::Pending;
        }
        // SAFETY: the node is pinned (we were polled through `Pin`), not linked, and stays
        // valid until `drop` unlinks it under this lock.
        unsafe { state.waiters.link(node) };
        this.registered.set(true);
        let background = request_async(&mut state, this.epoch);
        drop(state);
        if let Some(background) = background {
            background.wake();
        }
        Poll::Pending
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
        if !self.registered.get() {
            return;
        }
        let mut state = self.pipe.shared.lock();
        let node = self.node();
        // SAFETY: we hold the state lock; if the node is linked, it is in this pipe's list.
        unsafe {
            if (*node.as_ptr()).linked {
                state.waiters.unlink(node);
            }
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

impl<S> Shared<'_, S> {
    /// Wakes every async waiter whose epoch is durable — or all of them, once the pipe is
    /// poisoned: after any step that published or failed. The lock is released before each
    /// batch of wakers is woken.
    pub(crate) fn wake_waiters(&self) {
        loop {
            let mut wakers: [Option<Waker>; WAKE_BATCH] = Default::default();
            let taken = {
                let mut state = self.lock();
                let (durable, poisoned) = (state.durable, state.latch.check().is_err());
                state.waiters.take_ready(durable, poisoned, &mut wakers)
            };
            for waker in wakers.iter_mut().filter_map(Option::take) {
                waker.wake();
            }
            if taken < WAKE_BATCH {
                return;
            }
        }
    }
}
