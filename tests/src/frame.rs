//! WebSocket frames (RFC 6455 §5.2) by hand, for byte-level tests: a client's
//! masked frames, an origin's unmasked ones, and a parser for either.

/// Opcode of a continuation frame.
pub const CONTINUATION: u8 = 0x0;
/// Opcode of a text frame.
pub const TEXT: u8 = 0x1;
/// Opcode of a binary frame.
pub const BINARY: u8 = 0x2;
/// Opcode of a close frame.
pub const CLOSE: u8 = 0x8;
/// Opcode of a ping frame.
pub const PING: u8 = 0x9;
/// Opcode of a pong frame.
pub const PONG: u8 = 0xA;

/// The masking key every client frame of these tests uses.
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// One parsed frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The FIN bit.
    pub fin: bool,
    /// The opcode (low four bits of the first byte).
    pub opcode: u8,
    /// The payload, unmasked.
    pub payload: Vec<u8>,
}

impl Frame {
    /// The payload as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}

fn encode(opcode: u8, fin: bool, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(if fin { 0x80 } else { 0 } | (opcode & 0x0f));
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// A client frame (masked, as RFC 6455 requires of clients).
pub fn masked(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    encode(opcode, fin, payload, Some(MASK))
}

/// A server frame (unmasked).
pub fn unmasked(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    encode(opcode, fin, payload, None)
}

/// Parses one frame from the start of `buf`: the frame and the bytes it used,
/// or `None` if `buf` does not hold a whole frame yet.
pub fn parse(buf: &[u8]) -> Option<(Frame, usize)> {
    let (&b0, &b1) = (buf.first()?, buf.get(1)?);
    let mut at = 2;
    let len = match b1 & 0x7f {
        126 => {
            let n = u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?) as usize;
            at = 4;
            n
        }
        127 => {
            let n = u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?) as usize;
            at = 10;
            n
        }
        n => n as usize,
    };
    let mask = if b1 & 0x80 != 0 {
        let key: [u8; 4] = buf.get(at..at + 4)?.try_into().ok()?;
        at += 4;
        Some(key)
    } else {
        None
    };
    let data = buf.get(at..at.checked_add(len)?)?;
    let payload = match mask {
        Some(key) => data
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i % 4])
            .collect(),
        None => data.to_vec(),
    };
    let frame = Frame {
        fin: b0 & 0x80 != 0,
        opcode: b0 & 0x0f,
        payload,
    };
    Some((frame, at + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_length_form() {
        for len in [0, 125, 126, 65_535, 65_536] {
            let payload = vec![7u8; len];
            for bytes in [
                masked(BINARY, true, &payload),
                unmasked(TEXT, false, &payload),
            ] {
                let (frame, used) = parse(&bytes).unwrap();
                assert_eq!(used, bytes.len());
                assert_eq!(frame.payload, payload);
                assert!(parse(&bytes[..bytes.len() - 1]).is_none());
            }
        }
    }
}
