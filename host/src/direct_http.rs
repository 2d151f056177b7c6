//! Plain requests served without hyper. A bodyless HTTP/1.1 request that
//! [`Shape::direct`](crate::direct_head::Shape::direct) takes goes to its
//! route's default upstream over a connection from the worker's pool
//! ([`crate::direct_pool`]), all in the client connection's own task; the
//! response comes back as it arrives, its body framed as the upstream framed
//! it (a body that ends with the upstream's connection goes out in chunks). A
//! pooled connection found closed before it answered is replaced once
//! (idempotent methods only). Failures answer as the hyper path does: 502, or
//! 504 when no response head came within `response_timeout` (connecting
//! included). A client that leaves while the upstream prepares its answer
//! ends the exchange; a response that breaks off mid-body resets the client
//! connection, so the client cannot take a cut body for a whole one.

use bytes::{Buf, BytesMut};
use http::StatusCode;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::body::status_bytes;
use crate::config::UpstreamConfig;
use crate::direct_body::{relay, Ends};
use crate::direct_head::{client_head, ClientHead, PlainRequest};
use crate::direct_pool::Pools;
use crate::upstream::{self, UpstreamStream};
use crate::wire::{header_slots, MAX_HEAD};

/// What becomes of the client connection after a request.
#[derive(Debug, PartialEq, Eq)]
pub enum After {
    /// It may carry the next request.
    KeepAlive,
    /// It must close (the client asked, or the body ended with the
    /// upstream's connection).
    Close,
    /// It must be reset: the response broke off, or the client left.
    Abort,
}

/// Where a request goes.
pub struct Target<'a> {
    /// The pools.
    pub pools: &'a Arc<Pools>,
    /// The worker serving the client connection.
    pub worker: usize,
    /// The route's default upstream.
    pub upstream: &'a UpstreamConfig,
    /// The route's `response_timeout`, for the upstream's response head.
    pub response_timeout: Duration,
}

/// Why no response head came.
enum HeadError {
    /// The connection was closed (or reset) before any byte of an answer.
    Closed(String),
    /// The upstream answered something that is not a usable response head.
    Bad(String),
    /// The upstream answered 101 to a request that did not ask to upgrade.
    Switched,
}

/// Serves `req` and writes its response to `client`. `pending` holds what
/// the client sent past the request's head (its next request, perhaps); what
/// it sends while the upstream prepares its answer is added to it.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut S,
    pending: &mut BytesMut,
    req: PlainRequest,
    target: Target<'_>,
) -> After {
    let name = target.upstream.name.as_str();
    let deadline = Instant::now() + target.response_timeout;
    let exchanged = tokio::time::timeout_at(deadline, exchange(&req, &target));
    tokio::pin!(exchanged);
    let exchanged = loop {
        tokio::select! {
            biased;
            done = &mut exchanged => break done,
            read = client.read_buf(pending), if pending.len() < MAX_HEAD => {
                if matches!(read, Ok(0) | Err(_)) {
                    debug!(upstream = name, "client left before the response");
                    return After::Abort;
                }
            }
        }
    };
    let (mut stream, head, buf) = match exchanged {
        Ok(Ok(done)) => done,
        Ok(Err(answer)) => return answer_with(client, answer, &req).await,
        Err(_) => {
            let why = format!("upstream `{name}` sent no response in time");
            return answer_with(client, (StatusCode::GATEWAY_TIMEOUT, why), &req).await;
        }
    };
    let close = head.close;
    let mut ends = Ends {
        client,
        pending,
        upstream: &mut stream,
    };
    match relay(&mut ends, head, buf).await {
        Ok(true) => target.pools.put(target.worker, name, stream),
        Ok(false) => {}
        Err(e) => {
            debug!(upstream = name, error = %e, "plain response broke off");
            return After::Abort;
        }
    }
    if close {
        After::Close
    } else {
        After::KeepAlive
    }
}

/// An upstream connection, the client's head for the response, and the
/// bytes read past the upstream's head; or the answer the client gets.
type Exchanged = (UpstreamStream, ClientHead, BytesMut);

