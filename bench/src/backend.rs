//! The echo backend every target forwards to (`upgate-bench backend --listen ADDR`), run as
//! its own process so that its CPU is counted neither with the client's nor the proxy's.
//!
//! One thread, hand-written and small: plain HTTP/1.1 `GET` (any path) answers `200 ok` with
//! keep-alive; a WebSocket upgrade gets its `101` and then every data frame is echoed back
//! (same opcode, unmasked), a ping gets a pong, and a close gets its close echoed, after which
//! the backend closes the connection (the server closes first, as RFC 6455 §7.1.1 says).

use anyhow::Context;
use base64::Engine;
use sha1::{Digest, Sha1};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const HTTP_OK: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok";
const WS_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// A connection starts with this much buffer; it grows only for frames that need more.
const START_BUF: usize = 4096;

pub fn main(listen: SocketAddr) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let socket = TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket
            .bind(listen)
            .with_context(|| format!("backend: bind {listen}"))?;
        let listener = socket.listen(4096)?;
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    // EMFILE and friends: keep serving the connections already open.
                    eprintln!("backend: accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            tokio::spawn(async move {
                let _ = serve(stream).await;
            });
        }
    })
}

fn accept_key(key: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(key);
    h.update(WS_GUID);
    base64::engine::general_purpose::STANDARD.encode(h.finalize())
}

fn header<'a>(headers: &[httparse::Header<'a>], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

async fn serve(mut stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = vec![0u8; START_BUF];
    let mut filled = 0;
    let mut out = Vec::with_capacity(512);
    loop {
        // Every complete request in the buffer (pipelining is allowed).
        let mut pos = 0;
        let mut close = false;
        let mut upgrade = None;
        while pos < filled {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            let n = match req.parse(&buf[pos..filled]) {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) => break,
                Err(_) => return Ok(()),
            };
            let wants_ws = header(req.headers, "upgrade")
                .is_some_and(|v| has_token(v, "websocket"))
                && header(req.headers, "connection").is_some_and(|v| has_token(v, "upgrade"));
            if wants_ws {
                let key = header(req.headers, "sec-websocket-key").unwrap_or_default();
                upgrade = Some(accept_key(key));
                pos += n;
                break;
            }
            let body: usize = header(req.headers, "content-length")
                .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse().ok())
                .unwrap_or(0);
            if body > filled - pos - n {
                break; // wait for the body (never happens with GETs)
            }
            close = req.version == Some(0)
                || header(req.headers, "connection").is_some_and(|v| has_token(v, "close"));
            out.extend_from_slice(HTTP_OK);
            pos += n + body;
            if close {
                break;
            }
        }
        buf.copy_within(pos..filled, 0);
        filled -= pos;
        if let Some(accept) = upgrade {
            out.extend_from_slice(
                format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                     Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                )
                .as_bytes(),
            );
            stream.write_all(&out).await?;
            out.clear();
            return echo(stream, buf, filled).await;
        }
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
        if close {
            return Ok(());
        }
        if filled == buf.len() {
            return Ok(()); // a head larger than we care for
        }
        let n = stream.read(&mut buf[filled..]).await?;
        if n == 0 {
            return Ok(());
        }
        filled += n;
    }
}

/// A frame header: (header length, payload length, first byte, masking key).
fn frame_header(b: &[u8]) -> Option<(usize, usize, u8, [u8; 4])> {
    if b.len() < 2 {
        return None;
    }
    let masked = b[1] & 0x80 != 0;
    let (mut hl, len) = match b[1] & 0x7f {
        126 => {
            if b.len() < 4 {
                return None;
            }
            (4, u16::from_be_bytes([b[2], b[3]]) as usize)
        }
        127 => {
            if b.len() < 10 {
                return None;
            }
            let mut l = [0u8; 8];
            l.copy_from_slice(&b[2..10]);
            (10, u64::from_be_bytes(l) as usize)
        }
        l => (2, l as usize),
    };
    let mut mask = [0u8; 4];
    if masked {
        if b.len() < hl + 4 {
            return None;
        }
        mask.copy_from_slice(&b[hl..hl + 4]);
        hl += 4;
    }
    Some((hl, len, b[0], mask))
}

fn push_frame(out: &mut Vec<u8>, first: u8, payload: &[u8]) {
    out.push(first);
    match payload.len() {
        l if l < 126 => out.push(l as u8),
        l if l <= 0xffff => {
            out.push(126);
            out.extend_from_slice(&(l as u16).to_be_bytes());
        }
        l => {
            out.push(127);
            out.extend_from_slice(&(l as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
}

async fn echo(mut stream: TcpStream, mut buf: Vec<u8>, mut filled: usize) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(START_BUF);
    loop {
        let mut pos = 0;
        let mut closing = false;
        while let Some((hl, len, first, mask)) = frame_header(&buf[pos..filled]) {
            let end = pos + hl + len;
            if end > filled {
                if end - pos > buf.len() {
                    // Grow so that the whole frame fits once the consumed part is moved out.
                    buf.resize(end - pos + START_BUF, 0);
                }
                break;
            }
            let payload = &mut buf[pos + hl..end];
            if mask != [0; 4] {
                for (i, b) in payload.iter_mut().enumerate() {
                    *b ^= mask[i & 3];
                }
            }
            match first & 0x0f {
                0x8 => {
                    push_frame(&mut out, 0x88, &payload[..payload.len().min(2)]);
                    closing = true;
                }
                0x9 => push_frame(&mut out, 0x8a, payload),
                0xa => {}
                _ => push_frame(&mut out, first, payload),
            }
            pos = end;
            if closing {
                break;
            }
        }
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
        }
        if closing {
            stream.shutdown().await?;
            // Drain until the client's FIN so the close completes cleanly.
            let mut sink = [0u8; 256];
            while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
            return Ok(());
        }
        buf.copy_within(pos..filled, 0);
        filled -= pos;
        let n = stream.read(&mut buf[filled..]).await?;
        if n == 0 {
            return Ok(());
        }
        filled += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_of_the_rfc_example() {
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn frame_headers() {
        assert_eq!(frame_header(&[0x82, 0x05]), Some((2, 5, 0x82, [0; 4])));
        assert_eq!(
            frame_header(&[0x82, 0xfe, 0x40, 0x00, 1, 2, 3, 4]),
            Some((8, 16384, 0x82, [1, 2, 3, 4]))
        );
        assert_eq!(frame_header(&[0x82, 0xfe, 0x40]), None);
    }
}
