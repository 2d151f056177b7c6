//! The accept loop under every test origin: binds `127.0.0.1:0`, numbers each
//! connection, runs a handler per connection, and keeps a [`Record`] of what the
//! origin saw. A panicking handler is recorded and fails the test when the
//! [`Server`] is dropped (or at once through [`Server::check`]).

use bytes::BytesMut;
use futures_util::FutureExt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Largest request head an origin reads.
const MAX_HEAD: usize = 64 * 1024;

/// What an origin saw on one connection.
#[derive(Clone, Debug, Default)]
pub struct ConnRecord {
    /// The first request head, byte for byte (with its final CRLF CRLF).
    pub head: Vec<u8>,
    /// Raw bytes received after that head (scripted origins only).
    pub after_head: Vec<u8>,
    /// The peer closed (EOF or error) and the handler is done reading.
    pub closed: bool,
    /// The WebSocket close frame received (echo origins): code and reason,
    /// `Some(None)` for a close without a code.
    pub ws_close: Option<Option<(u16, String)>>,
}

impl ConnRecord {
    /// The head as text (lossy), for assertions and failure messages.
    pub fn head_text(&self) -> String {
        String::from_utf8_lossy(&self.head).into_owned()
    }
}

/// One request a hyper origin served.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Which connection (in accept order) carried it.
    pub conn: usize,
    /// Method.
    pub method: String,
    /// Request target (path and query).
    pub target: String,
    /// Headers, names lower case (hyper's), in order.
    pub headers: Vec<(String, String)>,
}

impl Seen {
    /// The first value of header `name` (lower case), if any.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Everything an origin recorded, shared between its tasks and the test.
#[derive(Debug, Default)]
pub struct Record {
    /// Per connection, in accept order.
    conns: Mutex<Vec<ConnRecord>>,
    /// Requests served by hyper origins, in order.
    requests: Mutex<Vec<Seen>>,
    /// Panic messages of handler tasks.
    panics: Mutex<Vec<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Record {
    /// Changes connection `conn`'s record.
    pub fn update(&self, conn: usize, f: impl FnOnce(&mut ConnRecord)) {
        if let Some(c) = lock(&self.conns).get_mut(conn) {
            f(c);
        }
    }

    /// Notes a request served by a hyper origin.
    pub fn push_request(&self, seen: Seen) {
        lock(&self.requests).push(seen);
    }

    fn new_conn(&self) -> usize {
        let mut conns = lock(&self.conns);
        conns.push(ConnRecord::default());
        conns.len() - 1
    }
}

/// A running test origin.
pub struct Server {
    /// Where it listens.
    addr: SocketAddr,
    /// What it saw.
    record: Arc<Record>,
    /// The accept loop; aborted on drop, its panic (if any) re-raised.
    accept: JoinHandle<()>,
}

impl Server {
    /// Binds `127.0.0.1:0` and runs `handler(stream, record, conn_index)` for each connection.
    pub async fn spawn<F, Fut>(handler: F) -> Server
    where
        F: Fn(TcpStream, Arc<Record>, usize) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let record = Arc::new(Record::default());
        let rec = record.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let conn = rec.new_conn();
                let task = tokio::spawn(handler(stream, rec.clone(), conn));
                let rec = rec.clone();
                tokio::spawn(async move {
                    if let Err(e) = task.await {
                        if e.is_panic() {
                            lock(&rec.panics).push(format!("connection {conn}: {e}"));
                        }
                    }
                });
            }
        });
        Server {
            addr,
            record,
            accept,
        }
    }

    /// The address to point an upstream at.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        lock(&self.record.conns).len()
    }

    /// A copy of connection `i`'s record (panics if there is no such connection).
    pub fn conn(&self, i: usize) -> ConnRecord {
        self.check();
        let conns = lock(&self.record.conns);
        conns
            .get(i)
            .cloned()
            .unwrap_or_else(|| panic!("origin has {} connections, not {}", conns.len(), i + 1))
    }

    /// Waits (bounded) until connection `i` has sent a full head; returns that head as text.
    pub async fn head(&self, i: usize) -> String {
        crate::eventually(&format!("origin connection {i} sends a head"), || {
            let conns = lock(&self.record.conns);
            conns
                .get(i)
                .filter(|c| !c.head.is_empty())
                .map(ConnRecord::head_text)
        })
        .await
    }

    /// The head of the first connection whose request line is `GET <target> ...`,
    /// if one has arrived (no waiting).
    pub fn head_for(&self, target: &str) -> Option<String> {
        self.check();
        let line = format!("GET {target} ");
        lock(&self.record.conns)
            .iter()
            .find(|c| c.head.starts_with(line.as_bytes()))
            .map(ConnRecord::head_text)
    }

    /// Waits (bounded) until connection `i` is closed; returns its record.
    pub async fn closed(&self, i: usize) -> ConnRecord {
        crate::eventually(&format!("origin connection {i} closes"), || {
            lock(&self.record.conns)
                .get(i)
                .filter(|c| c.closed)
                .cloned()
        })
        .await
    }

    /// The requests a hyper origin served so far.
    pub fn requests(&self) -> Vec<Seen> {
        self.check();
        lock(&self.record.requests).clone()
    }

    /// Fails the test if a handler task panicked.
    pub fn check(&self) {
        let panics = lock(&self.record.panics);
        assert!(panics.is_empty(), "origin task panicked: {panics:?}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.accept.abort();
        if std::thread::panicking() {
            return;
        }
        if let Some(Err(e)) = (&mut self.accept).now_or_never() {
            assert!(!e.is_panic(), "origin accept loop panicked: {e}");
        }
        self.check();
    }
}

/// Reads from `stream` into `buf` until it holds a full head (ends in CRLF CRLF).
/// Returns the head's length (the rest of `buf` is what came after it), or
/// `None` if the peer closed first or the head is larger than 64 KiB.
pub async fn read_head<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut BytesMut) -> Option<usize> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(end + 4);
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
        buf.reserve(4096);
        match stream.read_buf(buf).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}
