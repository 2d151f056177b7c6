//! Where a chunked body ends (RFC 9112 §7.1), and where its data lies, found
//! by scanning its bytes as they come: the direct path ([`crate::direct_http`])
//! passes a chunked response on undecoded and must know when it is complete to
//! put the upstream connection back in its pool; a relayed answer
//! ([`crate::relay_body`]) takes the data out. One parser, so both read a
//! chunked body the same way.

/// Longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 4096;

/// Scans one chunked body.
#[derive(Debug, Default)]
pub struct ChunkScan {
    state: State,
    /// Bytes of the current size or trailer line so far.
    line: usize,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a chunk-size line.
    #[default]
    Start,
    /// In a chunk-size line: hex digits so far, their value, past them (in
    /// whitespace or a chunk extension).
    Size {
        digits: u8,
        value: u64,
        ext: bool,
    },
    /// CR seen at the end of a size line.
    SizeLf(u64),
    /// Chunk data still to come.
    Data(u64),
    /// The CRLF after chunk data.
    DataCr,
    DataLf,
    /// In the trailer section; `empty`: nothing on this line yet.
    Trailer {
        empty: bool,
    },
    TrailerLf {
        empty: bool,
    },
    Done,
}

fn hex(b: u8) -> Option<u64> {
    (b as char).to_digit(16).map(u64::from)
}

impl ChunkScan {
    /// A scan at the start of a body.
    pub fn new() -> ChunkScan {
        ChunkScan::default()
    }

    /// Whether the body's end has been found.
    pub fn done(&self) -> bool {
        self.state == State::Done
    }

