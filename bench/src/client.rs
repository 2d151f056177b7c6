//! A minimal WebSocket and HTTP/1.1 client, written for the least client CPU per operation:
//! a fixed key (whose accept value is known, so checking it is a compare), frames masked with
//! the all-zero key (a valid key under RFC 6455 §5.3 that makes masking a no-op for the client
//! and the backend; the proxies never unmask), and whole pre-built frames written at once.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &[u8] = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
/// Deadline for any single step (connect, handshake, one echo): a stuck target fails the
/// operation instead of hanging the run.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(5);

fn err(msg: impl Into<String>) -> io::Error {
    io::Error::other(msg.into())
}

async fn timed<T>(f: impl std::future::Future<Output = io::Result<T>>) -> io::Result<T> {
    tokio::time::timeout(STEP_TIMEOUT, f)
        .await
        .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "step timed out")))
}

/// The upgrade request for a target (its `Host` value).
pub fn upgrade_request(addr: SocketAddr) -> Vec<u8> {
    format!(
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .into_bytes()
}

/// A client frame (masked with the zero key) carrying `size` bytes, and the length of the
/// server's unmasked echo of it.
pub fn echo_frame(size: usize) -> (Vec<u8>, usize) {
    let mut f = vec![0x82u8];
    let hdr = match size {
        s if s < 126 => {
            f.push(0x80 | s as u8);
            2
        }
        s if s <= 0xffff => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(s as u16).to_be_bytes());
            4
        }
        s => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(s as u64).to_be_bytes());
            10
        }
    };
    f.extend_from_slice(&[0; 4]);
    f.extend(std::iter::repeat_n(b'x', size));
    (f, hdr + size)
}

/// An open WebSocket connection.
pub struct Ws {
    stream: TcpStream,
    buf: Vec<u8>,
    filled: usize,
}

impl Ws {
    /// Connects and upgrades; `buf_size` is the read buffer (the largest echo expected).
    pub async fn connect(addr: SocketAddr, request: &[u8], buf_size: usize) -> io::Result<Ws> {
        timed(async {
            let stream = TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let mut ws = Ws {
                stream,
                buf: vec![0; buf_size.max(1024)],
                filled: 0,
            };
            ws.stream.write_all(request).await?;
            loop {
                let n = ws.stream.read(&mut ws.buf[ws.filled..]).await?;
                if n == 0 {
                    return Err(err("connection closed during the handshake"));
                }
                ws.filled += n;
                let mut headers = [httparse::EMPTY_HEADER; 24];
                let mut resp = httparse::Response::new(&mut headers);
                match resp.parse(&ws.buf[..ws.filled]) {
                    Ok(httparse::Status::Complete(len)) => {
                        if resp.code != Some(101) {
                            return Err(err(format!(
                                "upgrade answered {}",
                                String::from_utf8_lossy(
                                    ws.buf[..ws.filled]
                                        .split(|&b| b == b'\r')
                                        .next()
                                        .unwrap_or(&[])
                                )
                            )));
                        }
                        let accept = resp
                            .headers
                            .iter()
                            .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept"))
                            .map(|h| h.value);
                        if accept != Some(ACCEPT) {
                            return Err(err("101 without the right Sec-WebSocket-Accept"));
                        }
                        ws.buf.copy_within(len..ws.filled, 0);
                        ws.filled -= len;
                        return Ok(ws);
                    }
                    Ok(httparse::Status::Partial) if ws.filled < ws.buf.len() => {}
                    Ok(httparse::Status::Partial) => return Err(err("response head too large")),
                    Err(e) => return Err(err(format!("bad response head: {e}"))),
                }
            }
        })
        .await
    }

    /// Reads until `n` bytes are buffered.
    async fn fill(&mut self, n: usize) -> io::Result<()> {
        if self.buf.len() < n {
            self.buf.resize(n, 0);
        }
        while self.filled < n {
            let r = self.stream.read(&mut self.buf[self.filled..]).await?;
            if r == 0 {
                return Err(err("connection closed mid-echo"));
            }
            self.filled += r;
        }
        Ok(())
    }

    /// Sends one frame and waits for its echo of `echo_len` bytes.
    pub async fn echo(&mut self, frame: &[u8], echo_len: usize) -> io::Result<()> {
        timed(async {
            self.stream.write_all(frame).await?;
            self.fill(echo_len).await?;
            if self.buf[0] != frame[0] || self.filled != echo_len {
                return Err(err("unexpected echo"));
            }
            self.filled = 0;
            Ok(())
        })
        .await
    }

    /// The closing handshake: close frame, the server's close frame, then its FIN.
    pub async fn close(mut self) -> io::Result<()> {
        timed(async {
            self.stream
                .write_all(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8])
                .await?;
            self.fill(4).await?;
            if self.buf[0] != 0x88 {
                return Err(err("no close frame in answer"));
            }
            loop {
                if self.stream.read(&mut self.buf).await? == 0 {
                    return Ok(());
                }
            }
        })
        .await
    }
}

/// A keep-alive HTTP/1.1 client connection (used when `wrk` is not installed). It reconnects
/// after a response with `Connection: close` (nginx closes after `keepalive_requests`).
pub struct Http {
    addr: SocketAddr,
    stream: TcpStream,
    buf: Vec<u8>,
    filled: usize,
    closed: bool,
}

impl Http {
    pub async fn connect(addr: SocketAddr) -> io::Result<Http> {
        let stream = timed(TcpStream::connect(addr)).await?;
        stream.set_nodelay(true)?;
        Ok(Http {
            addr,
            stream,
            buf: vec![0; 4096],
            filled: 0,
            closed: false,
        })
    }

    /// One request and its whole response.
    pub async fn get(&mut self, request: &[u8]) -> io::Result<()> {
        if self.closed {
            *self = Http::connect(self.addr).await?;
        }
        timed(async {
            self.stream.write_all(request).await?;
            loop {
                let n = self.stream.read(&mut self.buf[self.filled..]).await?;
                if n == 0 {
                    return Err(err(format!(
                        "connection closed (after {:?})",
                        String::from_utf8_lossy(&self.buf[..self.filled])
                    )));
                }
                self.filled += n;
                let mut headers = [httparse::EMPTY_HEADER; 24];
                let mut resp = httparse::Response::new(&mut headers);
                if let httparse::Status::Complete(len) = resp
                    .parse(&self.buf[..self.filled])
                    .map_err(|e| err(e.to_string()))?
                {
                    if resp.code != Some(200) {
                        return Err(err(format!("status {:?}", resp.code)));
                    }
                    let body: usize = resp
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                        .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())
                        .ok_or_else(|| err("no content-length"))?;
                    self.closed = resp.headers.iter().any(|h| {
                        h.name.eq_ignore_ascii_case("connection")
                            && h.value.eq_ignore_ascii_case(b"close")
                    });
                    if self.filled >= len + body {
                        self.buf.copy_within(len + body..self.filled, 0);
                        self.filled -= len + body;
                        return Ok(());
                    }
                }
                if self.filled == self.buf.len() {
                    return Err(err("response too large"));
                }
            }
        })
        .await
    }
}
