//! The plugin deadline's clock: the CPU time a hook call's polls take on their
//! thread (`CLOCK_THREAD_CPUTIME_ID`). Time the call spends suspended (waiting
//! on an upstream exchange, or queued behind other tasks after yielding at an
//! epoch tick) does not count, and neither does time the OS gives other
//! processes, so a plugin is not failed for the machine being busy or an
//! upstream being slow: only for running too long itself.

use cpu_time::ThreadTime;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

const IDLE: u64 = u64::MAX;

/// The calling thread's CPU time in nanoseconds (0 if the clock is missing).
fn thread_cpu_ns() -> u64 {
    ThreadTime::try_now().map_or(0, |t| t.as_duration().as_nanos() as u64)
}

/// Accumulates the CPU time a call's future spends being polled.
#[derive(Debug)]
pub struct Meter {
    busy_ns: AtomicU64,
    /// Thread CPU time when the current poll began, `IDLE` between polls.
    poll_started_ns: AtomicU64,
}

impl Meter {
    /// A meter at zero.
    pub fn new() -> Arc<Meter> {
        Arc::new(Meter {
            busy_ns: AtomicU64::new(0),
            poll_started_ns: AtomicU64::new(IDLE),
        })
    }

    /// CPU time spent in polls so far, the current one included. Called from
    /// inside a poll (the epoch callback), so "now" is on the polling thread.
    pub fn busy(&self) -> Duration {
        let mut ns = self.busy_ns.load(Ordering::Relaxed);
        let started = self.poll_started_ns.load(Ordering::Relaxed);
        if started != IDLE {
            ns += thread_cpu_ns().saturating_sub(started);
        }
        Duration::from_nanos(ns)
    }

    /// Runs `fut`, counting the CPU time spent polling it.
    pub fn measure<F: Future>(self: &Arc<Self>, fut: F) -> Metered<F> {
        Metered {
            inner: Box::pin(fut),
            meter: self.clone(),
        }
    }
}

/// A future whose polls are timed by a [`Meter`].
pub struct Metered<F> {
    inner: Pin<Box<F>>,
    meter: Arc<Meter>,
}

impl<F: Future> Future for Metered<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let meter = self.meter.clone();
        let start = thread_cpu_ns();
        meter.poll_started_ns.store(start, Ordering::Relaxed);
        let result = self.inner.as_mut().poll(cx);
        meter.poll_started_ns.store(IDLE, Ordering::Relaxed);
        meter
            .busy_ns
            .fetch_add(thread_cpu_ns().saturating_sub(start), Ordering::Relaxed);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_cpu_spent_polling_counts() {
        let meter = Meter::new();
        meter
            .measure(async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                // Sleeping in a poll uses wall time but no CPU; spinning uses CPU.
                std::thread::sleep(Duration::from_millis(20));
                let spin = thread_cpu_ns();
                while thread_cpu_ns() - spin < 5_000_000 {
                    std::hint::spin_loop();
                }
            })
            .await;
        let busy = meter.busy();
        assert!(busy >= Duration::from_millis(4), "{busy:?}");
        assert!(busy < Duration::from_millis(20), "{busy:?}");
    }
}
