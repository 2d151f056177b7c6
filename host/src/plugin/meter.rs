//! The plugin deadline's clock: wall time spent *inside* a hook call's polls.
//! Time the call spends suspended (waiting on an upstream exchange, or queued
//! behind other tasks after yielding at an epoch tick) does not count, so a
//! plugin is not failed for the proxy being busy or an upstream being slow.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

const IDLE: u64 = u64::MAX;

/// Accumulates the time a call's future spends being polled.
#[derive(Debug)]
pub struct Meter {
    origin: Instant,
    busy_ns: AtomicU64,
    poll_started_ns: AtomicU64,
}

impl Meter {
    /// A meter at zero.
    pub fn new() -> Arc<Meter> {
        Arc::new(Meter {
            origin: Instant::now(),
            busy_ns: AtomicU64::new(0),
            poll_started_ns: AtomicU64::new(IDLE),
        })
    }

    fn now_ns(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    /// Time spent in polls so far, the current one included.
    pub fn busy(&self) -> Duration {
        let mut ns = self.busy_ns.load(Ordering::Relaxed);
        let started = self.poll_started_ns.load(Ordering::Relaxed);
        if started != IDLE {
            ns += self.now_ns().saturating_sub(started);
        }
        Duration::from_nanos(ns)
    }

    /// Runs `fut`, counting the time spent polling it.
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
        let start = meter.now_ns();
        meter.poll_started_ns.store(start, Ordering::Relaxed);
        let result = self.inner.as_mut().poll(cx);
        meter.poll_started_ns.store(IDLE, Ordering::Relaxed);
        meter
            .busy_ns
            .fetch_add(meter.now_ns().saturating_sub(start), Ordering::Relaxed);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn suspended_time_is_not_counted() {
        let meter = Meter::new();
        meter
            .measure(async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                std::thread::sleep(Duration::from_millis(5));
            })
            .await;
        let busy = meter.busy();
        assert!(busy >= Duration::from_millis(5), "{busy:?}");
        assert!(busy < Duration::from_millis(40), "{busy:?}");
    }
}
