//! Idle keep-alive connections to upstreams for the plain requests served
//! without hyper ([`crate::direct_http`]). One pool per worker: a connection
//! stays with the event loop it is registered with, as a client connection
//! does. Per upstream, the most recently used connection is taken first; at
//! most [`IDLE_PER_UPSTREAM`] are kept, none longer than [`IDLE_TIMEOUT`], and
//! one the upstream closed while it sat idle is dropped when found.

use std::collections::HashMap;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::ReadBuf;
use tokio::time::Instant;

use crate::upstream::UpstreamStream;

/// Idle connections kept per upstream and worker.
pub const IDLE_PER_UPSTREAM: usize = 64;
/// How long an idle connection is kept.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// One worker's idle connections, by upstream name, oldest first.
type Pool = HashMap<String, Vec<Idle>>;

struct Idle {
    stream: UpstreamStream,
    since: Instant,
}

/// Every worker's pool.
pub struct Pools {
    workers: Box<[Mutex<Pool>]>,
}

impl Pools {
    /// Empty pools for `workers` workers.
    pub fn new(workers: usize) -> Pools {
        Pools {
            workers: (0..workers.max(1)).map(|_| Mutex::default()).collect(),
        }
    }

    fn of(&self, worker: usize) -> &Mutex<Pool> {
        &self.workers[worker % self.workers.len()]
    }

    /// An idle connection to `upstream` that still looks open, if `worker` has one.
    pub fn take(&self, worker: usize, upstream: &str) -> Option<UpstreamStream> {
        let Ok(mut pool) = self.of(worker).lock() else {
            return None;
        };
        let list = pool.get_mut(upstream)?;
        let now = Instant::now();
        while let Some(idle) = list.pop() {
            if now.duration_since(idle.since) < IDLE_TIMEOUT && looks_open(&idle.stream) {
                return Some(idle.stream);
            }
        }
        None
    }

    /// Puts a connection that finished a response back for the next request.
    pub fn put(&self, worker: usize, upstream: &str, stream: UpstreamStream) {
        let Ok(mut pool) = self.of(worker).lock() else {
            return;
        };
        let now = Instant::now();
        let list = match pool.get_mut(upstream) {
            Some(list) => list,
            None => pool.entry(upstream.to_string()).or_default(),
        };
        // The oldest sit first: those past the idle timeout go now, not when
        // a take comes to them.
        let expired = list
            .iter()
            .take_while(|i| now.duration_since(i.since) >= IDLE_TIMEOUT)
            .count();
        list.drain(..expired);
        if list.len() >= IDLE_PER_UPSTREAM {
            list.remove(0);
        }
        list.push(Idle { stream, since: now });
    }

    /// Idle connections `worker` holds to `upstream` (for tests).
    pub fn idle(&self, worker: usize, upstream: &str) -> usize {
        self.of(worker)
            .lock()
            .map_or(0, |p| p.get(upstream).map_or(0, Vec::len))
    }
}

/// Whether an idle connection is still open: nothing to read on it yet. End
/// of stream (the upstream closed it) or stray bytes on plain TCP both mean
/// it cannot carry a request. A TLS connection may hold a session ticket or a
/// close_notify: it is kept, and a request that finds it closed is retried.
fn looks_open(stream: &UpstreamStream) -> bool {
    let tcp = match stream {
        UpstreamStream::Tcp(s) => s,
        UpstreamStream::Tls(s) => s.get_ref().0,
    };
    let mut byte = [0u8; 1];
    let mut buf = ReadBuf::new(&mut byte);
    let mut cx = Context::from_waker(Waker::noop());
    match tcp.poll_peek(&mut cx, &mut buf) {
        Poll::Pending => true,
        Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => false,
        Poll::Ready(Ok(_)) => matches!(stream, UpstreamStream::Tls(_)),
    }
}
