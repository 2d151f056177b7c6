//! One upstream exchange made for a plugin: connect, write the request head
//! exactly as the plugin built it, read the response head. The connection and
//! any bytes read past the head stay here until the plugin's outcome says
//! whether they become a tunnel, a relayed response, or nothing.

use bytes::BytesMut;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::config::UpstreamConfig;
use crate::upstream::{self, ConnectError, UpstreamStream};
use crate::wire::{self, Parsed, RequestHead, ResponseHead};

/// An open upstream connection with its request sent and response head read.
#[derive(Debug)]
pub struct Exchange {
    /// The upstream's name.
    pub upstream: String,
    /// The address that accepted.
    pub addr: String,
    /// The request head as written.
    pub request: RequestHead,
    /// The response head as read.
    pub response: ResponseHead,
    /// The connection.
    pub stream: ExchangeStream,
    /// Bytes read past the response head (a body's start, or the first frames after a 101).
    pub leftover: BytesMut,
}

/// An exchange's connection: the upstream's (TCP or TLS), or in memory when
/// the upstream is stubbed (benchmarks measure the plugin without the network).
#[derive(Debug)]
pub enum ExchangeStream {
    /// A real upstream connection.
    Net(UpstreamStream),
    /// An in-memory pipe standing in for the upstream.
    Memory(tokio::io::DuplexStream),
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            ExchangeStream::Net($s) => $e,
            ExchangeStream::Memory($s) => $e,
        }
    };
}

impl AsyncRead for ExchangeStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for ExchangeStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        delegate!(self, s => Pin::new(s).poll_write(cx, buf))
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_flush(cx))
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}

/// Makes exchanges for a plugin call without the network: given the request head
/// the plugin built, returns the response head the "upstream" answers.
pub type StubUpstream = std::sync::Arc<dyn Fn(&RequestHead) -> ResponseHead + Send + Sync>;

/// An exchange with a stubbed upstream: `stub` answers, the connection is an in-memory pipe.
pub fn stubbed(up: &UpstreamConfig, request: RequestHead, stub: &StubUpstream) -> Exchange {
    let response = stub(&request);
    let (near, _far) = tokio::io::duplex(64);
    Exchange {
        upstream: up.name.clone(),
        addr: "stub".into(),
        request,
        response,
        stream: ExchangeStream::Memory(near),
        leftover: BytesMut::new(),
    }
}

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// Could not connect.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The plugin's head is not valid HTTP/1.1.
    #[error("invalid request head: {0}")]
    InvalidRequest(String),
    /// No complete response head in time.
    #[error("upstream `{0}` sent no response head in time")]
    Timeout(String),
    /// The upstream's answer is not a valid response head, or the connection broke.
    #[error("upstream `{upstream}`: {reason}")]
    BadResponse {
        /// The upstream's name.
        upstream: String,
        /// What went wrong.
        reason: String,
    },
}

/// Connects to `up`, writes `request`, and reads the response head within `timeout`.
/// Interim 1xx answers other than 101 are skipped.
pub async fn send(
    up: &UpstreamConfig,
    request: RequestHead,
    timeout: Duration,
) -> Result<Exchange, ExchangeError> {
    let bytes = wire::write_request(&request).map_err(ExchangeError::InvalidRequest)?;
    // Let the other upgrades of this scheduler turn reach their connect too,
    // so that the connects come one after the other. On loopback a connect
    // wakes the upstream's accepting thread from inside the call, and waking
    // a thread that has gone back to sleep costs several times more than one
    // still running: connects one plugin call apart (instantiation, guest
    // code) found it asleep every time. One turn's delay; docs/performance.md.
    tokio::task::yield_now().await;
    let (stream, addr) = upstream::connect(up).await?;
    let mut stream = ExchangeStream::Net(stream);
    let bad = |reason: String| ExchangeError::BadResponse {
        upstream: up.name.clone(),
        reason,
    };
    let read_head = async {
        stream
            .write_all(&bytes)
            .await
            .map_err(|e| bad(format!("write failed: {e}")))?;
        stream
            .flush()
            .await
            .map_err(|e| bad(format!("write failed: {e}")))?;
        let mut buf = BytesMut::with_capacity(4096);
        loop {
            match wire::parse_response(&buf).map_err(bad)? {
                Parsed::Complete(head, used)
                    if (100..200).contains(&head.status) && head.status != 101 =>
                {
                    let _ = buf.split_to(used);
                }
                Parsed::Complete(head, used) => {
                    let _ = buf.split_to(used);
                    return Ok((head, buf));
                }
                Parsed::Partial => {
                    if buf.capacity() - buf.len() < 1024 {
                        buf.reserve(4096);
                    }
                    let n = stream
                        .read_buf(&mut buf)
                        .await
                        .map_err(|e| bad(format!("read failed: {e}")))?;
                    if n == 0 {
                        return Err(bad(
                            "closed the connection before a full response head".into()
                        ));
                    }
                }
            }
        }
    };
    let (response, leftover) = tokio::time::timeout(timeout, read_head)
        .await
        .map_err(|_| ExchangeError::Timeout(up.name.clone()))??;
    Ok(Exchange {
        upstream: up.name.clone(),
        addr,
        request,
        response,
        stream,
        leftover,
    })
}
