//! Plain HTTP/1.1 reverse proxying: the request streams to a pooled keep-alive
//! connection of the route's default upstream (addresses tried in order on
//! connect failure; TLS for `tls` upstreams), the response streams back; hop-by-hop headers are dropped and
//! forwarding headers added. Upstream down → 502, too slow → 504.

use http::{Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::Connected, connect::Connection, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::body::{status_response, ProxyBody};
use crate::config::UpstreamConfig;
use crate::direct_pool::{Pools, IDLE_PER_UPSTREAM, IDLE_TIMEOUT};
use crate::headers::{add_forwarding, remove_hop_by_hop};
use crate::router::Route;
use crate::upstream::{self, ConnectError, UpstreamStream};

/// A pooled HTTP client whose "hosts" are upstream names, and the per-worker
/// pools of the direct path ([`crate::direct_http`]).
#[derive(Clone)]
pub struct HttpProxy {
    client: Client<UpstreamConnector, ProxyBody>,
    direct: Arc<Pools>,
}

/// Connects a pool key (an upstream name, as the URI host) to that upstream.
#[derive(Clone)]
pub struct UpstreamConnector {
    upstreams: Arc<BTreeMap<String, UpstreamConfig>>,
}

/// A pooled upstream connection (plain or TLS).
pub struct UpstreamConn(TokioIo<UpstreamStream>);

impl Connection for UpstreamConn {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for UpstreamConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for UpstreamConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Why a connector call failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectorError {
    /// The pool key names no upstream (a bug if it happens).
    #[error("no upstream named `{0}`")]
    Unknown(String),
    /// Connecting failed.
    #[error(transparent)]
    Connect(#[from] ConnectError),
}

impl tower_service::Service<Uri> for UpstreamConnector {
    type Response = UpstreamConn;
    type Error = ConnectorError;
    type Future = Pin<Box<dyn Future<Output = Result<UpstreamConn, ConnectorError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let upstreams = self.upstreams.clone();
        Box::pin(async move {
            let name = uri.host().unwrap_or_default();
            let up = upstreams
                .get(name)
                .ok_or_else(|| ConnectorError::Unknown(name.to_string()))?;
            let (stream, _) = upstream::connect(up).await?;
            Ok(UpstreamConn(TokioIo::new(stream)))
        })
    }
}

impl HttpProxy {
    /// A client over `upstreams` (by name), with direct-path pools for `workers` workers.
    pub fn new(upstreams: BTreeMap<String, UpstreamConfig>, workers: usize) -> HttpProxy {
        let connector = UpstreamConnector {
            upstreams: Arc::new(upstreams),
        };
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(IDLE_TIMEOUT)
            .pool_max_idle_per_host(IDLE_PER_UPSTREAM)
            .set_host(false)
            .build(connector);
        HttpProxy {
            client,
            direct: Arc::new(Pools::new(workers)),
        }
    }

    /// The idle upstream connections of the direct path, per worker.
    pub fn direct_pools(&self) -> &Arc<Pools> {
        &self.direct
    }

    /// Forwards `req` to `route`'s default upstream.
    pub async fn forward(
        &self,
        route: &Route,
        client: std::net::SocketAddr,
        scheme: &str,
        req: Request<Incoming>,
    ) -> Response<ProxyBody> {
        let Some(up) = route.upstreams.first() else {
            return status_response(StatusCode::BAD_GATEWAY, "route has no upstream");
        };
        let (mut parts, body) = req.into_parts();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        parts.uri = match Uri::builder()
            .scheme("http")
            .authority(up.name.as_str())
            .path_and_query(path)
            .build()
        {
            Ok(uri) => uri,
            Err(_) => {
                return status_response(
                    StatusCode::BAD_GATEWAY,
                    "upstream name is not usable as a pool key",
                )
            }
        };
        parts.version = http::Version::HTTP_11;
        remove_hop_by_hop(&mut parts.headers);
        add_forwarding(&mut parts.headers, client, scheme);
        let body = body
            .map_err(|e| Box::new(e) as crate::body::BoxError)
            .boxed();
        let sent = self.client.request(Request::from_parts(parts, body));
        let res = match tokio::time::timeout(route.config.response_timeout, sent).await {
            Err(_) => {
                return status_response(
                    StatusCode::GATEWAY_TIMEOUT,
                    &format!("upstream `{}` sent no response in time", up.name),
                )
            }
            Ok(Err(e)) => return upstream_error(&up.name, e),
            Ok(Ok(res)) => res,
        };
        if res.status() == StatusCode::SWITCHING_PROTOCOLS {
            // Invariant 1: only an upgrade request may be answered with a switch.
            tracing::warn!(upstream = %up.name, "upstream answered 101 to a plain request");
            return status_response(
                StatusCode::BAD_GATEWAY,
                &format!(
                    "upstream `{}` switched protocols on a request that did not ask to upgrade",
                    up.name
                ),
            );
        }
        let (mut parts, body) = res.into_parts();
        remove_hop_by_hop(&mut parts.headers);
        Response::from_parts(
            parts,
            body.map_err(|e| Box::new(e) as crate::body::BoxError)
                .boxed(),
        )
    }
}

fn upstream_error(name: &str, e: hyper_util::client::legacy::Error) -> Response<ProxyBody> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = source {
        if let Some(ConnectorError::Connect(c)) = err.downcast_ref::<ConnectorError>() {
            tracing::warn!(upstream = name, error = %c, "upstream connect failed");
            let (status, why) = c.answer();
            return status_response(status, &why);
        }
        source = err.source();
    }
    tracing::warn!(upstream = name, error = %e, "upstream request failed");
    status_response(
        StatusCode::BAD_GATEWAY,
        &format!("upstream `{name}` failed: {e}"),
    )
}
