//! The built-in demo backend: a small HTML page at `/` and a WebSocket echo at
//! `/echo`, served with hyper and tokio-tungstenite. `upgate demo` (and `upgate`
//! with no config) puts the proxy in front of it.

use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

use crate::body::{full, status_response, ProxyBody};
use crate::headers::{is_upgrade_request, websocket_accept};

/// The page served at `/`.
pub const PAGE: &str = include_str!("demo.html");

/// Starts the echo backend on `addr` (port 0 for any); returns the bound address.
pub async fn start_backend(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service =
                    service_fn(|req| async move { Ok::<_, std::convert::Infallible>(handle(req)) });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    Ok(bound)
}

fn handle(mut req: Request<Incoming>) -> Response<ProxyBody> {
    if req.uri().path() == "/echo" && is_upgrade_request(req.headers()) {
        let Some(key) = req
            .headers()
            .get("sec-websocket-key")
            .map(|k| websocket_accept(k.as_bytes()))
        else {
            return status_response(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key");
        };
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(upgraded) = on_upgrade.await {
                let ws =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None)
                        .await;
                let (mut tx, mut rx) = ws.split();
                while let Some(Ok(msg)) = rx.next().await {
                    if (msg.is_text() || msg.is_binary()) && tx.send(msg).await.is_err() {
                        break;
                    }
                }
            }
        });
        let mut res = Response::new(full(""));
        *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = res.headers_mut();
        h.insert("upgrade", http::HeaderValue::from_static("websocket"));
        h.insert("connection", http::HeaderValue::from_static("Upgrade"));
        if let Ok(v) = http::HeaderValue::from_str(&key) {
            h.insert("sec-websocket-accept", v);
        }
        return res;
    }
    match req.uri().path() {
        "/" | "/index.html" => {
            let mut res = Response::new(full(PAGE));
            res.headers_mut().insert(
                "content-type",
                http::HeaderValue::from_static("text/html; charset=utf-8"),
            );
            res
        }
        _ => status_response(StatusCode::NOT_FOUND, "the demo serves / and /echo"),
    }
}
