//! The one way a blocking call waits: an event count.

use crate::Instant;

/// An event count that threads wait on.
///
/// The protocol that makes lost wake-ups impossible: take a [`token`](Signal::token), check the
/// condition you are waiting for, and if it does not hold yet, [`wait`](Signal::wait) with that
/// token. A [`notify_all`](Signal::notify_all) that happened after `token()` makes `wait` return
/// at once. Spurious returns are allowed; callers re-check their condition.
pub trait Signal {
    /// The current count.
    fn token(&self) -> u32;
    /// Blocks until the count differs from `token` or `deadline` has passed (`None`: no deadline).
    fn wait(&self, token: u32, deadline: Option<Instant>);
    /// Advances the count and wakes every waiter.
    fn notify_all(&self);
}

impl<S: Signal + ?Sized> Signal for &S {
    fn token(&self) -> u32 {
        (**self).token()
    }
    fn wait(&self, token: u32, deadline: Option<Instant>) {
        (**self).wait(token, deadline)
    }
    fn notify_all(&self) {
        (**self).notify_all()
    }
}
