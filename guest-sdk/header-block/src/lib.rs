//! The `header-block` of `wit/plugin.wit`: a head's header fields, in order, as
//! one byte buffer, so a head crosses the host/plugin boundary as one copy
//! instead of two allocations per field. The host and the guest SDK both use
//! this crate, so there is one encoder and one decoder.
//!
//! The layout is proxy-wasm's header-map serialization (what Envoy hands its
//! wasm filters), all integers little-endian `u32`:
//!
//! ```text
//! count
//! count × (name length, value length)
//! count × (name bytes, 0, value bytes, 0)
//! ```
//!
//! Names and values are raw bytes here (the lengths delimit them; the zero
//! bytes are part of the format, not terminators to search for). Whether a name
//! is a token or a value free of CR/LF is for the host to check when it writes
//! a head, not for this encoding.
//!
//! [`text`] holds the text of forwarding header values, which both sides write.

use std::fmt;

pub mod text;

/// Bytes of one length field.
const LEN: usize = 4;

/// Why a buffer is not a well-formed header block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(&'static str);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed header block: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

/// Encodes `fields` (name, value) in order.
pub fn encode<'a, I>(fields: I) -> Vec<u8>
where
    I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
    I::IntoIter: Clone + ExactSizeIterator,
{
    let fields = fields.into_iter();
    let data: usize = fields.clone().map(|(n, v)| n.len() + v.len() + 2).sum();
    let mut out = Vec::with_capacity(LEN + fields.len() * 2 * LEN + data);
    out.extend_from_slice(&len_field(fields.len()));
    for (name, value) in fields.clone() {
        out.extend_from_slice(&len_field(name.len()));
        out.extend_from_slice(&len_field(value.len()));
    }
    for (name, value) in fields {
        out.extend_from_slice(name);
        out.push(0);
        out.extend_from_slice(value);
        out.push(0);
    }
    out
}

fn len_field(n: usize) -> [u8; LEN] {
    // A head over 4 GiB cannot exist: heads are capped far below that.
    u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes()
}

/// Checks `block` and returns its fields, in order, as (name, value) slices.
pub fn decode(block: &[u8]) -> Result<Fields<'_>, DecodeError> {
    let count = read_len(block, 0).ok_or(DecodeError("shorter than its count"))?;
    let lens_end = count
        .checked_mul(2 * LEN)
        .and_then(|n| n.checked_add(LEN))
        .filter(|&end| end <= block.len())
        .ok_or(DecodeError("shorter than its length table"))?;
    let mut at = lens_end;
    for i in 0..count {
        for len in [LEN + 2 * LEN * i, 2 * LEN + 2 * LEN * i] {
            let n = read_len(block, len).ok_or(DecodeError("shorter than its length table"))?;
            at = at
                .checked_add(n)
                .filter(|&end| end < block.len())
                .ok_or(DecodeError("a field runs past the end"))?;
            if block[at] != 0 {
                return Err(DecodeError(
                    "a name or value is not followed by its zero byte",
                ));
            }
            at += 1;
        }
    }
    if at != block.len() {
        return Err(DecodeError("bytes left over after the last field"));
    }
    Ok(Fields {
        block,
        index: 0,
        count,
        data: lens_end,
    })
}

fn read_len(block: &[u8], at: usize) -> Option<usize> {
    let bytes = block.get(at..at + LEN)?;
    let mut le = [0; LEN];
    le.copy_from_slice(bytes);
    usize::try_from(u32::from_le_bytes(le)).ok()
}

/// The fields of a checked header block, as (name, value) in order.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    block: &'a [u8],
    index: usize,
    count: usize,
    /// Where the next name starts.
    data: usize,
}

impl<'a> Iterator for Fields<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.index == self.count {
            return None;
        }
        let lens = LEN + 2 * LEN * self.index;
        // `decode` checked every length and bound.
        let name_len = read_len(self.block, lens)?;
        let value_len = read_len(self.block, lens + LEN)?;
        let name = self.block.get(self.data..self.data + name_len)?;
        let value_at = self.data + name_len + 1;
        let value = self.block.get(value_at..value_at + value_len)?;
        self.data = value_at + value_len + 1;
        self.index += 1;
        Some((name, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.count - self.index;
        (left, Some(left))
    }
}

impl ExactSizeIterator for Fields<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(fields: &[(&[u8], &[u8])]) {
        let block = encode(fields.iter().copied());
        let back: Vec<_> = decode(&block).expect("decodes").collect();
        assert_eq!(back, fields);
    }

    #[test]
    fn round_trips_fields_in_order_with_exact_bytes() {
        round_trip(&[]);
        round_trip(&[(b"Host", b"example.com")]);
        round_trip(&[
            (b"Upgrade", b"websocket"),
            (b"X-Empty", b""),
            (b"x-lower", b"caf\xc3\xa9"),
            (b"Binary", b"a\0b\xff"),
            (b"Upgrade", b"second"),
        ]);
    }

    #[test]
    fn layout_is_proxy_wasm_header_map() {
        let block = encode([(&b"ab"[..], &b"c"[..])]);
        assert_eq!(block, b"\x01\0\0\0\x02\0\0\0\x01\0\0\0ab\0c\0");
    }

    #[test]
    fn refuses_malformed_blocks_with_a_reason() {
        let good = encode([(&b"Name"[..], &b"value"[..])]);
        let cases: [(&[u8], &str); 6] = [
            (b"", "shorter than its count"),
            (b"\x01\0\0\0", "shorter than its length table"),
            (&good[..good.len() - 1], "runs past the end"),
            (&[good.as_slice(), b"x"].concat(), "left over"),
            (b"\xff\xff\xff\xff", "shorter than its length table"),
            (b"\x01\0\0\0\x01\0\0\0\x00\0\0\0ax\0", "zero byte"),
        ];
        for (block, want) in cases {
            let err = decode(block).expect_err("malformed").to_string();
            assert!(err.contains(want), "{block:?}: {err}");
        }
    }

    #[test]
    fn huge_declared_lengths_do_not_overflow() {
        let block = b"\x01\0\0\0\xff\xff\xff\xff\xff\xff\xff\xff";
        assert!(decode(block).is_err());
    }
}
