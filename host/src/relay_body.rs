//! The body of an upstream response relayed from a raw exchange connection:
//! bytes already read past the head first, then the connection, framed by
//! `Content-Length`, `Transfer-Encoding: chunked` (decoded with
//! [`crate::chunk_scan`], as the direct path reads it; hyper re-frames it for
//! the client), or the end of the connection.

use bytes::{Bytes, BytesMut};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use std::collections::VecDeque;
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::body::ProxyBody;
use crate::chunk_scan::ChunkScan;
use crate::framing::Framing;

#[derive(Debug)]
enum State {
    Length(u64),
    Chunked(ChunkScan),
    Eof,
    Done,
}

struct Reader<S> {
    stream: S,
    buf: BytesMut,
    state: State,
    /// Chunk data scanned but not handed out yet.
    found: VecDeque<Bytes>,
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

    /// The next data frame, or `None` at the end of the body.
    async fn next(&mut self) -> io::Result<Option<Bytes>> {
        loop {
            if let Some(data) = self.found.pop_front() {
                return Ok(Some(data));
            }
            match &mut self.state {
                State::Done => return Ok(None),
                State::Length(0) => self.state = State::Done,
                State::Length(n) => {
                    let n = *n;
                    if self.buf.is_empty() {
                        self.fill_or_fail().await?;
                    }
                    let take = (self.buf.len() as u64).min(n) as usize;
                    self.state = State::Length(n - take as u64);
                    return Ok(Some(self.buf.split_to(take).freeze()));
                }
                State::Eof => {
                    if self.buf.is_empty() && !self.fill().await? {
                        self.state = State::Done;
                        continue;
                    }
                    return Ok(Some(self.buf.split().freeze()));
                }
                // Bytes past the body's end are not the body's.
                State::Chunked(scan) if scan.done() => self.state = State::Done,
                State::Chunked(_) if self.buf.is_empty() => self.fill_or_fail().await?,
                State::Chunked(scan) => {
                    let mut ranges = Vec::new();
                    let end = scan
                        .feed_data(&self.buf, |r| ranges.push(r))
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    let scanned = self.buf.split_to(end.unwrap_or(self.buf.len())).freeze();
                    self.found
                        .extend(ranges.into_iter().map(|r| scanned.slice(r)));
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
        Framing::Chunked => State::Chunked(ChunkScan::new()),
        Framing::Eof => State::Eof,
    };
    let reader = Reader {
        stream,
        buf: leftover,
        state,
        found: VecDeque::new(),
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
    async fn chunked_framing_is_read_as_the_direct_path_reads_it() {
        for bad in [
            &b"+5\r\nhello\r\n0\r\n\r\n"[..],
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"5\nhello",
        ] {
            assert!(
                collect(bad, b"", Framing::Chunked).await.is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
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
