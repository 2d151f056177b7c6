//! One client connection, plain TCP or TLS terminated by the listener: read
//! the first request head off the wire (so a plugin sees header names as the
//! client spelled them; a client too slow to send it gets 408). When that first
//! request is a plain upgrade request (GET, HTTP/1.1, no body) that a route
//! takes, it is decided right away: a switch writes the 101 and starts the
//! tunnel without hyper ever seeing the connection. Everything else (and the
//! answer to an upgrade that is not switched) is served by hyper, dispatching
//! each request to the upgrade path or the plain proxy.

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
use crate::switch::{self, Switch, Tunnel};
use crate::tunnel_io::End;
use crate::upgrade::Decided;
use crate::wire::{self, Header, RequestHead};

/// Serves one accepted connection until it closes. `peer` says who the client
/// is and whether it came over TLS; `accepted` is when, for the head timeout.
pub async fn serve<S>(mut stream: S, peer: PeerInfo, accepted: Instant, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + Into<End> + 'static,
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
    // The first request's answer, when it was an upgrade decided here but not
    // switched: hyper reads the request and sends this answer.
    let mut answered = None;
    let first = match first {
        Some(sniffed) if sniffed.plain_upgrade() => {
            let len = sniffed.len;
            match upgrade_directly(sniffed.head, &peer, &shared).await {
                Direct::Switched(response, tunnel) => {
                    let head = switch::head_bytes(&response);
                    // A TLS stream may hold the write until flushed.
                    if stream.write_all(&head).await.is_err() || stream.flush().await.is_err() {
                        return;
                    }
                    let client_first = buf.get(len..).unwrap_or_default().to_vec();
                    tokio::spawn(tunnel.run(stream.into(), client_first));
                    return;
                }
                Direct::Answered(response) => {
                    answered = Some(response);
                    None
                }
                Direct::NoRoute(head) => Some(head),
            }
        }
        other => other.map(|s| s.head),
    };
    let first = Mutex::new((first, answered));
    let io = TokioIo::new(Rewind::new(buf.freeze(), stream));
    let service = service_fn(move |req: Request<Incoming>| {
        let (raw, answered) = match first.lock() {
            Ok(mut f) => (f.0.take(), f.1.take()),
            Err(_) => (None, None),
        };
        let (shared, peer) = (shared.clone(), peer.clone());
        async move {
            let response = match answered {
                Some(response) => response,
                None => dispatch(shared, peer, req, raw).await,
            };
            Ok::<_, std::convert::Infallible>(response)
        }
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

/// The first request head, as read off the wire.
struct Sniffed {
    head: RequestHead,
    /// Bytes of `buf` the head takes (what follows is the client's, after it).
    len: usize,
    /// HTTP/1.1 (not 1.0).
    http11: bool,
}

impl Sniffed {
    /// A request upgate can decide without hyper: a GET of an origin-form
    /// target over HTTP/1.1 with one `Host`, asking to upgrade, with no body.
    /// Anything else goes to hyper, which checks it as for any request.
    fn plain_upgrade(&self) -> bool {
        let h = &self.head.headers;
        let count = |name: &str| {
            h.iter()
                .filter(|f| f.name.eq_ignore_ascii_case(name))
                .count()
        };
        self.http11
            && self.head.method == "GET"
            && self.head.target.starts_with('/')
            && count("host") == 1
            && count("transfer-encoding") == 0
            && wire::find(h, "content-length").is_none_or(|v| v == b"0")
            && count("content-length") <= 1
            && wire::find(h, "upgrade").is_some()
            && wire::tokens(h, "connection").iter().any(|t| t == "upgrade")
    }
}

/// How an upgrade decided before hyper ended.
// Returned once per connection and matched at once: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Direct {
    /// A 101 to write, and its tunnel.
    Switched(http::Response<ProxyBody>, Tunnel),
    /// An answer for hyper to send.
    Answered(http::Response<ProxyBody>),
    /// No route takes it: hyper answers (404), the head back for it.
    NoRoute(RequestHead),
}

/// Decides the connection's first request, a plain upgrade, before hyper.
async fn upgrade_directly(head: RequestHead, peer: &PeerInfo, shared: &Arc<Shared>) -> Direct {
    let route = {
        let snapshot = shared.snapshot();
        let host = wire::find(&head.headers, "host").and_then(|v| std::str::from_utf8(v).ok());
        let path = head.target.split('?').next().unwrap_or("/");
        snapshot.router.find(host, path).cloned()
    };
    let Some(route) = route else {
        return Direct::NoRoute(head);
    };
    match crate::upgrade::decide(route, peer.clone(), head, &shared.tunnels).await {
        Decided::Switch(Switch { response, tunnel }) => Direct::Switched(response, tunnel),
        Decided::Answer(response) => Direct::Answered(response),
    }
}

/// Reads until `buf` holds one full request head. `None`: the client left before
/// sending a byte; `Some(None)`: not a parsable head, hyper answers it; `Some(Some(head))`.
async fn sniff_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> Option<Option<Sniffed>> {
    loop {
        let mut slots = [httparse::EMPTY_HEADER; wire::MAX_HEADERS];
        let mut req = httparse::Request::new(&mut slots);
        match req.parse(buf) {
            Ok(httparse::Status::Complete(len)) => {
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
                let http11 = req.version == Some(1);
                return Some(Some(Sniffed { head, len, http11 }));
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
