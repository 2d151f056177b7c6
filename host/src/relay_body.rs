//! The body of an upstream response relayed from a raw exchange connection:
//! bytes already read past the head first, then the connection, framed by
//! `Content-Length`, `Transfer-Encoding: chunked` (decoded; hyper re-frames it
//! for the client), or the end of the connection.

use bytes::{Buf, Bytes, BytesMut};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::body::ProxyBody;
use crate::framing::Framing;

/// Longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 4096;

#[derive(Debug)]
enum State {
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    ChunkEnd,
    Trailers,
    Eof,
    Done,
}

struct Reader<S> {
    stream: S,
    buf: BytesMut,
    state: State,
}

impl<S: AsyncRead + Unpin> Reader<S> {
    /// Reads more into `buf`; `Ok(false)` at end of stream.
    async fn fill(&mut self) -> io::Result<bool> {
        self.buf.reserve(8192);
        Ok(self.stream.read_buf(&mut self.buf).await? > 0)
    }

    async fn fill_or_fail(&mut self) -> io::Result<()> {
        if self.fill().await? {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "upstream closed mid-body",
            ))
        }
    }

    async fn line(&mut self) -> io::Result<BytesMut> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf.split_to(i);
                self.buf.advance(2);
                return Ok(line);
            }
            if self.buf.len() > MAX_LINE {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "chunk line too long",
                ));
            }
            self.fill_or_fail().await?;
        }
    }

    async fn take(&mut self, max: u64) -> io::Result<Bytes> {
        if self.buf.is_empty() {
            self.fill_or_fail().await?;
        }
        let n = (self.buf.len() as u64).min(max) as usize;
        Ok(self.buf.split_to(n).freeze())
    }

    /// The next data frame, or `None` at the end of the body.
    async fn next(&mut self) -> io::Result<Option<Bytes>> {
        loop {
            match self.state {
                State::Done => return Ok(None),
                State::Length(0) => self.state = State::Done,
                State::Length(n) => {
                    let data = self.take(n).await?;
                    self.state = State::Length(n - data.len() as u64);
                    return Ok(Some(data));
                }
                State::Eof => {
                    if self.buf.is_empty() && !self.fill().await? {
                        self.state = State::Done;
                        continue;
                    }
                    return Ok(Some(self.buf.split().freeze()));
                }
                State::ChunkSize => {
                    let line = self.line().await?;
                    let size = line[..].split(|&b| b == b';').next().unwrap_or(&[]);
                    let size = std::str::from_utf8(size)
                        .ok()
                        .and_then(|s| u64::from_str_radix(s.trim(), 16).ok())
                        .ok_or_else(|| {
                            io::Error::new(io::ErrorKind::InvalidData, "bad chunk size")
                        })?;
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::ChunkData(size)
                    };
                }
                State::ChunkData(0) => self.state = State::ChunkEnd,
                State::ChunkData(n) => {
                    let data = self.take(n).await?;
                    self.state = State::ChunkData(n - data.len() as u64);
                    return Ok(Some(data));
                }
                State::ChunkEnd => {
                    if !self.line().await?.is_empty() {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "chunk not followed by CRLF",
                        ));
                    }
                    self.state = State::ChunkSize;
                }
                State::Trailers => {
                    if self.line().await?.is_empty() {
                        self.state = State::Done;
                    }
                }
            }
        }
    }
}

/// A streaming body over the exchange's connection and its leftover bytes.
pub fn relay_body<S>(stream: S, leftover: BytesMut, framing: Framing) -> ProxyBody
where
    S: AsyncRead + Unpin + Send + Sync + 'static,
{
    let state = match framing {
        Framing::Empty => State::Done,
        Framing::Length(n) => State::Length(n),
        Framing::Chunked => State::ChunkSize,
        Framing::Eof => State::Eof,
    };
    let reader = Reader {
        stream,
        buf: leftover,
        state,
    };
    let frames = futures_util::stream::unfold(reader, |mut r| async move {
        match r.next().await {
            Ok(Some(data)) => Some((Ok(Frame::data(data)), r)),
            Ok(None) => None,
            Err(e) => {
                r.state = State::Done;
                Some((Err(Box::new(e) as crate::body::BoxError), r))
            }
        }
    });
    StreamBody::new(frames).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn collect(
        wire_bytes: &'static [u8],
        leftover: &[u8],
        framing: Framing,
    ) -> Result<Vec<u8>, String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let server = tokio::spawn(async move {
            if let Ok((mut s, _)) = listener.accept().await {
                let _ = s.write_all(wire_bytes).await;
            }
        });
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let body = relay_body(stream, BytesMut::from(leftover), framing);
        let out = body
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes()
            .to_vec();
        let _ = server.await;
        Ok(out)
    }

    #[tokio::test]
    async fn chunked_is_decoded_across_leftover() {
        let out = collect(
            b"lo\r\n6;ext=1\r\n world\r\n0\r\nX-T: 1\r\n\r\nGARBAGE",
            b"5\r\nhel",
            Framing::Chunked,
        )
        .await;
        assert_eq!(out.unwrap(), b"hello world");
    }

    #[tokio::test]
    async fn length_stops_at_length() {
        assert_eq!(
            collect(b"defgh", b"abc", Framing::Length(5)).await.unwrap(),
            b"abcde"
        );
    }

    #[tokio::test]
    async fn eof_reads_to_close_and_short_length_fails() {
        assert_eq!(
            collect(b"def", b"abc", Framing::Eof).await.unwrap(),
            b"abcdef"
        );
        assert!(collect(b"de", b"abc", Framing::Length(10)).await.is_err());
    }
}
