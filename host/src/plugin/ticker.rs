//! The epoch ticker: a thread that advances the engines' epochs every tick
//! (the granularity of plugin deadlines and of yielding) while plugin calls
//! run, and parks when none has run for [`IDLE_TICKS`] ticks, so a proxy with
//! no upgrades (idle, or serving only tunnels and plain HTTP) is not woken a
//! thousand times a second for nothing.
//!
//! A call [`Ticker::enter`]s before it runs any wasm and leaves when its guard
//! drops. Entering counts the call in, then wakes the thread if it is parked;
//! parking marks the thread parked, then checks the count. Both orders are
//! sequentially consistent, so one of the two always sees the other: a call
//! never runs with the epoch stopped.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::Arc;
use std::thread::Thread;
use std::time::Duration;

/// Ticks without a call before the thread parks.
pub(super) const IDLE_TICKS: u32 = 100;

#[derive(Debug, Default)]
struct Shared {
    /// Calls running now.
    in_flight: AtomicUsize,
    /// A call entered since the thread last looked.
    entered: AtomicBool,
    /// The thread is parked, or about to park.
    parked: AtomicBool,
}

/// The ticker thread's handle.
#[derive(Debug)]
pub(super) struct Ticker {
    shared: Arc<Shared>,
    thread: Thread,
}

/// A call in progress: the epoch advances until it drops.
#[derive(Debug)]
pub(super) struct Ticking<'a>(&'a Shared);

impl Drop for Ticking<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, SeqCst);
    }
}

impl Drop for Ticker {
    /// Wakes a parked thread, so it sees its engine gone and ends.
    fn drop(&mut self) {
        self.thread.unpark();
    }
}

impl Ticker {
    /// Starts the thread: every `tick` it calls `advance`, and it ends when
    /// `advance` returns false (the engines are gone). It parks after
    /// `idle_ticks` ticks with no call.
    pub(super) fn start(
        tick: Duration,
        idle_ticks: u32,
        advance: impl Fn() -> bool + Send + 'static,
    ) -> std::io::Result<Ticker> {
        let shared = Arc::new(Shared::default());
        let state = shared.clone();
        let handle = std::thread::Builder::new()
            .name("upgate-epoch".into())
            .spawn(move || {
                let mut idle = 0;
                while advance() {
                    std::thread::sleep(tick);
                    let busy = state.in_flight.load(SeqCst) > 0;
                    if state.entered.swap(false, SeqCst) || busy {
                        idle = 0;
                        continue;
                    }
                    idle += 1;
                    if idle < idle_ticks {
                        continue;
                    }
                    state.parked.store(true, SeqCst);
                    if state.in_flight.load(SeqCst) == 0 {
                        // A wake-up before this point leaves a token: no lost wake-up.
                        std::thread::park();
                    }
                    state.parked.store(false, SeqCst);
                    idle = 0;
                }
            })?;
        Ok(Ticker {
            shared,
            thread: handle.thread().clone(),
        })
    }

    /// Counts a call in (waking the thread if it is parked) until the guard drops.
    pub(super) fn enter(&self) -> Ticking<'_> {
        self.shared.in_flight.fetch_add(1, SeqCst);
        // Only the idle count reads it: no need to write a shared line each call.
        if !self.shared.entered.load(Relaxed) {
            self.shared.entered.store(true, Relaxed);
        }
        if self.shared.parked.load(SeqCst) {
            self.thread.unpark();
        }
        Ticking(&self.shared)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use std::time::Instant;

    const TICK: Duration = Duration::from_millis(1);

    fn counting(idle_ticks: u32) -> (Ticker, Arc<AtomicU64>) {
        let ticks = Arc::new(AtomicU64::new(0));
        let count = ticks.clone();
        let ticker = Ticker::start(TICK, idle_ticks, move || {
            count.fetch_add(1, SeqCst);
            true
        })
        .expect("thread starts");
        (ticker, ticks)
    }

    /// Waits (at most 2 s) until the tick count stops moving for 50 ms.
    fn wait_parked(ticks: &AtomicU64) {
        let start = Instant::now();
        loop {
            let before = ticks.load(SeqCst);
            std::thread::sleep(Duration::from_millis(50));
            if ticks.load(SeqCst) == before {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "the ticker never parked"
            );
        }
    }

    /// Waits (at most 2 s) for at least `n` more ticks.
    fn wait_ticks(ticks: &AtomicU64, n: u64) {
        let (start, from) = (Instant::now(), ticks.load(SeqCst));
        while ticks.load(SeqCst) < from + n {
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "the ticker is stopped"
            );
            std::thread::sleep(TICK);
        }
    }

    #[test]
    fn parks_when_idle_and_ticks_while_a_call_runs() {
        let (ticker, ticks) = counting(5);
        wait_parked(&ticks);
        let call = ticker.enter();
        wait_ticks(&ticks, 20);
        // A long call keeps it ticking past the idle count.
        wait_ticks(&ticks, 20);
        drop(call);
        wait_parked(&ticks);
        // And every later call wakes it again.
        for _ in 0..20 {
            let call = ticker.enter();
            wait_ticks(&ticks, 2);
            drop(call);
        }
    }
}
