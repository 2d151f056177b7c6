//! Idle keep-alive connections to upstreams for the plain requests served
//! without hyper ([`crate::direct_http`]). One pool per worker: a connection
//! stays with the event loop it is registered with, as a client connection
//! does. Per upstream, the most recently used connection is taken first.
//! [`IDLE_PER_UPSTREAM`] idle connections are kept per upstream, split over
//! the workers (at least [`MIN_PER_WORKER`] each); none longer than
//! [`IDLE_TIMEOUT`] (a sweep on each worker that holds any closes them even
//! when no request comes); one that the upstream closed, or that has bytes
//! nobody asked for, is dropped when found.

use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::Instant;

use crate::upstream::UpstreamStream;

/// Idle connections kept per upstream, over all workers (the hyper path's
/// shared pool keeps as many).
pub const IDLE_PER_UPSTREAM: usize = 64;
/// Idle connections each worker may keep per upstream, however many workers.
pub const MIN_PER_WORKER: usize = 4;
/// How long an idle connection is kept (on the hyper path's pool too).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a worker's sweep looks for connections idle too long.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// One worker's idle connections, by upstream name, oldest first.
type Pool = HashMap<String, Vec<Idle>>;

struct Idle {
    stream: UpstreamStream,
    since: Instant,
}

struct Worker {
    pool: Mutex<Pool>,
    /// Its sweep task runs.
    sweeping: AtomicBool,
}

/// Every worker's pool.
pub struct Pools {
    workers: Box<[Worker]>,
    /// Idle connections per upstream on each worker.
    per_worker: usize,
}

impl Pools {
    /// Empty pools for `workers` workers.
    pub fn new(workers: usize) -> Pools {
        let workers = workers.max(1);
        Pools {
            workers: (0..workers)
                .map(|_| Worker {
                    pool: Mutex::default(),
                    sweeping: AtomicBool::new(false),
                })
                .collect(),
            per_worker: (IDLE_PER_UPSTREAM / workers).max(MIN_PER_WORKER),
        }
    }

    fn of(&self, worker: usize) -> &Worker {
        &self.workers[worker % self.workers.len()]
    }

    /// An idle connection to `upstream` that still looks usable, if `worker` has one.
    pub fn take(&self, worker: usize, upstream: &str) -> Option<UpstreamStream> {
        let Ok(mut pool) = self.of(worker).pool.lock() else {
            return None;
        };
        let list = pool.get_mut(upstream)?;
        let now = Instant::now();
        while let Some(mut idle) = list.pop() {
            if now.duration_since(idle.since) < IDLE_TIMEOUT && usable(&mut idle.stream) {
                return Some(idle.stream);
            }
        }
        None
    }

    /// Puts a connection that finished a response back for the next request
    /// (and starts the worker's sweep, on the worker's runtime, the first time).
    pub fn put(self: &Arc<Self>, worker: usize, upstream: &str, stream: UpstreamStream) {
        let w = self.of(worker);
        {
            let Ok(mut pool) = w.pool.lock() else {
                return;
            };
            let list = match pool.get_mut(upstream) {
                Some(list) => list,
                None => pool.entry(upstream.to_string()).or_default(),
            };
            if list.len() >= self.per_worker {
                list.remove(0);
            }
            list.push(Idle {
                stream,
                since: Instant::now(),
            });
        }
        if !w.sweeping.swap(true, Ordering::Relaxed) {
            tokio::spawn(sweep(Arc::downgrade(self), worker));
        }
    }

    /// Drops `worker`'s connections idle for [`IDLE_TIMEOUT`] or more.
    fn sweep(&self, worker: usize) {
        let Ok(mut pool) = self.of(worker).pool.lock() else {
            return;
        };
        let now = Instant::now();
        for list in pool.values_mut() {
            let expired = list
                .iter()
                .take_while(|i| now.duration_since(i.since) >= IDLE_TIMEOUT)
                .count();
            list.drain(..expired);
        }
        pool.retain(|_, list| !list.is_empty());
    }
}

/// A worker's sweep: runs until the pools are gone (a config reload replaced them).
async fn sweep(pools: Weak<Pools>, worker: usize) {
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        match pools.upgrade() {
            Some(pools) => pools.sweep(worker),
            None => return,
        }
    }
}

/// Whether an idle connection can carry a request: the upstream has not
/// closed it and sent nothing on it (a stray byte would be read as the next
/// request's answer). The socket itself is asked, not the event loop's
/// readiness, which may not have seen a close yet. Over TLS, any record
/// waiting (a close_notify, data) counts as something sent.
fn usable(stream: &mut UpstreamStream) -> bool {
    if let UpstreamStream::Tls(tls) = stream {
        // Plaintext rustls already decrypted, an end or an error.
        let mut byte = [0u8; 1];
        let mut buf = ReadBuf::new(&mut byte);
        let mut cx = Context::from_waker(Waker::noop());
        if Pin::new(&mut **tls).poll_read(&mut cx, &mut buf).is_ready() {
            return false;
        }
    }
    let tcp = match stream {
        UpstreamStream::Tcp(s) => s,
        UpstreamStream::Tls(s) => s.get_ref().0,
    };
    let mut byte = [MaybeUninit::<u8>::uninit()];
    // The socket is non-blocking: nothing waiting is `WouldBlock`.
    matches!(
        socket2::SockRef::from(tcp).peek(&mut byte),
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
    )
}
