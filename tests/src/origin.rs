//! Test origins on raw TCP: a WebSocket echo server built on tokio-tungstenite
//! (also behind TLS), a scripted server that answers every head with fixed
//! bytes, a silent one, and an address nobody listens on. Each records the raw request heads it received
//! (so tests can assert exact header spellings), see [`crate::server`].

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use crate::server::{read_head, Record, Server};
use upgate::rewind::Rewind;

/// The most bytes a scripted origin records after a head.
const MAX_RECORDED: usize = 16 << 20;

/// A WebSocket echo origin. Echoes text and binary messages; answers pings
/// (tungstenite does); selects the first offered `Sec-WebSocket-Protocol`;
/// records each connection's raw head and the close frame it receives. A text
/// message `close <code>` makes it close the connection with that code and
/// reason `bye`.
pub async fn ws_echo() -> Server {
    Server::spawn(echo_conn).await
}

/// [`ws_echo`] behind TLS terminated with `config` (see [`crate::tls`]). A
/// failed handshake is recorded as a closed connection with no head.
pub async fn wss_echo(config: Arc<rustls::ServerConfig>) -> Server {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    Server::spawn(move |stream, rec, conn| {
        let acceptor = acceptor.clone();
        async move {
            match acceptor.accept(stream).await {
                Ok(tls) => echo_conn(tls, rec, conn).await,
                Err(_) => rec.update(conn, |c| c.closed = true),
            }
        }
    })
    .await
}

async fn echo_conn<S>(mut stream: S, rec: Arc<Record>, conn: usize)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = BytesMut::with_capacity(4096);
    let Some(len) = read_head(&mut stream, &mut buf).await else {
        rec.update(conn, |c| c.closed = true);
        return;
    };
    rec.update(conn, |c| c.head = buf[..len].to_vec());
    let io = Rewind::new(buf.freeze(), stream);
    let ws = tokio_tungstenite::accept_hdr_async(io, select_protocol).await;
    let Ok(mut ws) = ws else {
        rec.update(conn, |c| c.closed = true);
        return;
    };
    while let Some(Ok(msg)) = ws.next().await {
        match msg {
            Message::Text(t) if t.starts_with("close ") => {
                let code: u16 = t["close ".len()..].trim().parse().unwrap();
                let frame = CloseFrame {
                    code: CloseCode::from(code),
                    reason: "bye".into(),
                };
                if ws.close(Some(frame)).await.is_err() {
                    break;
                }
            }
            m @ (Message::Text(_) | Message::Binary(_)) => {
                if ws.send(m).await.is_err() {
                    break;
                }
            }
            Message::Close(frame) => {
                let seen = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                rec.update(conn, |c| c.ws_close = Some(seen));
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }
    rec.update(conn, |c| c.closed = true);
}

/// The handshake callback: answer with the first subprotocol the client offers.
#[allow(clippy::result_large_err)]
fn select_protocol(
    req: &Request,
    mut res: Response,
) -> Result<Response, tokio_tungstenite::tungstenite::handshake::server::ErrorResponse> {
    let first = req
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .and_then(|p| p.parse().ok());
    if let Some(p) = first {
        res.headers_mut().insert("sec-websocket-protocol", p);
    }
    Ok(res)
}

/// An origin that reads each connection's head, writes exactly `response`,
/// then records whatever else arrives until the peer closes.
pub async fn scripted(response: impl Into<Vec<u8>>) -> Server {
    let response: Arc<[u8]> = response.into().into();
    Server::spawn(move |stream, rec, conn| scripted_conn(stream, rec, conn, response.clone())).await
}

/// An origin that reads each head and never answers (nor closes).
pub async fn silent() -> Server {
    scripted(Vec::new()).await
}

async fn scripted_conn(mut stream: TcpStream, rec: Arc<Record>, conn: usize, response: Arc<[u8]>) {
    let mut buf = BytesMut::with_capacity(4096);
    if let Some(len) = read_head(&mut stream, &mut buf).await {
        rec.update(conn, |c| {
            c.head = buf[..len].to_vec();
            c.after_head = buf[len..].to_vec();
        });
        if stream.write_all(&response).await.is_ok() {
            let mut chunk = vec![0u8; 16 * 1024];
            let mut total = buf.len() - len;
            while total < MAX_RECORDED {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        total += n;
                        rec.update(conn, |c| c.after_head.extend_from_slice(&chunk[..n]));
                    }
                }
            }
        }
    }
    rec.update(conn, |c| c.closed = true);
}

/// A `101` to a WebSocket handshake made with `key`: `Upgrade: <protocol>`,
/// the right `Sec-WebSocket-Accept`, then the `extra` header lines (each
/// ending in CRLF) and, after the head, `then`.
pub fn switching(protocol: &str, key: &str, extra: &str, then: &[u8]) -> Vec<u8> {
    let accept = upgate::headers::websocket_accept(key.as_bytes());
    let mut out = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: {protocol}\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n{extra}\r\n"
    )
    .into_bytes();
    out.extend_from_slice(then);
    out
}

/// An address on which nothing listens (bound, then released).
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}
