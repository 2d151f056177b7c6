//! Following RFC 6455 frame boundaries in a byte stream without buffering
//! messages: data frames pass through as they arrive; control frames (at most
//! 131 bytes) are set aside whole so the tunnel can swallow its own pongs; the
//! tunnel knows when it is between frames, where it may inject a ping or a
//! close. Also builds the frames upgate itself sends.

/// How the bytes of the next segment of a stream are to be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    /// Part of a data frame (or an unusual control frame): forward as is.
    Pass(usize),
    /// Part of a control frame: add to the control buffer until [`Tracker::control_done`].
    Control(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Boundary,
    Header { control: bool },
    Payload { control: bool, remaining: u64 },
}

/// Tracks frame boundaries in one direction of a WebSocket stream.
#[derive(Debug)]
pub struct Tracker {
    state: State,
    head: [u8; 14],
    have: usize,
    control_done: bool,
}

impl Default for Tracker {
    fn default() -> Self {
        Tracker {
            state: State::Boundary,
            head: [0; 14],
            have: 0,
            control_done: false,
        }
    }
}

/// Header length for the first two header bytes.
fn header_len(b1: u8) -> usize {
    let ext = match b1 & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    2 + ext + if b1 & 0x80 != 0 { 4 } else { 0 }
}

fn payload_len(head: &[u8]) -> u64 {
    match head[1] & 0x7f {
        126 => u64::from(u16::from_be_bytes([head[2], head[3]])),
        127 => u64::from_be_bytes([
            head[2], head[3], head[4], head[5], head[6], head[7], head[8], head[9],
        ]),
        n => u64::from(n),
    }
}

impl Tracker {
    /// Whether the stream is between frames.
    pub fn at_boundary(&self) -> bool {
        self.state == State::Boundary
    }

    /// Whether the last segment completed a control frame (then cleared by the next call).
    pub fn control_done(&self) -> bool {
        self.control_done
    }

    /// Consumes a prefix of `data` (non-empty) and says what it is.
    pub fn feed(&mut self, data: &[u8]) -> Segment {
        self.control_done = false;
        match self.state {
            State::Boundary => {
                // Control opcodes have the high bit of the opcode nibble set.
                let control = data[0] & 0x08 != 0;
                self.state = State::Header { control };
                self.have = 0;
                self.feed(data)
            }
            State::Header { control } => {
                let need = if self.have < 2 {
                    2
                } else {
                    header_len(self.head[1])
                };
                let take = (need - self.have).min(data.len());
                self.head[self.have..self.have + take].copy_from_slice(&data[..take]);
                self.have += take;
                if self.have >= 2 && self.have == header_len(self.head[1]) {
                    let len = payload_len(&self.head);
                    // A control frame longer than 125 bytes is not valid; pass it on untouched.
                    let control = control && len <= 125;
                    self.state = State::Payload {
                        control,
                        remaining: len,
                    };
                    if len == 0 {
                        self.end_frame(control);
                    }
                }
                self.segment(control, take)
            }
            State::Payload { control, remaining } => {
                let take = remaining.min(data.len() as u64) as usize;
                let left = remaining - take as u64;
                self.state = State::Payload {
                    control,
                    remaining: left,
                };
                if left == 0 {
                    self.end_frame(control);
                }
                self.segment(control, take)
            }
        }
    }

    fn end_frame(&mut self, control: bool) {
        self.state = State::Boundary;
        self.control_done = control;
    }

    fn segment(&self, control: bool, n: usize) -> Segment {
        if control {
            Segment::Control(n)
        } else {
            Segment::Pass(n)
        }
    }
}

/// Opcode of a complete frame in `frame`.
pub fn opcode(frame: &[u8]) -> u8 {
    frame.first().map_or(0, |b| b & 0x0f)
}

