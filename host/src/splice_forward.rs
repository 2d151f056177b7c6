//! What the tunnel loop ([`crate::splice`]) does with the bytes of one read:
//! the state of each direction and side, and forwarding a chunk with frame
//! awareness (data as it comes, control frames whole, upgate's own pongs
//! swallowed, pings injected at frame boundaries).

use std::hash::{BuildHasher, Hasher};
use tokio::time::Instant;

use crate::tunnel_io::Writer;
use crate::ws_frame::{
    control_frame, control_payload, opcode, Segment, Tracker, CLOSE, PING, PONG,
};

/// One side of a tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The client's connection.
    Client,
    /// The upstream's connection.
    Upstream,
}

impl Side {
    /// Index into per-side arrays.
    pub(crate) fn idx(self) -> usize {
        self as usize
    }
    /// The opposite side.
    pub(crate) fn other(self) -> Side {
        match self {
            Side::Client => Side::Upstream,
            Side::Upstream => Side::Client,
        }
    }
}

/// One direction: the stream read from `from`, written to `from.other()`.
#[derive(Default)]
pub(crate) struct Dir {
    /// Frame boundaries of this stream.
    pub(crate) tracker: Tracker,
    /// The control frame being collected.
    control: Vec<u8>,
    /// The reading side sent FIN.
    pub(crate) eof: bool,
    /// upgate sent a close frame into this stream's destination.
    pub(crate) closed_sent: bool,
    /// A close frame went through in this direction.
    pub(crate) close_seen: bool,
}

/// Keepalive and liveness state of both sides.
pub(crate) struct Live {
    /// When each side last sent something.
    pub(crate) last_rx: [Instant; 2],
    /// upgate's unanswered ping to each side: its payload and when it went.
    pub(crate) ping_out: [Option<(Vec<u8>, Instant)>; 2],
    /// A ping is due to each side at its next frame boundary.
    pub(crate) want_ping: [bool; 2],
    /// Pings sent so far (payload counter).
    pub(crate) pings: u64,
    /// Seeds masking keys.
    pub(crate) seed: u64,
}

impl Live {
    /// A fresh masking key.
    fn mask(&mut self) -> [u8; 4] {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(self.seed ^ self.pings);
        (h.finish() as u32).to_ne_bytes()
    }
}

/// The write sides, by [`Side::idx`].
pub(crate) struct Writers(pub(crate) [Writer; 2]);

impl Writers {
    /// Writes `bytes` to `side`.
    pub(crate) async fn write(&mut self, side: Side, bytes: &[u8]) -> std::io::Result<()> {
        self.0[side.idx()].write_all(bytes).await
    }

    /// Half-closes toward `side`.
    pub(crate) async fn shutdown(&mut self, side: Side) {
        self.0[side.idx()].shutdown().await;
    }
}

/// A frame upgate sends to `to`: masked when it goes to the upstream.
pub(crate) fn frame_to(
    to: Side,
    live: &mut Live,
    build: impl FnOnce(Option<[u8; 4]>) -> Vec<u8>,
) -> Vec<u8> {
    let mask = (to == Side::Upstream).then(|| live.mask());
    build(mask)
}

/// Sends every wanted ping whose stream is between frames.
pub(crate) async fn send_due_pings(
    io: &mut Writers,
    dirs: &[Dir; 2],
    live: &mut Live,
) -> std::io::Result<()> {
    for side in [Side::Client, Side::Upstream] {
        let i = side.idx();
        if live.want_ping[i] && dirs[side.other().idx()].tracker.at_boundary() {
            live.pings += 1;
            let token = format!("upgate-ka-{}", live.pings).into_bytes();
            let ping = frame_to(side, live, |m| control_frame(PING, &token, m));
            io.write(side, &ping).await?;
            live.want_ping[i] = false;
            live.ping_out[i] = Some((token, Instant::now()));
        }
    }
    Ok(())
}

/// Forwards `chunk`, read from `from`, to the other side: data as it comes,
/// control frames whole, the pong answering upgate's own ping swallowed, and a
/// wanted ping injected at the first frame boundary.
pub(crate) async fn forward(
    io: &mut Writers,
    dir: &mut Dir,
    live: &mut Live,
    from: Side,
    chunk: &[u8],
    frames: bool,
) -> std::io::Result<()> {
    let to = from.other();
    if !frames {
        return io.write(to, chunk).await;
    }
    let mut rest = chunk;
    let mut pass_start = 0usize;
    let mut pos = 0usize;
    while !rest.is_empty() {
        let seg = dir.tracker.feed(rest);
        match seg {
            Segment::Pass(n) => {
                pos += n;
                rest = &rest[n..];
            }
            Segment::Control(n) => {
                io.write(to, &chunk[pass_start..pos]).await?;
                dir.control.extend_from_slice(&rest[..n]);
                pos += n;
                pass_start = pos;
                rest = &rest[n..];
                if dir.tracker.control_done() {
                    let frame = std::mem::take(&mut dir.control);
                    let ours = opcode(&frame) == PONG
                        && live.ping_out[from.idx()]
                            .as_ref()
                            .is_some_and(|(token, _)| control_payload(&frame) == *token);
                    if ours {
                        live.ping_out[from.idx()] = None;
                    } else {
                        dir.close_seen |= opcode(&frame) == CLOSE;
                        io.write(to, &frame).await?;
                    }
                }
            }
        }
        if dir.tracker.at_boundary() && live.want_ping[to.idx()] {
            io.write(to, &chunk[pass_start..pos]).await?;
            pass_start = pos;
            live.pings += 1;
            let token = format!("upgate-ka-{}", live.pings).into_bytes();
            let ping = frame_to(to, live, |m| control_frame(PING, &token, m));
            io.write(to, &ping).await?;
            live.want_ping[to.idx()] = false;
            live.ping_out[to.idx()] = Some((token, Instant::now()));
        }
    }
    if pass_start < pos {
        io.write(to, &chunk[pass_start..pos]).await?;
    }
    Ok(())
}