    /// Feeds the body's next bytes. `Ok(Some(n))`: the body ends after the
    /// first `n` of them; `Ok(None)`: they all belong to it and more must come.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Option<usize>, &'static str> {
        self.feed_data(bytes, |_| {})
    }

    /// [`ChunkScan::feed`], handing `data` each range of `bytes` that is chunk
    /// data, in order.
    pub fn feed_data(
        &mut self,
        bytes: &[u8],
        mut data: impl FnMut(std::ops::Range<usize>),
    ) -> Result<Option<usize>, &'static str> {
        let mut i = 0;
        while i < bytes.len() {
            if let State::Data(n) = self.state {
                let take = n.min((bytes.len() - i) as u64);
                data(i..i + take as usize);
                i += take as usize;
                self.state = if take == n {
                    State::DataCr
                } else {
                    State::Data(n - take)
                };
                continue;
            }
            if self.state == State::Done {
                return Ok(Some(i));
            }
            self.state = self.step(bytes[i])?;
            i += 1;
        }
        Ok((self.state == State::Done).then_some(i))
    }

    /// The state after one byte outside chunk data.
    fn step(&mut self, b: u8) -> Result<State, &'static str> {
        Ok(match self.state {
            State::Start => self.size(0, 0, false, b)?,
            State::Size { digits, value, ext } => self.size(digits, value, ext, b)?,
            State::SizeLf(value) => {
                if b != b'\n' {
                    return Err("chunk-size line not ended by CRLF");
                }
                self.line = 0;
                if value == 0 {
                    State::Trailer { empty: true }
                } else {
                    State::Data(value)
                }
            }
            State::DataCr if b == b'\r' => State::DataLf,
            State::DataLf if b == b'\n' => State::Start,
            State::DataCr | State::DataLf => return Err("chunk data not followed by CRLF"),
            State::Trailer { empty } => {
                self.line += 1;
                if self.line > MAX_LINE {
                    return Err("trailer line too long");
                }
                match b {
                    b'\r' => State::TrailerLf { empty },
                    b'\n' => return Err("bare LF in the trailer section"),
                    _ => State::Trailer { empty: false },
                }
            }
            State::TrailerLf { empty } => {
                if b != b'\n' {
                    return Err("trailer line not ended by CRLF");
                }
                self.line = 0;
                if empty {
                    State::Done
                } else {
                    State::Trailer { empty: true }
                }
            }
            State::Data(_) | State::Done => self.state,
        })
    }

    /// One byte of a chunk-size line.
    fn size(&mut self, digits: u8, value: u64, ext: bool, b: u8) -> Result<State, &'static str> {
        self.line += 1;
        if self.line > MAX_LINE {
            return Err("chunk-size line too long");
        }
        if b == b'\r' {
            if digits == 0 {
                return Err("chunk without a size");
            }
            return Ok(State::SizeLf(value));
        }
        if b == b'\n' {
            return Err("bare LF in a chunk-size line");
        }
        if ext {
            return Ok(State::Size { digits, value, ext });
        }
        if let Some(d) = hex(b) {
            if digits >= 15 {
                return Err("chunk size too large");
            }
            return Ok(State::Size {
                digits: digits + 1,
                value: value * 16 + d,
                ext: false,
            });
        }
        if digits > 0 && matches!(b, b';' | b' ' | b'\t') {
            return Ok(State::Size {
                digits,
                value,
                ext: true,
            });
        }
        Err("bad chunk size")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `body` in pieces of `step` bytes; the end offset found, if any.
    fn end_in_steps(body: &[u8], step: usize) -> Result<Option<usize>, &'static str> {
        let mut scan = ChunkScan::new();
        let mut at = 0;
        for piece in body.chunks(step) {
            if let Some(n) = scan.feed(piece)? {
                return Ok(Some(at + n));
            }
            at += piece.len();
        }
        Ok(None)
    }

    #[test]
    fn finds_the_end_whatever_the_pieces() {
        let body =
            b"5\r\nhello\r\n1a;name=x\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Sum: 1\r\n\r\nNEXT";
        let end = body.len() - 4;
        for step in 1..=body.len() {
            assert_eq!(end_in_steps(body, step), Ok(Some(end)), "pieces of {step}");
        }
    }

    #[test]
    fn an_empty_body_and_an_unfinished_one() {
        assert_eq!(end_in_steps(b"0\r\n\r\n", 64), Ok(Some(5)));
        assert_eq!(end_in_steps(b"0\r\n\r\n", 1), Ok(Some(5)));
        assert_eq!(end_in_steps(b"5\r\nhel", 64), Ok(None));
        assert_eq!(end_in_steps(b"5\r\nhello\r\n0\r\n", 64), Ok(None));
        assert_eq!(
            end_in_steps(b"A \r\n0123456789\r\n0\r\n\r\n", 3),
            Ok(Some(21))
        );
    }

    #[test]
    fn refuses_malformed_framing() {
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"5\nhello",
            b"5\r\nhelloX\r\n",
            b"10000000000000000\r\n",
            b"0\r\nX: 1\n",
            b";ext\r\n",
        ] {
            assert!(
                end_in_steps(bad, 64).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = format!("1;{}\r\n", "e".repeat(MAX_LINE));
        assert!(end_in_steps(long.as_bytes(), 64).is_err());
    }

    #[test]
    fn data_ranges_whatever_the_pieces() {
        let body = b"5\r\nhello\r\n1a;name=x\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\n\r\n";
        for step in 1..=body.len() {
            let mut scan = ChunkScan::new();
            let mut out = Vec::new();
            for piece in body.chunks(step) {
                scan.feed_data(piece, |r| out.extend_from_slice(&piece[r]))
                    .unwrap();
            }
            assert_eq!(out, b"helloabcdefghijklmnopqrstuvwxyz", "pieces of {step}");
        }
    }

    #[test]
    fn a_large_chunk_is_skipped_not_walked() {
        let mut scan = ChunkScan::new();
        assert_eq!(scan.feed(b"100000\r\n"), Ok(None));
        let data = vec![b'z'; 0x100000];
        assert_eq!(scan.feed(&data), Ok(None));
        assert_eq!(scan.feed(b"\r\n0\r\n\r\n"), Ok(Some(7)));
    }
}
