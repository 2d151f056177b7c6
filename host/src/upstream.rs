//! Connecting to an upstream: each `host:port` address in order, each with the
//! upstream's connect timeout (TCP connect plus, for a `tls` upstream, the
//! handshake), until one succeeds. Used by the plain proxy's connection pool,
//! by plugin exchanges and by pass-through listeners alike.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::config::UpstreamConfig;

/// No address of an upstream accepted a connection.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Every address failed; each reason in order.
    #[error("upstream `{upstream}`: {}", .attempts.join("; "))]
    AllFailed {
        /// The upstream's name.
        upstream: String,
        /// `address: reason` per attempt.
        attempts: Vec<String>,
    },
    /// Every address failed and at least one by timing out.
    #[error("upstream `{upstream}`: connect timed out ({})", .attempts.join("; "))]
    TimedOut {
        /// The upstream's name.
        upstream: String,
        /// `address: reason` per attempt.
        attempts: Vec<String>,
    },
}

impl ConnectError {
    /// What a plain request's client is answered: 504 when an address timed
    /// out, else 502, with a reason naming the upstream (the same on the
    /// hyper path and the direct one).
    pub fn answer(&self) -> (http::StatusCode, String) {
        let (status, upstream) = match self {
            ConnectError::TimedOut { upstream, .. } => {
                (http::StatusCode::GATEWAY_TIMEOUT, upstream)
            }
            ConnectError::AllFailed { upstream, .. } => (http::StatusCode::BAD_GATEWAY, upstream),
        };
        (status, format!("upstream `{upstream}` is unreachable"))
    }
}

/// A connection to an upstream: plain TCP, or TLS over it.
#[derive(Debug)]
pub enum UpstreamStream {
    /// Plain TCP.
    Tcp(TcpStream),
    /// TLS (boxed: a TLS session is large, a plain connection small).
    Tls(Box<TlsStream<TcpStream>>),
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            UpstreamStream::Tcp($s) => $e,
            UpstreamStream::Tls($s) => $e,
        }
    };
}

impl AsyncRead for UpstreamStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        delegate!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for UpstreamStream {
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

/// Connects to the first address of `upstream` that accepts (and, with `tls`,
/// completes the handshake); returns the stream and the address used.
pub async fn connect(upstream: &UpstreamConfig) -> Result<(UpstreamStream, String), ConnectError> {
    let mut attempts = Vec::new();
    let mut timed_out = false;
    for addr in &upstream.addresses {
        let attempt = async {
            let tcp = crate::resolve::connect(addr, upstream.dns_refresh)
                .await
                .map_err(|e| e.to_string())?;
            let _ = tcp.set_nodelay(true);
            Ok::<_, String>(match &upstream.tls {
                None => UpstreamStream::Tcp(tcp),
                Some(tls) => UpstreamStream::Tls(Box::new(tls.handshake(tcp, addr).await?)),
            })
        };
        match tokio::time::timeout(upstream.connect_timeout, attempt).await {
            Ok(Ok(stream)) => return Ok((stream, addr.clone())),
            Ok(Err(e)) => attempts.push(format!("{addr}: {e}")),
            Err(_) => {
                timed_out = true;
                attempts.push(format!(
                    "{addr}: no answer in {}",
                    fmt(upstream.connect_timeout)
                ));
            }
        }
    }
    let upstream = upstream.name.clone();
    Err(if timed_out {
        ConnectError::TimedOut { upstream, attempts }
    } else {
        ConnectError::AllFailed { upstream, attempts }
    })
}

fn fmt(d: Duration) -> String {
    crate::config::duration::format(d)
}
