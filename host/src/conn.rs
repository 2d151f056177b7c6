//! One client connection, plain TCP or TLS terminated by the listener. Each
//! request head is read off the wire first (so a plugin sees header names as
//! the client spelled them; a client too slow to send its first head, or one
//! it began, gets 408). A plain upgrade request (GET, HTTP/1.1, no body) that a route takes
//! is decided right away: a switch writes the 101 and starts the tunnel
//! without hyper ever seeing the connection. A bodyless plain request is
//! served by [`crate::direct_http`], and the connection goes on to its next
//! request. Anything else (and the answer to an upgrade that is not switched)
//! hands the connection to hyper for the rest of its life, which dispatches
//! each request to the upgrade path or the plain proxy.

use bytes::{Buf, BytesMut};
use http::{Request, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use crate::body::{status_response, ProxyBody};
use crate::direct_head::{self, PlainRequest};
use crate::direct_http::{self, After, Target};
use crate::headers::is_upgrade_request;
use crate::plugin::PeerInfo;
use crate::rewind::Rewind;
use crate::router::Route;
use crate::server::{Shared, Snapshot};
use crate::switch::{self, Switch};
use crate::tunnel_io::End;
use crate::upgrade::Decided;
use crate::wire::{self, Header, RequestHead};

/// Serves one accepted connection until it closes. `peer` says who the client
/// is and whether it came over TLS; `accepted` is when, for the head timeout;
/// `worker` is the worker serving it (its pool of upstream connections).
pub async fn serve<S>(
    mut stream: S,
    peer: PeerInfo,
    accepted: Instant,
    shared: Arc<Shared>,
    worker: usize,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + Into<End> + Socket + 'static,
{
    let client = peer.client_addr;
    let head_timeout = shared.snapshot().config.request_head_timeout;
    let mut buf = BytesMut::with_capacity(4096);
    let mut deadline = accepted + head_timeout;
    let mut first = true;
    // What hyper gets: the raw head of the request it reads first, and the
    // answer to it when that was an upgrade decided here but not switched.
    let (raw, answered) = loop {
        let classified = read_head(&mut stream, &mut buf, |req| classify(req, &peer, &shared));
        let (len, step) = match tokio::time::timeout_at(deadline, classified).await {
            Err(_) if first || !buf.is_empty() => {
                tracing::info!(%client, timeout_ms = head_timeout.as_millis() as u64, "request head timeout: 408");
                let _ = stream
                    .write_all(b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
                    .await;
                let _ = stream.shutdown().await;
                return;
            }
            // An idle keep-alive connection: closed quietly.
            Err(_) | Ok(Read::Gone) => return,
            Ok(Read::Unparsable) => break (None, None),
            Ok(Read::Head(len, step)) => (len, step),
        };
        match step {
            Step::Upgrade(head, route) => {
                match crate::upgrade::decide(route, peer.clone(), head, &shared.tunnels).await {
                    Decided::Switch(Switch { response, tunnel }) => {
                        let head = switch::head_bytes(&response);
                        // A TLS stream may hold the write until flushed.
                        if stream.write_all(&head).await.is_err() || stream.flush().await.is_err() {
                            return;
                        }
                        let client_first = buf.get(len..).unwrap_or_default().to_vec();
                        tokio::spawn(tunnel.run(stream.into(), client_first));
                        return;
                    }
                    Decided::Answer(response) => break (None, Some(response)),
                }
            }
            Step::Plain(req, route, snapshot) => {
                buf.advance(len);
                let Some(upstream) = route.upstreams.first() else {
                    return;
                };
                let target = Target {
                    pools: snapshot.http.direct_pools(),
                    worker,
                    upstream,
                    response_timeout: route.config.response_timeout,
                };
                match direct_http::serve(&mut stream, &mut buf, req, target).await {
                    After::KeepAlive => {}
                    After::Close => {
                        // A client that stops reading does not hold the task.
                        let closing = tokio::time::timeout(CLOSE_WAIT, stream.shutdown());
                        let _ = closing.await;
                        return;
                    }
                    After::Abort => return reset(stream),
                }
                first = false;
                deadline = Instant::now() + head_timeout;
            }
            Step::Hyper(head) => break (head, None),
        }
    };
    let first = Mutex::new((raw, answered));
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

/// Longest wait for a clean close of a client connection (a TLS close_notify
/// to a client that stopped reading).
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// The TCP connection under a client's stream (under TLS, if any).
pub trait Socket {
    /// The TCP socket.
    fn tcp(&self) -> &tokio::net::TcpStream;
}

impl Socket for tokio::net::TcpStream {
    fn tcp(&self) -> &tokio::net::TcpStream {
        self
    }
}

impl Socket for tokio_rustls::server::TlsStream<tokio::net::TcpStream> {
    fn tcp(&self) -> &tokio::net::TcpStream {
        self.get_ref().0
    }
}

/// Resets a client connection (RST, not FIN, and no TLS close_notify), so
/// that a response cut short cannot pass for a whole one.
fn reset<S: Socket>(stream: S) {
    let _ = stream.tcp().set_zero_linger();
    drop(stream);
}

/// What reading a request head came to.
enum Read {
    /// The client left before sending a byte of it.
    Gone,
    /// Not a parsable head (or cut short): hyper answers it.
    Unparsable,
    /// A whole head: its length in the buffer, and what serves it.
    Head(usize, Step),
}

/// What serves a request.
// Made once per request and matched at once: boxing would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Step {
    /// A plain upgrade a route takes: decided before hyper.
    Upgrade(RequestHead, Arc<Route>),
    /// A bodyless plain request a route with an upstream takes: served
    /// directly, with the upstream's pools from the route's snapshot.
    Plain(PlainRequest, Arc<Route>, Arc<Snapshot>),
    /// Anything else: hyper, with the raw head when it may be an upgrade.
    Hyper(Option<RequestHead>),
}

/// Picks what serves the request whose whole head `req` is.
fn classify(req: &httparse::Request, peer: &PeerInfo, shared: &Shared) -> Step {
    let owned = |req: &httparse::Request| RequestHead {
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
    // What hyper gets: the head as spelled, for the upgrade path alone
    // (`dispatch` reads it only for an upgrade request, which has `Upgrade`).
    let for_hyper = |req: &httparse::Request| {
        req.headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case("upgrade"))
            .then(|| owned(req))
    };
    let shape = direct_head::Shape::of(req);
    let upgrade = shape.plain_upgrade(req);
    if !upgrade && !shape.direct(req) {
        return Step::Hyper(for_hyper(req));
    }
    let snapshot = shared.snapshot();
    let route = {
        let host = shape.host.and_then(|h| std::str::from_utf8(h).ok());
        let path = req.path.unwrap_or("/");
        let path = path.split('?').next().unwrap_or("/");
        snapshot.router.find(host, path).cloned()
    };
    match route {
        Some(route) if upgrade => Step::Upgrade(owned(req), route),
        Some(route) if !route.upstreams.is_empty() => Step::Plain(
            direct_head::plain_request(req, peer.client_addr, peer.scheme),
            route,
            snapshot,
        ),
        // No route (hyper answers 404), or one without an upstream (502).
        _ => Step::Hyper(for_hyper(req)),
    }
}

/// Reads until `buf` holds one full request head (one may already be there:
/// a client may send its next request before the answer to this one), and
/// hands it, parsed once, to `classify`.
async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    classify: impl Fn(&httparse::Request) -> Step,
) -> Read {
    loop {
        if !buf.is_empty() {
            let mut slots = wire::header_slots();
            let mut req = httparse::Request::new(&mut []);
            match req.parse_with_uninit_headers(buf, &mut slots) {
                Ok(httparse::Status::Complete(len)) => return Read::Head(len, classify(&req)),
                Ok(httparse::Status::Partial) if buf.len() < wire::MAX_HEAD => {}
                _ => return Read::Unparsable,
            }
        }
        buf.reserve(4096);
        match stream.read_buf(buf).await {
            Ok(0) | Err(_) if buf.is_empty() => return Read::Gone,
            Ok(0) | Err(_) => return Read::Unparsable,
            Ok(_) => {}
        }
    }
}

/// The request head as hyper parsed it (names lower case), for the requests
/// after the one read here.
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
