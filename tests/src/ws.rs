//! A WebSocket client through the proxy: tokio-tungstenite's `client_async`
//! over a plain `TcpStream` (over TLS: [`crate::tls::wss_connect`]), with
//! bounded sends and receives on either.

use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Response;
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::WebSocketStream;

use crate::within;

/// A client connection.
pub type Ws = WebSocketStream<TcpStream>;

/// Connects and completes the handshake to `path`, with extra request `headers`.
pub async fn try_connect(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(Ws, Response), Error> {
    let mut req = format!("ws://{addr}{path}").into_client_request()?;
    for (n, v) in headers {
        let name = http::HeaderName::from_bytes(n.as_bytes()).unwrap();
        req.headers_mut().append(name, v.parse().unwrap());
    }
    let stream = within("ws connect", TcpStream::connect(addr)).await?;
    stream.set_nodelay(true)?;
    within("ws handshake", tokio_tungstenite::client_async(req, stream)).await
}

/// `e`, with the status and body of the answer when the handshake was refused.
pub fn describe(e: &Error) -> String {
    match e {
        Error::Http(res) => {
            let body = res.body().as_deref().unwrap_or_default();
            format!("HTTP {}: {:?}", res.status(), String::from_utf8_lossy(body))
        }
        other => other.to_string(),
    }
}

/// Connects to `path`; panics if the handshake fails.
pub async fn connect(addr: SocketAddr, path: &str) -> Ws {
    match try_connect(addr, path, &[]).await {
        Ok((ws, _)) => ws,
        Err(e) => panic!(
            "WebSocket handshake through the proxy failed: {}",
            describe(&e)
        ),
    }
}

/// Sends `msg` (bounded).
pub async fn send<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>, msg: Message) {
    within("ws send", ws.send(msg)).await.unwrap();
}

/// The next message (bounded); panics if the stream ends or fails.
pub async fn recv<S: AsyncRead + AsyncWrite + Unpin>(ws: &mut WebSocketStream<S>) -> Message {
    match within("ws receive", ws.next()).await {
        Some(Ok(m)) => m,
        Some(Err(e)) => panic!("WebSocket receive failed: {e}"),
        None => panic!("WebSocket stream ended"),
    }
}

/// Sends `text` and expects it echoed.
pub async fn round_trip<S: AsyncRead + AsyncWrite + Unpin>(
    ws: &mut WebSocketStream<S>,
    text: &str,
) {
    send(ws, Message::text(text)).await;
    match recv(ws).await {
        Message::Text(t) => assert_eq!(t.as_str(), text),
        other => panic!("expected the echo of {text:?}, got {other:?}"),
    }
}
