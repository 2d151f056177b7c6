//! The set of open tunnels: how many there are, and the signal that tells them
//! to go away (all of them on shutdown, or those of routes a reload removed).
//! A tunnel holds a [`Ticket`] for as long as it is open.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// Which tunnels must go away.
#[derive(Debug, Default, Clone)]
struct GoAway {
    all: bool,
    routes: HashSet<String>,
}

/// Every open tunnel of a proxy.
#[derive(Debug)]
pub struct Tunnels {
    open: AtomicUsize,
    closed: Notify,
    go_away: watch::Sender<GoAway>,
}

/// One open tunnel's place in [`Tunnels`]; dropping it counts the tunnel closed.
#[derive(Debug)]
pub struct Ticket {
    tunnels: Arc<Tunnels>,
    route: String,
    rx: watch::Receiver<GoAway>,
}

impl Tunnels {
    /// An empty set.
    pub fn new() -> Arc<Tunnels> {
        Arc::new(Tunnels {
            open: AtomicUsize::new(0),
            closed: Notify::new(),
            go_away: watch::Sender::new(GoAway::default()),
        })
    }

    /// Registers a tunnel of `route`.
    pub fn open(self: &Arc<Self>, route: &str) -> Ticket {
        self.open.fetch_add(1, Ordering::SeqCst);
        Ticket {
            tunnels: self.clone(),
            route: route.to_string(),
            rx: self.go_away.subscribe(),
        }
    }

    /// Tunnels open now.
    pub fn count(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Tells every tunnel to go away.
    pub fn go_away_all(&self) {
        self.go_away.send_modify(|g| g.all = true);
    }

    /// Tells the tunnels of `route` to go away.
    pub fn go_away_route(&self, route: &str) {
        self.go_away.send_modify(|g| {
            g.routes.insert(route.to_string());
        });
    }

    /// New tunnels of `route` are welcome again (a reload brought it back).
    pub fn welcome_route(&self, route: &str) {
        self.go_away.send_if_modified(|g| g.routes.remove(route));
    }

    /// Waits until no tunnel is open or `limit` has passed; true if none is open.
    pub async fn wait_closed(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.closed.notified();
            if self.count() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.count() == 0;
            }
        }
    }
}

/// Whether the go-away signal changed: read without a lock (the channel's
/// version, which a send moves before it wakes anyone), so a busy tunnel can
/// tell whether its [`Ticket::going_away`] must be looked at (each change
/// wakes that future once; a wake-up spent on a socket is not repeated).
#[derive(Debug)]
pub struct Signals(watch::Receiver<GoAway>);

impl Signals {
    /// True once per change since the last call that returned true (marked
    /// seen before the caller looks, so a change right after is not missed).
    pub fn changed(&mut self) -> bool {
        if self.0.has_changed().unwrap_or(false) {
            self.0.mark_unchanged();
            true
        } else {
            false
        }
    }
}

impl Ticket {
    /// The changes of the go-away signal this ticket hears.
    pub fn signals(&self) -> Signals {
        Signals(self.rx.clone())
    }

    /// Completes when this tunnel is told to go away.
    pub async fn going_away(&mut self) {
        loop {
            {
                let g = self.rx.borrow_and_update();
                if g.all || g.routes.contains(&self.route) {
                    return;
                }
            }
            if self.rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.tunnels.open.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.tunnels.closed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_and_signals() {
        let tunnels = Tunnels::new();
        let mut a = tunnels.open("a");
        let mut b = tunnels.open("b");
        assert_eq!(tunnels.count(), 2);
        tunnels.go_away_route("a");
        tokio::time::timeout(Duration::from_secs(1), a.going_away())
            .await
            .unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(50), b.going_away())
                .await
                .is_err()
        );
        drop(a);
        tunnels.go_away_all();
        tokio::time::timeout(Duration::from_secs(1), b.going_away())
            .await
            .unwrap();
        assert!(!tunnels.wait_closed(Duration::from_millis(20)).await);
        drop(b);
        assert!(tunnels.wait_closed(Duration::from_millis(20)).await);
    }

    #[test]
    fn signals_report_each_change_once() {
        let tunnels = Tunnels::new();
        let ticket = tunnels.open("a");
        let mut signals = ticket.signals();
        assert!(!signals.changed());
        tunnels.go_away_route("b");
        assert!(signals.changed());
        assert!(!signals.changed());
        tunnels.welcome_route("c");
        assert!(
            !signals.changed(),
            "a welcome that changes nothing is no change"
        );
        tunnels.welcome_route("b");
        tunnels.go_away_all();
        assert!(signals.changed());
        assert!(!signals.changed());
    }
}
