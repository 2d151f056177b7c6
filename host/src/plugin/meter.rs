//! The plugin deadline's clock: the CPU time a hook call's polls take on their
//! thread (`CLOCK_THREAD_CPUTIME_ID`). Time the call spends suspended (waiting
//! on an upstream exchange, or queued behind other tasks after yielding at an
//! epoch tick) does not count, and neither does time the OS gives other
//! processes, so a plugin is not failed for the machine being busy or an
//! upstream being slow: only for running too long itself.
//!
//! Reading that clock is a system call (about 0.5 µs here), and most calls end
//! within their first epoch tick, before anyone asks how long they ran. So a
//! poll is timed with the wall clock (vDSO, no system call) until the epoch
//! callback first asks for [`Meter::busy`]; the CPU clock is read from then on.
//! The wall-timed start of a poll counts at most one `tick`: the epoch callback
//! runs within a tick of a plugin running, so more wall time than that before it
//! is time the thread was not running the plugin.

use cpu_time::ThreadTime;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

const IDLE: u64 = u64::MAX;

/// The calling thread's CPU time in nanoseconds (0 if the clock is missing).
fn thread_cpu_ns() -> u64 {
    ThreadTime::try_now().map_or(0, |t| t.as_duration().as_nanos() as u64)
}

/// Accumulates the CPU time a call's future spends being polled.
#[derive(Debug)]
pub struct Meter {
    /// Time of the finished polls.
    busy_ns: AtomicU64,
    /// Wall time (since `origin`) when the current poll began, `IDLE` between polls.
    poll_started_ns: AtomicU64,
    /// Thread CPU time when [`Meter::busy`] was first called in the current
    /// poll, `IDLE` until then.
    cpu_from_ns: AtomicU64,
    /// The current poll's wall-timed start (capped at `tick`), set with `cpu_from_ns`.
    wall_part_ns: AtomicU64,
    /// The most wall time a poll's start counts for.
    tick_ns: u64,
    /// Zero of the wall-clock readings.
    origin: Instant,
}

impl Meter {
    /// A meter at zero, for calls whose epoch callback runs every `tick`.
    pub fn new(tick: Duration) -> Arc<Meter> {
        Arc::new(Meter {
            busy_ns: AtomicU64::new(0),
            poll_started_ns: AtomicU64::new(IDLE),
            cpu_from_ns: AtomicU64::new(IDLE),
            wall_part_ns: AtomicU64::new(0),
            tick_ns: tick.as_nanos() as u64,
            origin: Instant::now(),
        })
    }

    fn wall_ns(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }

    /// Time spent in polls so far, the current one included. Called from
    /// inside a poll (the epoch callback), so "now" is on the polling thread.
    pub fn busy(&self) -> Duration {
        let mut ns = self.busy_ns.load(Ordering::Relaxed);
        let started = self.poll_started_ns.load(Ordering::Relaxed);
        if started != IDLE {
            let cpu_from = match self.cpu_from_ns.load(Ordering::Relaxed) {
                IDLE => {
                    let wall = self.wall_ns().saturating_sub(started).min(self.tick_ns);
                    let cpu = thread_cpu_ns();
                    self.wall_part_ns.store(wall, Ordering::Relaxed);
                    self.cpu_from_ns.store(cpu, Ordering::Relaxed);
                    cpu
                }
                from => from,
            };
            ns += self.wall_part_ns.load(Ordering::Relaxed)
                + thread_cpu_ns().saturating_sub(cpu_from);
        }
        Duration::from_nanos(ns)
    }

    /// While the current poll is younger than a tick of wall time: the time the
    /// call has spent so far, counting that poll's wall time (an upper bound of
    /// its CPU time). `None` between polls, and once the poll has run a tick or
    /// the CPU clock has been consulted. Lets the epoch callback skip the CPU
    /// clock and the yield for a call that has only just resumed.
    pub fn fresh_poll_bound(&self) -> Option<Duration> {
        let started = self.poll_started_ns.load(Ordering::Relaxed);
        if started == IDLE || self.cpu_from_ns.load(Ordering::Relaxed) != IDLE {
            return None;
        }
        let wall = self.wall_ns().saturating_sub(started);
        (wall < self.tick_ns)
            .then(|| Duration::from_nanos(self.busy_ns.load(Ordering::Relaxed) + wall))
    }

    /// Runs `fut`, counting the time spent polling it.
    pub fn measure<F: Future>(self: &Arc<Self>, fut: F) -> Metered<F> {
        Metered {
            inner: Box::pin(fut),
            meter: self.clone(),
        }
    }

    fn poll_started(&self) {
        self.cpu_from_ns.store(IDLE, Ordering::Relaxed);
        self.poll_started_ns
            .store(self.wall_ns(), Ordering::Relaxed);
    }

    fn poll_ended(&self) {
        let started = self.poll_started_ns.swap(IDLE, Ordering::Relaxed);
        let spent = match self.cpu_from_ns.swap(IDLE, Ordering::Relaxed) {
            IDLE => self.wall_ns().saturating_sub(started).min(self.tick_ns),
            from => {
                self.wall_part_ns.load(Ordering::Relaxed) + thread_cpu_ns().saturating_sub(from)
            }
        };
        self.busy_ns.fetch_add(spent, Ordering::Relaxed);
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
        meter.poll_started();
        let result = self.inner.as_mut().poll(cx);
        meter.poll_ended();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TICK: Duration = Duration::from_millis(1);

    fn spin(cpu: Duration) {
        let start = thread_cpu_ns();
        while thread_cpu_ns() - start < cpu.as_nanos() as u64 {
            std::hint::spin_loop();
        }
    }

    #[tokio::test]
    async fn only_cpu_spent_polling_counts() {
        let meter = Meter::new(TICK);
        let m = meter.clone();
        meter
            .measure(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                // Sleeping in a poll uses wall time but no CPU; spinning uses
                // CPU. The epoch callback asks for `busy` at every tick.
                std::thread::sleep(Duration::from_millis(20));
                let start = thread_cpu_ns();
                while thread_cpu_ns() - start < 5_000_000 {
                    m.busy();
                    std::hint::spin_loop();
                }
            })
            .await;
        let busy = meter.busy();
        assert!(busy >= Duration::from_millis(5), "{busy:?}");
        assert!(busy < Duration::from_millis(20), "{busy:?}");
    }

    #[tokio::test]
    async fn a_poll_no_tick_interrupts_counts_its_wall_time_up_to_a_tick() {
        let meter = Meter::new(TICK);
        meter
            .measure(async { spin(Duration::from_micros(300)) })
            .await;
        let busy = meter.busy();
        assert!(busy >= Duration::from_micros(300), "{busy:?}");
        assert!(busy <= TICK, "{busy:?}");
        let meter = Meter::new(TICK);
        meter
            .measure(async { std::thread::sleep(Duration::from_millis(20)) })
            .await;
        assert_eq!(meter.busy(), TICK);
    }

    #[tokio::test]
    async fn a_fresh_poll_has_a_wall_bound_until_it_runs_a_tick() {
        let meter = Meter::new(TICK);
        assert_eq!(meter.fresh_poll_bound(), None, "between polls");
        let m = meter.clone();
        meter
            .measure(async move {
                let bound = m.fresh_poll_bound().expect("a poll that just began");
                assert!(bound < TICK, "{bound:?}");
                std::thread::sleep(TICK * 2);
                assert_eq!(m.fresh_poll_bound(), None, "the poll has run two ticks");
            })
            .await;
        assert_eq!(meter.fresh_poll_bound(), None, "between polls");
    }
}
