//! One client connection, plain TCP or TLS terminated by the listener: read
//! the first request head off the wire (so a plugin sees header names as the
//! client spelled them; a client too slow to send it gets 408), then serve the
//! connection with hyper, dispatching each request to the upgrade path or the
//! plain proxy.

use bytes::BytesMut;
use http::{Request, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::body::{status_response, ProxyBody};
use crate::headers::is_upgrade_request;
use crate::plugin::PeerInfo;
use crate::rewind::Rewind;
use crate::server::Shared;
use crate::wire::{self, Header, RequestHead};

/// Serves one accepted connection until it closes. `peer` says who the client
/// is and whether it came over TLS; `accepted` is when, for the head timeout.
pub async fn serve<S>(mut stream: S, peer: PeerInfo, accepted: Instant, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let client = peer.client_addr;
    let head_timeout = shared.snapshot().config.request_head_timeout;
    let mut buf = BytesMut::with_capacity(4096);
    let sniffed =
        tokio::time::timeout_at(accepted + head_timeout, sniff_head(&mut stream, &mut buf));
    let first = match sniffed.await {
        Err(_) => {
            tracing::info!(%client, timeout_ms = head_timeout.as_millis() as u64, "request head timeout: 408");
            let _ = stream
                .write_all(b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
                .await;
            let _ = stream.shutdown().await;
            return;
        }
        Ok(None) => return,
        Ok(Some(head)) => head,
    };
    let first = Mutex::new(first);
    let io = TokioIo::new(Rewind::new(buf.freeze(), stream));
    let service = service_fn(move |req: Request<Incoming>| {
        let raw = first.lock().ok().and_then(|mut f| f.take());
        let (shared, peer) = (shared.clone(), peer.clone());
        async move { Ok::<_, std::convert::Infallible>(dispatch(shared, peer, req, raw).await) }
    });
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout)
        .serve_connection(io, service)
        .with_upgrades()
        .await;
    if let Err(e) = served {
        tracing::debug!(%client, error = %e, "client connection ended with an error");
    }
}

/// Reads until `buf` holds one full request head. `None`: the client left before
/// sending a byte; `Some(None)`: not a parsable head, hyper answers it; `Some(Some(head))`.
async fn sniff_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> Option<Option<RequestHead>> {
    loop {
        let mut slots = [httparse::EMPTY_HEADER; wire::MAX_HEADERS];
        let mut req = httparse::Request::new(&mut slots);
        match req.parse(buf) {
            Ok(httparse::Status::Complete(_)) => {
                let head = RequestHead {
                    method: req.method.unwrap_or_default().to_string(),
                    target: req.path.unwrap_or_default().to_string(),
                    headers: req
                        .headers
                        .iter()
                        .map(|h| Header {
                            name: h.name.to_string(),
                            value: h.value.to_vec(),
                        })
                        .collect(),
                };
                return Some(Some(head));
            }
            Ok(httparse::Status::Partial) if buf.len() < wire::MAX_HEAD => {}
            _ => return Some(None),
        }
        buf.reserve(4096);
        match stream.read_buf(buf).await {
            Ok(0) | Err(_) if buf.is_empty() => return None,
            Ok(0) | Err(_) => return Some(None),
            Ok(_) => {}
        }
    }
}

/// The request head as hyper parsed it (names lower case), for requests after the first.
fn head_from_hyper(req: &Request<Incoming>) -> RequestHead {
    RequestHead {
        method: req.method().as_str().to_string(),
        target: req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string(),
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| Header {
                name: n.as_str().to_string(),
                value: v.as_bytes().to_vec(),
            })
            .collect(),
    }
}

async fn dispatch(
    shared: Arc<Shared>,
    peer: PeerInfo,
    req: Request<Incoming>,
    raw: Option<RequestHead>,
) -> http::Response<ProxyBody> {
    let snapshot = shared.snapshot();
    let router = &snapshot.router;
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().host());
    let Some(route) = router.find(host, req.uri().path()).cloned() else {
        return status_response(StatusCode::NOT_FOUND, "no route matches this host and path");
    };
    if !is_upgrade_request(req.headers()) {
        return snapshot
            .http
            .forward(&route, peer.client_addr, peer.scheme, req)
            .await;
    }
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let head = match raw {
        Some(h) if h.method == req.method().as_str() && h.target == target => h,
        _ => head_from_hyper(&req),
    };
    crate::upgrade::handle(route, peer, req, head, &shared.tunnels).await
}
