//! The two ends of a tunnel as the splice loop sees them. Plain TCP ends wait
//! for readiness and only then borrow a buffer from their thread's pool, so an idle
//! tunnel holds no copy buffer at all (memory per idle tunnel stays small,
//! whatever `buffer_size` is). Other ends (TLS, in-memory) wait inside their
//! read, so they read at most 16 KiB at a time with a buffer of their own.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, Interest, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use crate::upstream::UpstreamStream;

/// Any byte stream a tunnel end can be.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// A tunnel end before it is split.
pub enum End {
    /// Plain TCP: readiness-based reads, no buffer held while idle.
    Tcp(TcpStream),
    /// Anything else.
    Other(Box<dyn Stream>),
}

/// The read side of an end.
pub enum Reader {
    /// TCP.
    Tcp(OwnedReadHalf),
    /// Other, and the buffer its pending read fills.
    Other(ReadHalf<Box<dyn Stream>>, Option<Chunk>),
}

/// The write side of an end.
pub enum Writer {
    /// TCP.
    Tcp(OwnedWriteHalf),
    /// Other.
    Other(WriteHalf<Box<dyn Stream>>),
}

impl From<TcpStream> for End {
    fn from(s: TcpStream) -> Self {
        End::Tcp(s)
    }
}

impl From<tokio_rustls::server::TlsStream<TcpStream>> for End {
    fn from(s: tokio_rustls::server::TlsStream<TcpStream>) -> Self {
        End::Other(Box::new(s))
    }
}

impl From<UpstreamStream> for End {
    fn from(s: UpstreamStream) -> Self {
        match s {
            UpstreamStream::Tcp(s) => End::Tcp(s),
            UpstreamStream::Tls(s) => End::Other(s),
        }
    }
}

impl End {
    /// Splits into read and write sides.
    pub fn split(self) -> (Reader, Writer) {
        match self {
            End::Tcp(s) => {
                let (r, w) = s.into_split();
                (Reader::Tcp(r), Writer::Tcp(w))
            }
            End::Other(s) => {
                let (r, w) = tokio::io::split(s);
                (Reader::Other(r, None), Writer::Other(w))
            }
        }
    }
}

/// Buffers kept for reuse, all of one size (other sizes are allocated and freed).
struct Pool {
    size: usize,
    free: Vec<Vec<u8>>,
}

/// Most bytes of free buffers each thread's pool keeps (64 buffers of the
/// default 64 KiB; fewer when `buffer_size` is larger, but always one).
const POOL_KEEP_BYTES: usize = 4 << 20;

thread_local! {
    /// One pool per thread: a worker's tunnels take and return buffers without a
    /// lock (a global `Mutex` here cost about 0.6 % of a 64 B echo's CPU).
    static POOL: RefCell<Pool> = const {
        RefCell::new(Pool {
            size: 0,
            free: Vec::new(),
        })
    };
}

/// Most a non-TCP end (TLS, in memory) reads at once: its read waits with the
/// buffer held, so an idle TLS tunnel holds this much per direction whatever
/// `buffer_size` is (a TLS record carries at most 16 KiB anyway).
const OTHER_READ_MAX: usize = 16 * 1024;

/// A read buffer: borrowed from the pool (and back when dropped), or its own.
pub struct Chunk {
    buf: Vec<u8>,
    len: usize,
    pooled: bool,
}

impl Chunk {
    fn take(size: usize) -> Vec<u8> {
        let pooled = POOL.try_with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.size == size {
                pool.free.pop()
            } else {
                None
            }
        });
        pooled.ok().flatten().unwrap_or_else(|| vec![0u8; size])
    }

    /// The bytes read.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        if !self.pooled {
            return;
        }
        let buf = std::mem::take(&mut self.buf);
        // A thread being torn down has no pool any more: the buffer is freed.
        let _ = POOL.try_with(|pool| {
            let mut pool = pool.borrow_mut();
            if pool.size != buf.len() {
                pool.size = buf.len();
                pool.free.clear();
            }
            if pool.free.is_empty() || (pool.free.len() + 1) * pool.size <= POOL_KEEP_BYTES {
                pool.free.push(buf);
            }
        });
    }
}

impl Reader {
    /// Reads what is available (at most `size` bytes); an empty chunk means
    /// end of stream. Plain TCP borrows a buffer only once the socket is
    /// readable; other ends keep theirs while the read is pending.
    pub fn poll_read(&mut self, cx: &mut Context<'_>, size: usize) -> Poll<io::Result<Chunk>> {
        match self {
            Reader::Tcp(r) => loop {
                // `poll_read_ready` (not `readable()`) takes the socket's single
                // reader-waker slot, which still holds the waker of the task that
                // read the handshake: left there it would keep that finished task's
                // allocation (~8 KiB) alive for as long as this side stays silent.
                ready!(r.as_ref().poll_read_ready(cx))?;
                let mut chunk = Chunk {
                    buf: Chunk::take(size),
                    len: 0,
                    pooled: true,
                };
                let mut short = 0;
                // A read shorter than the buffer emptied the socket. Saying so
                // (WouldBlock) inside `try_io` clears tokio's readiness, so the
                // next read waits for the next epoll event instead of costing a
                // `recvfrom` that returns EAGAIN (one system call in three on a
                // small-message echo). tokio keeps the readiness if an event came
                // in meanwhile, so nothing is missed.
                let read = r.as_ref().try_io(Interest::READABLE, || {
                    let n = r.try_read(&mut chunk.buf)?;
                    if n > 0 && n < chunk.buf.len() {
                        short = n;
                        return Err(io::ErrorKind::WouldBlock.into());
                    }
                    Ok(n)
                });
                chunk.len = match read {
                    Ok(len) => len,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock && short > 0 => short,
                    // Nothing after all: the buffer goes back to the pool.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Poll::Ready(Err(e)),
                };
                return Poll::Ready(Ok(chunk));
            },
            Reader::Other(r, held) => {
                let mut chunk = held.take().unwrap_or_else(|| {
                    let own = size.min(OTHER_READ_MAX);
                    let pooled = own == size;
                    let buf = if pooled {
                        Chunk::take(size)
                    } else {
                        vec![0u8; own]
                    };
                    Chunk {
                        buf,
                        len: 0,
                        pooled,
                    }
                });
                let mut read = ReadBuf::new(&mut chunk.buf);
                let polled = Pin::new(r).poll_read(cx, &mut read);
                let len = read.filled().len();
                if let Poll::Ready(Ok(())) = polled {
                    chunk.len = len;
                    return Poll::Ready(Ok(chunk));
                }
                // Pending (or failed): the buffer waits for the next poll.
                *held = Some(chunk);
                match polled {
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                    _ => Poll::Pending,
                }
            }
        }
    }
}

impl Writer {
    /// Writes all of `bytes`.
    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Writer::Tcp(w) => w.write_all(bytes).await,
            Writer::Other(w) => {
                // A TLS end may keep part of a write buffered until flushed.
                w.write_all(bytes).await?;
                w.flush().await
            }
        }
    }

    /// Drops the write side without the `shutdown(2)` tokio's TCP write half
    /// makes on drop: the tunnel drops both halves together, and closing the
    /// socket sends the FIN anyway (one system call per side saved).
    pub fn close(self) {
        match self {
            Writer::Tcp(w) => w.forget(),
            Writer::Other(w) => drop(w),
        }
    }

    /// Half-closes (FIN).
    pub async fn shutdown(&mut self) {
        let _ = match self {
            Writer::Tcp(w) => w.shutdown().await,
            Writer::Other(w) => w.shutdown().await,
        };
    }
}
