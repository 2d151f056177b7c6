//! The start of a TLS connection, read but not terminated: enough of the
//! client's ClientHello to learn the server name it asks for (SNI), for
//! pass-through listeners. Records are reassembled (a hello may span several),
//! every length is checked against what holds it, and at most [`MAX_HELLO`]
//! bytes are read; anything else is refused.

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The most bytes read looking for a complete ClientHello.
pub const MAX_HELLO: usize = 16 * 1024;

/// Largest TLS record payload (RFC 8446 §5.1).
const MAX_RECORD: usize = 16 * 1024;
/// Record content type of handshake messages.
const HANDSHAKE: u8 = 22;
/// Handshake message type of a ClientHello.
const CLIENT_HELLO: u8 = 1;
/// Extension type of `server_name` (RFC 6066 §3).
const SERVER_NAME: u16 = 0;

/// Why the bytes are not a ClientHello upgate can route.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum HelloError {
    /// The first record is not a TLS handshake (plain HTTP, say).
    #[error("not TLS: the first byte is {0:#04x}, not a handshake record")]
    NotTls(u8),
    /// A length or field does not fit.
    #[error("malformed ClientHello: {0}")]
    Malformed(&'static str),
    /// No complete hello within [`MAX_HELLO`] bytes.
    #[error("no complete ClientHello in the first {MAX_HELLO} bytes")]
    TooLarge,
    /// The client closed the connection first.
    #[error("the client closed before a complete ClientHello")]
    Closed,
    /// Reading failed.
    #[error("read failed: {0}")]
    Io(String),
}

/// What the bytes so far hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A hello has started; more bytes are needed.
    Partial,
    /// A complete hello, and the host name it asks for (lower case), if any.
    Complete(Option<String>),
}

/// Reads from `stream` into `buf` until `buf` holds a complete ClientHello;
/// returns its server name. Every byte read stays in `buf`, to be forwarded.
pub async fn read<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
) -> Result<Option<String>, HelloError> {
    loop {
        if let Parsed::Complete(sni) = parse(buf)? {
            return Ok(sni);
        }
        let room = (MAX_HELLO - buf.len()).min(4096);
        buf.reserve(room);
        let n = (&mut *stream)
            .take(room as u64)
            .read_buf(buf)
            .await
            .map_err(|e| HelloError::Io(e.to_string()))?;
        if n == 0 {
            return Err(HelloError::Closed);
        }
    }
}

/// Parses the start of a connection.
pub fn parse(buf: &[u8]) -> Result<Parsed, HelloError> {
    match buf.first() {
        None => return Ok(Parsed::Partial),
        Some(&b) if b != HANDSHAKE => return Err(HelloError::NotTls(b)),
        Some(_) => {}
    }
    // The handshake message, reassembled from the records' payloads.
    let mut message: Vec<u8> = Vec::new();
    let mut rest = buf;
    while rest.len() >= 5 {
        if rest[0] != HANDSHAKE {
            return Err(HelloError::Malformed(
                "a non-handshake record inside the hello",
            ));
        }
        if rest[1] != 3 {
            return Err(HelloError::Malformed("record version is not 3.x"));
        }
        let len = u16::from_be_bytes([rest[3], rest[4]]) as usize;
        if len == 0 || len > MAX_RECORD {
            return Err(HelloError::Malformed("record length out of range"));
        }
        let Some(payload) = rest.get(5..5 + len) else {
            break;
        };
        message.extend_from_slice(payload);
        rest = &rest[5 + len..];
        if message.len() < 4 {
            continue;
        }
        if message[0] != CLIENT_HELLO {
            return Err(HelloError::Malformed(
                "the first handshake message is not a ClientHello",
            ));
        }
        let body_len = u32::from_be_bytes([0, message[1], message[2], message[3]]) as usize;
        if body_len > MAX_HELLO {
            return Err(HelloError::TooLarge);
        }
        if let Some(body) = message.get(4..4 + body_len) {
            return server_name(body).map(Parsed::Complete);
        }
    }
    if buf.len() >= MAX_HELLO {
        return Err(HelloError::TooLarge);
    }
    Ok(Parsed::Partial)
}

/// A cursor over a message, failing with `Malformed` on a short read.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], HelloError> {
        if self.0.len() < n {
            return Err(HelloError::Malformed(what));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, HelloError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, HelloError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    /// A field with a one-byte length.
    fn vec8(&mut self, what: &'static str) -> Result<&'a [u8], HelloError> {
        let n = self.u8(what)? as usize;
        self.take(n, what)
    }
    /// A field with a two-byte length.
    fn vec16(&mut self, what: &'static str) -> Result<&'a [u8], HelloError> {
        let n = self.u16(what)? as usize;
        self.take(n, what)
    }
}

/// The host name of a ClientHello body (RFC 8446 §4.1.2, RFC 6066 §3).
fn server_name(body: &[u8]) -> Result<Option<String>, HelloError> {
    let mut r = Reader(body);
    if r.take(2, "legacy version")?[0] != 3 {
        return Err(HelloError::Malformed("client version is not 3.x"));
    }
    r.take(32, "random")?;
    if r.vec8("session id")?.len() > 32 {
        return Err(HelloError::Malformed("session id longer than 32 bytes"));
    }
    let suites = r.vec16("cipher suites")?;
    if suites.is_empty() || suites.len() % 2 != 0 {
        return Err(HelloError::Malformed("cipher suites"));
    }
    if r.vec8("compression methods")?.is_empty() {
        return Err(HelloError::Malformed("no compression method"));
    }
    if r.0.is_empty() {
        return Ok(None); // No extensions at all (TLS 1.2 allows that).
    }
    let mut exts = Reader(r.vec16("extensions")?);
    if !r.0.is_empty() {
        return Err(HelloError::Malformed("bytes after the extensions"));
    }
    let mut found = None;
    while !exts.0.is_empty() {
        let kind = exts.u16("extension type")?;
        let data = exts.vec16("extension data")?;
        if kind != SERVER_NAME {
            continue;
        }
        if found.is_some() {
            return Err(HelloError::Malformed("two server_name extensions"));
        }
        found = Some(host_name(data)?);
    }
    Ok(found.flatten())
}

/// The `host_name` entry of a `server_name` extension.
fn host_name(data: &[u8]) -> Result<Option<String>, HelloError> {
    let mut ext = Reader(data);
    let mut list = Reader(ext.vec16("server name list")?);
    if !ext.0.is_empty() {
        return Err(HelloError::Malformed("bytes after the server name list"));
    }
    let mut host = None;
    while !list.0.is_empty() {
        let kind = list.u8("server name type")?;
        let name = list.vec16("server name")?;
        if kind != 0 {
            continue; // Not a host_name: no other kind is defined.
        }
        if host.is_some() {
            return Err(HelloError::Malformed("two host names"));
        }
        let valid = !name.is_empty()
            && name
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if !valid {
            return Err(HelloError::Malformed("the server name is not a DNS name"));
        }
        host = Some(String::from_utf8_lossy(name).to_ascii_lowercase());
    }
    Ok(host)
}

#[cfg(test)]
#[path = "hello_tests.rs"]
mod tests;