/// Sends the request over a pooled or new connection (once more on a new one
/// if a pooled one turns out closed) and reads the response head.
async fn exchange(
    req: &PlainRequest,
    target: &Target<'_>,
) -> Result<Exchanged, (StatusCode, String)> {
    let name = target.upstream.name.as_str();
    let (mut stream, mut reused) = match target.pools.take(target.worker, name) {
        Some(stream) => (stream, true),
        None => (connect(target.upstream).await?, false),
    };
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let why = loop {
        let error = match exchange_head(&mut stream, req, &mut buf).await {
            Ok((head, len)) => {
                buf.advance(len);
                return Ok((stream, head, buf));
            }
            Err(e) => e,
        };
        match error {
            HeadError::Closed(e) if reused && req.idempotent => {
                debug!(upstream = name, error = %e, "pooled upstream connection was closed: sending again on a new one");
                stream = connect(target.upstream).await?;
                reused = false;
                buf.clear();
            }
            HeadError::Closed(e) | HeadError::Bad(e) => {
                warn!(upstream = name, error = %e, "upstream request failed");
                break format!("upstream `{name}` failed: {e}");
            }
            HeadError::Switched => {
                // Invariant 1: only an upgrade request may be answered with a switch.
                warn!(upstream = name, "upstream answered 101 to a plain request");
                break format!(
                    "upstream `{name}` switched protocols on a request that did not ask to upgrade"
                );
            }
        }
    };
    Err((StatusCode::BAD_GATEWAY, why))
}

/// Connects to `up`; on failure, the answer the client gets.
async fn connect(up: &UpstreamConfig) -> Result<UpstreamStream, (StatusCode, String)> {
    match upstream::connect(up).await {
        Ok((stream, _)) => Ok(stream),
        Err(e) => {
            warn!(upstream = %up.name, error = %e, "upstream connect failed");
            Err(e.answer())
        }
    }
}

/// Writes the proxy's own answer (its head alone to a `HEAD`); the
/// connection stays open unless the client asked.
async fn answer_with<S: AsyncWrite + Unpin>(
    client: &mut S,
    (status, why): (StatusCode, String),
    req: &PlainRequest,
) -> After {
    let bytes = status_bytes(status, &why, req.close, req.head_method);
    match send(client, &bytes).await {
        Ok(()) if !req.close => After::KeepAlive,
        Ok(()) => After::Close,
        Err(_) => After::Abort,
    }
}

async fn send<S: AsyncWrite + Unpin>(client: &mut S, bytes: &[u8]) -> io::Result<()> {
    client.write_all(bytes).await?;
    // A TLS stream may hold the write until flushed.
    client.flush().await
}

/// Writes the request and reads up to the final response head (1xx skipped);
/// the client's head for it and how many bytes of `buf` it took.
async fn exchange_head(
    stream: &mut UpstreamStream,
    req: &PlainRequest,
    buf: &mut BytesMut,
) -> Result<(ClientHead, usize), HeadError> {
    let closed = |e: io::Error| HeadError::Closed(e.to_string());
    stream.write_all(&req.upstream_head).await.map_err(closed)?;
    stream.flush().await.map_err(closed)?;
    let mut answered = false;
    loop {
        if !buf.is_empty() {
            let mut slots = header_slots();
            let mut res = httparse::Response::new(&mut []);
            let config = httparse::ParserConfig::default();
            match config.parse_response_with_uninit_headers(&mut res, buf, &mut slots) {
                Ok(httparse::Status::Complete(len)) => match res.code.unwrap_or(0) {
                    101 => return Err(HeadError::Switched),
                    100..=199 => {
                        // Informational (100 Continue, 103 Early Hints): not relayed.
                        buf.advance(len);
                        continue;
                    }
                    _ => {
                        let head = client_head(&res, req.head_method, req.close)
                            .map_err(HeadError::Bad)?;
                        return Ok((head, len));
                    }
                },
                Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
                    return Err(HeadError::Bad(format!(
                        "response head larger than {MAX_HEAD} bytes"
                    )))
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => return Err(HeadError::Bad(format!("malformed response head: {e}"))),
            }
        }
        buf.reserve(8192);
        match stream.read_buf(buf).await {
            Ok(0) if !answered => {
                return Err(HeadError::Closed(
                    "connection closed before an answer".into(),
                ))
            }
            Ok(0) => {
                return Err(HeadError::Bad(
                    "connection closed in the response head".into(),
                ))
            }
            Ok(_) => answered = true,
            Err(e) if !answered => return Err(closed(e)),
            Err(e) => return Err(HeadError::Bad(e.to_string())),
        }
    }
}
