//! A byte-level client: writes exactly the bytes a test gives, reads response
//! heads, bodies (length, chunked or to EOF) and WebSocket frames off the same
//! buffer, so bytes that arrive together with a head are never lost.

use bytes::{Buf, BytesMut};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::frame::{self, Frame};
use crate::{within, within_for};

/// The `Sec-WebSocket-Key` of every raw handshake (RFC 6455's sample nonce).
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// The `Sec-WebSocket-Accept` that answers [`KEY`].
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// A WebSocket upgrade request for `target` with [`KEY`], headers spelled as
/// written here, plus `extra` header lines (each ending in CRLF).
pub fn upgrade_request(target: &str, extra: &str) -> String {
    format!(
        "GET {target} HTTP/1.1\r\nHost: upgate.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n{extra}\r\n"
    )
}

/// A response head.
#[derive(Clone, Debug)]
pub struct Head {
    /// Status code.
    pub status: u16,
    /// Header fields as received (name spelling kept).
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A whole response.
#[derive(Clone, Debug)]
pub struct RawResponse {
    /// Its head.
    pub head: Head,
    /// Its body, de-chunked.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The status code.
    pub fn status(&self) -> u16 {
        self.head.status
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How a response body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// `Content-Length`.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the connection closes.
    Eof,
}

/// One client connection.
pub struct RawConn {
    /// The socket.
    stream: TcpStream,
    /// Bytes read and not yet consumed.
    buf: BytesMut,
}

impl RawConn {
    /// Connects to `addr` (bounded).
    pub async fn connect(addr: SocketAddr) -> RawConn {
        let stream = within("raw connect", TcpStream::connect(addr))
            .await
            .unwrap();
        stream.set_nodelay(true).unwrap();
        RawConn {
            stream,
            buf: BytesMut::with_capacity(16 * 1024),
        }
    }

    /// Writes `bytes` in one `write_all`.
    pub async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        within("raw write", self.stream.write_all(bytes.as_ref()))
            .await
            .unwrap();
    }

    /// Reads more bytes; `false` at EOF or on a reset.
    async fn fill(&mut self) -> bool {
        self.buf.reserve(16 * 1024);
        matches!(
            within("raw read", self.stream.read_buf(&mut self.buf)).await,
            Ok(n) if n > 0
        )
    }

    async fn fill_or_panic(&mut self, what: &str) {
        assert!(
            self.fill().await,
            "connection closed while reading {what}; got so far: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
    }

    /// Reads a response head (interim 1xx other than 101 included, as any head).
    pub async fn read_head(&mut self) -> Head {
        loop {
            let mut slots = [httparse::EMPTY_HEADER; 64];
            let mut res = httparse::Response::new(&mut slots);
            if let httparse::Status::Complete(used) = res.parse(&self.buf).unwrap() {
                let head = Head {
                    status: res.code.unwrap(),
                    headers: res
                        .headers
                        .iter()
                        .map(|h| {
                            let v = String::from_utf8_lossy(h.value).into_owned();
                            (h.name.to_string(), v)
                        })
                        .collect(),
                };
                self.buf.advance(used);
                return head;
            }
            self.fill_or_panic("a response head").await;
        }
    }

    /// The framing of the body that follows `head`, for a request with `method`.
    pub fn framing(head: &Head, method: &str) -> Framing {
        if method == "HEAD" || matches!(head.status, 100..=199 | 204 | 304) {
            return Framing::Empty;
        }
        if head
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
        {
            return Framing::Chunked;
        }
        match head.header("content-length") {
            Some(n) => Framing::Length(n.trim().parse().unwrap()),
            None => Framing::Eof,
        }
    }

    /// Reads a whole response to a `GET`-like request.
    pub async fn read_response(&mut self) -> RawResponse {
        let head = self.read_head().await;
        let body = match RawConn::framing(&head, "GET") {
            Framing::Empty => Vec::new(),
            Framing::Length(n) => self.read_exact(n).await,
            Framing::Chunked => {
                let mut body = Vec::new();
                while let Some(chunk) = self.read_chunk().await {
                    body.extend_from_slice(&chunk);
                }
                body
            }
            Framing::Eof => self.read_to_eof().await,
        };
        RawResponse { head, body }
    }

    /// Reads exactly `n` body bytes.
    pub async fn read_exact(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            self.fill_or_panic("a body").await;
        }
        self.buf.split_to(n).to_vec()
    }

    /// Reads one chunk of a chunked body; `None` for the last chunk (trailers skipped).
    pub async fn read_chunk(&mut self) -> Option<Vec<u8>> {
        let line = self.read_line().await;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
        if size == 0 {
            while !self.read_line().await.is_empty() {}
            return None;
        }
        let data = self.read_exact(size).await;
        assert_eq!(
            self.read_line().await,
            "",
            "chunk data not followed by CRLF"
        );
        Some(data)
    }

    /// Reads chunks until they hold `n` bytes in all.
    pub async fn read_chunked_bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while out.len() < n {
            let chunk = self.read_chunk().await.expect("body ended early");
            out.extend_from_slice(&chunk);
        }
        out
    }

    async fn read_line(&mut self) -> String {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf.split_to(end + 2);
                return String::from_utf8_lossy(&line[..end]).into_owned();
            }
            self.fill_or_panic("a line").await;
        }
    }

    /// Reads until the peer closes; returns everything unread.
    pub async fn read_to_eof(&mut self) -> Vec<u8> {
        while self.fill().await {}
        self.buf.split().to_vec()
    }

    /// Reads one WebSocket frame.
    pub async fn read_frame(&mut self) -> Frame {
        loop {
            if let Some((f, used)) = frame::parse(&self.buf) {
                self.buf.advance(used);
                return f;
            }
            self.fill_or_panic("a WebSocket frame").await;
        }
    }

    /// Waits up to `limit` for the peer to close; returns the bytes that came first.
    pub async fn closed_within(&mut self, limit: Duration) -> Vec<u8> {
        within_for(limit, "the peer to close the connection", async {
            while self.fill().await {}
        })
        .await;
        self.buf.split().to_vec()
    }

    /// Whether the connection is still open after `wait` (no EOF, nothing read).
    pub async fn still_open_after(&mut self, wait: Duration) -> bool {
        let mut one = [0u8; 1];
        tokio::time::timeout(wait, self.stream.peek(&mut one))
            .await
            .is_err()
    }

    /// Bytes already read and not consumed.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }
}