/// The unmasked payload of a complete control frame.
pub fn control_payload(frame: &[u8]) -> Vec<u8> {
    if frame.len() < 2 {
        return Vec::new();
    }
    let masked = frame[1] & 0x80 != 0;
    let start = header_len(frame[1]);
    let mut payload = frame.get(start..).unwrap_or(&[]).to_vec();
    if masked && start >= 6 {
        let key = [
            frame[start - 4],
            frame[start - 3],
            frame[start - 2],
            frame[start - 1],
        ];
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
    }
    payload
}

/// Ping opcode.
pub const PING: u8 = 0x9;
/// Pong opcode.
pub const PONG: u8 = 0xA;
/// Close opcode.
pub const CLOSE: u8 = 0x8;

/// A control frame upgate sends: masked (with `mask`) toward the upstream, as a client must.
pub fn control_frame(opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let len = payload.len().min(125);
    let mut out = Vec::with_capacity(6 + len);
    out.push(0x80 | opcode);
    match mask {
        Some(key) => {
            out.push(0x80 | len as u8);
            out.extend_from_slice(&key);
            out.extend(
                payload[..len]
                    .iter()
                    .enumerate()
                    .map(|(i, b)| b ^ key[i % 4]),
            );
        }
        None => {
            out.push(len as u8);
            out.extend_from_slice(&payload[..len]);
        }
    }
    out
}

/// A close frame with `code` and `reason`.
pub fn close_frame(code: u16, reason: &str, mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(&reason.as_bytes()[..reason.len().min(123)]);
    control_frame(CLOSE, &payload, mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `data` in chunks of `chunk`; returns (passed bytes, control frames, boundary after each chunk).
    fn run(data: &[u8], chunk: usize) -> (Vec<u8>, Vec<Vec<u8>>) {
        let mut t = Tracker::default();
        let (mut passed, mut controls, mut ctl) = (Vec::new(), Vec::new(), Vec::new());
        for piece in data.chunks(chunk) {
            let mut rest = piece;
            while !rest.is_empty() {
                let seg = t.feed(rest);
                let n = match seg {
                    Segment::Pass(n) => {
                        passed.extend_from_slice(&rest[..n]);
                        n
                    }
                    Segment::Control(n) => {
                        ctl.extend_from_slice(&rest[..n]);
                        n
                    }
                };
                if t.control_done() {
                    controls.push(std::mem::take(&mut ctl));
                }
                rest = &rest[n..];
            }
        }
        assert!(t.at_boundary());
        (passed, controls)
    }

    fn data_frame(fin: bool, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        let m = if mask.is_some() { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => out.push(m | n as u8),
            n if n < 65536 => {
                out.push(m | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(m | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        if let Some(k) = mask {
            out.extend_from_slice(&k);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
        } else {
            out.extend_from_slice(payload);
        }
        out
    }

    #[test]
    fn splits_data_and_control_across_any_chunking() {
        let mask = Some([1, 2, 3, 4]);
        let mut stream = data_frame(false, 0x1, b"hel", mask);
        let ping = control_frame(PING, b"app", mask);
        stream.extend_from_slice(&ping);
        stream.extend(data_frame(true, 0x0, b"lo", mask));
        stream.extend(data_frame(true, 0x2, &vec![7u8; 70_000], None));
        stream.extend(data_frame(true, 0x1, &vec![b'x'; 300], mask));
        for chunk in [1, 2, 3, 7, 64, 100_000] {
            let (passed, controls) = run(&stream, chunk);
            assert_eq!(controls, vec![ping.clone()], "chunk {chunk}");
            assert_eq!(passed.len() + ping.len(), stream.len(), "chunk {chunk}");
            assert_eq!(control_payload(&controls[0]), b"app");
            assert_eq!(opcode(&controls[0]), PING);
        }
    }

    #[test]
    fn builds_frames() {
        assert_eq!(
            close_frame(1001, "going away", None)[..4],
            [0x88, 12, 0x03, 0xE9]
        );
        let masked = control_frame(PING, b"ka", Some([9, 9, 9, 9]));
        assert_eq!(masked[1], 0x80 | 2);
        assert_eq!(control_payload(&masked), b"ka");
    }
}
