//! The background runner for async runtimes: [`Pipe::run_background_async`], the async
//! counterpart of [`BlockingPipe::run_background`](crate::BlockingPipe::run_background), for an
//! executor with no threads to spare (embassy on a microcontroller, a single-threaded tokio).

use core::future::{Future, poll_fn};
use core::pin::pin;
use core::task::Poll;

use crate::{ChunkStore, Clock, Error, Instant, Pipe};

impl<S: ChunkStore> Pipe<'_, S> {
    /// Runs [`background_step`](Pipe::background_step) as long as it has work, and sleeps
    /// otherwise — until [`next_background_at`](Pipe::next_background_at), through
    /// `sleep_until` (the runtime's timer), or until this task's waker is woken: it registers
    /// itself as the [background waker](Pipe::set_background_waker), so an async waiter that
    /// asks for a commit, or a close, wakes it. It leads every commit async waiters need
    /// ([`durable`](Pipe::durable)). Returns once the pipe is closed and settled.
    ///
    /// Store calls block the task while they run, as they would a thread: on an executor with
    /// other work, run it where blocking is allowed.
    ///
    /// # Errors
    /// [`Error::Poisoned`] once a step failed (every waiter has been woken with it).
    pub async fn run_background_async<T: Future<Output = ()>>(
        &self,
        clock: impl Clock,
        mut sleep_until: impl FnMut(Instant) -> T,
    ) -> Result<(), Error> {
        poll_fn(|cx| {
            self.set_background_waker(cx.waker());
            Poll::Ready(())
        })
        .await;
        loop {
            let now = clock.now();
            if self.background_step(now)?.progressed() {
                continue;
            }
            if self.closing() && self.try_close()?.is_ready() {
                return Ok(());
            }
            let mut sleep = pin!(self.next_background_at(now).map(&mut sleep_until));
            let mut first = true;
            // Ready when the timer fires or the task is woken (a spurious wake only costs a
            // look at the steps).
            poll_fn(|cx| {
                if !core::mem::take(&mut first) {
                    return Poll::Ready(());
                }
                self.set_background_waker(cx.waker());
                match sleep.as_mut().as_pin_mut() {
                    Some(timer) => timer.poll(cx),
                    None => Poll::Pending,
                }
            })
            .await;
        }
    }
}
