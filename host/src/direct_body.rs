//! The body of a response served without hyper ([`crate::direct_http`]),
//! relayed as it comes: by length, in the upstream's own chunks (scanned for
//! their end by [`crate::chunk_scan`]), or, for a body that ends when the
//! upstream closes, re-chunked (or passed on until the close when the
//! upstream named another transfer coding). While it waits for the upstream,
//! it watches the client: one that leaves ends the relay, so a quiet streamed
//! body (long poll, server-sent events) does not hold the upstream connection.

use bytes::BytesMut;
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::chunk_scan::ChunkScan;
use crate::direct_head::ClientHead;
use crate::framing::Framing;
use crate::upstream::UpstreamStream;
use crate::wire::MAX_HEAD;

/// Bytes read from the upstream at a time.
const READ: usize = 16 * 1024;
/// Parts up to this many bytes together go out in one write.
const COALESCE: usize = 64 * 1024;

/// Both connections of the response being relayed.
pub struct Ends<'a, S> {
    /// The client.
    pub client: &'a mut S,
    /// What the client sent past its request (its next request, perhaps).
    pub pending: &'a mut BytesMut,
    /// The upstream.
    pub upstream: &'a mut UpstreamStream,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Ends<'_, S> {
    /// Reads the upstream's next bytes into `buf` (after what it holds); 0 at
    /// the upstream's end. The client leaving meanwhile is an error; what it
    /// sends is kept in `pending` (up to [`MAX_HEAD`], then it waits).
    async fn read(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        buf.reserve(READ);
        loop {
            tokio::select! {
                biased;
                read = self.upstream.read_buf(buf) => return read,
                got = self.client.read_buf(self.pending), if self.pending.len() < MAX_HEAD => {
                    if matches!(got, Ok(0) | Err(_)) {
                        return Err(io::Error::new(
                            io::ErrorKind::ConnectionAborted,
                            "client left mid-response",
                        ));
                    }
                }
            }
        }
    }

    /// Replaces `buf`'s contents with the upstream's next bytes; the body is
    /// cut short if there are none.
    async fn read_more(&mut self, buf: &mut BytesMut) -> io::Result<()> {
        buf.clear();
        if self.read(buf).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "upstream closed mid-body",
            ));
        }
        Ok(())
    }

    /// Sends the parts in order, in one write when they are small together
    /// (one system call per response, as hyper's `writev` was), then flushes
    /// (a TLS stream may hold a write).
    async fn send(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let several = parts.iter().filter(|p| !p.is_empty()).count() > 1;
        if several && total <= COALESCE {
            let mut one = Vec::with_capacity(total);
            for part in parts {
                one.extend_from_slice(part);
            }
            self.client.write_all(&one).await?;
        } else {
            for part in parts {
                if !part.is_empty() {
                    self.client.write_all(part).await?;
                }
            }
        }
        self.client.flush().await
    }
}

/// Sends the head and the body that follows it (`buf` holds what was read
/// past the head). `Ok(true)`: the body ended exactly where the upstream's
/// bytes did, so its connection can take another request.
pub async fn relay<S: AsyncRead + AsyncWrite + Unpin>(
    ends: &mut Ends<'_, S>,
    head: ClientHead,
    mut buf: BytesMut,
) -> io::Result<bool> {
    let mut out = head.bytes;
    let mut reusable = head.reusable;
    match head.framing {
        Framing::Empty => {
            reusable &= buf.is_empty();
            ends.send(&[&out]).await?;
        }
        Framing::Length(n) => {
            let mut left = n;
            reusable &= relay_until(ends, &out, buf, |piece| {
                let take = (piece.len() as u64).min(left) as usize;
                left -= take as u64;
                Ok((left == 0).then_some(take))
            })
            .await?;
        }
        Framing::Chunked => {
            let mut scan = ChunkScan::new();
            let bad = |e: &str| io::Error::new(io::ErrorKind::InvalidData, e.to_string());
            reusable &= relay_until(ends, &out, buf, |piece| scan.feed(piece).map_err(bad)).await?;
        }
        Framing::Eof if head.rechunk => {
            let mut tail = Vec::new();
            let mut done = false;
            while !done {
                if buf.is_empty() {
                    done = ends.read(&mut buf).await? == 0;
                }
                tail.clear();
                chunk(&mut out, &mut tail, &buf, done);
                ends.send(&[&out, &buf, &tail]).await?;
                out.clear();
                buf.clear();
            }
            reusable = false;
        }
        Framing::Eof => {
            ends.send(&[&out, &buf]).await?;
            loop {
                buf.clear();
                if ends.read(&mut buf).await? == 0 {
                    break;
                }
                ends.send(&[&buf]).await?;
            }
            reusable = false;
        }
    }
    Ok(reusable)
}

/// Sends `out`, then the body as it comes, piece by piece, until `end` says
/// where in a piece it ends. `Ok(true)`: it ended exactly where a piece did.
async fn relay_until<S: AsyncRead + AsyncWrite + Unpin>(
    ends: &mut Ends<'_, S>,
    mut out: &[u8],
    mut buf: BytesMut,
    mut end: impl FnMut(&[u8]) -> io::Result<Option<usize>>,
) -> io::Result<bool> {
    loop {
        let stop = end(&buf)?;
        let take = stop.unwrap_or(buf.len());
        ends.send(&[out, &buf[..take]]).await?;
        if stop.is_some() {
            return Ok(buf.len() == take);
        }
        out = &[];
        ends.read_more(&mut buf).await?;
    }
}

/// Frames `data` as one chunk: its size line goes at the end of `head`, its
/// CRLF (and, with `last`, the last chunk) into `tail`. No data: no chunk.
fn chunk(head: &mut Vec<u8>, tail: &mut Vec<u8>, data: &[u8], last: bool) {
    if !data.is_empty() {
        head.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        tail.extend_from_slice(b"\r\n");
    }
    if last {
        tail.extend_from_slice(b"0\r\n\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::chunk;

    #[test]
    fn chunks_frame_their_data_and_the_last_one_ends_the_body() {
        let (mut head, mut tail) = (b"H".to_vec(), Vec::new());
        chunk(&mut head, &mut tail, &[b'x'; 26], false);
        assert_eq!((&head[..], &tail[..]), (&b"H1a\r\n"[..], &b"\r\n"[..]));
        let (mut head, mut tail) = (Vec::new(), Vec::new());
        chunk(&mut head, &mut tail, b"", true);
        assert_eq!((&head[..], &tail[..]), (&b""[..], &b"0\r\n\r\n"[..]));
    }
}
