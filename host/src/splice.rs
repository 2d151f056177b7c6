//! The tunnel loop. For WebSocket, bytes are forwarded exactly as they
//! arrive, but the host follows frame boundaries both ways ([`crate::ws_frame`])
//! so that it can, between frames, ping a side that has gone quiet (masked
//! toward the upstream, unmasked toward the client), swallow the pongs that
//! answer it, close with 1001 toward the live side when a pong does not come
//! back, and send 1001 "going away" to both sides on drain or at the end of the
//! tunnel's lifetime. Application pings, fragmented messages and compressed
//! frames pass through untouched. Tunnels of other protocols run the same loop
//! with frame tracking off: a plain splice, closed without a close frame.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;
use tokio::time::Instant;

use crate::tunnel_io::{End, Reader, Writer};

use crate::tunnel::{ClosedBy, TunnelLimits, TunnelStats, FIN_TIMEOUT};
use crate::tunnels::Ticket;
use crate::ws_frame::{
    close_frame, control_frame, control_payload, opcode, Segment, Tracker, PING, PONG,
};

/// Longest wait for a frame boundary before closing without a close frame.
const BOUNDARY_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Upstream,
}

impl Side {
    fn idx(self) -> usize {
        self as usize
    }
    fn other(self) -> Side {
        match self {
            Side::Client => Side::Upstream,
            Side::Upstream => Side::Client,
        }
    }
}

/// One direction: the stream read from `from`, written to `from.other()`.
#[derive(Default)]
struct Dir {
    tracker: Tracker,
    control: Vec<u8>,
    eof: bool,
    closed_sent: bool,
}

/// Keepalive and liveness state of both sides.
struct Live {
    last_rx: [Instant; 2],
    ping_out: [Option<(Vec<u8>, Instant)>; 2],
    want_ping: [bool; 2],
    pings: u64,
    seed: u64,
}

impl Live {
    fn mask(&mut self) -> [u8; 4] {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(self.seed ^ self.pings);
        (h.finish() as u32).to_ne_bytes()
    }
}

/// The write sides, by [`Side::idx`].
struct Writers([Writer; 2]);

impl Writers {
    /// Writes `bytes` to `side`.
    async fn write(&mut self, side: Side, bytes: &[u8]) -> std::io::Result<()> {
        self.0[side.idx()].write_all(bytes).await
    }

    async fn shutdown(&mut self, side: Side) {
        self.0[side.idx()].shutdown().await;
    }
}

/// A frame upgate sends to `to`: masked when it goes to the upstream.
fn frame_to(to: Side, live: &mut Live, build: impl FnOnce(Option<[u8; 4]>) -> Vec<u8>) -> Vec<u8> {
    let mask = (to == Side::Upstream).then(|| live.mask());
    build(mask)
}

/// How a tunnel treats its bytes.
#[derive(Debug, Clone, Copy)]
pub struct Mode {
    /// Follow WebSocket frames (keepalive, close frames); `false`: plain splice.
    pub frames: bool,
    /// Proxy keepalive `(interval, pong timeout)`; only with `frames`.
    pub keepalive: Option<(Duration, Duration)>,
}

/// Runs a tunnel between `client` and `upstream`. `client_first` holds bytes the
/// client sent past its request head, `upstream_first` bytes the upstream sent
/// past its 101: each is delivered before anything else from that side.
pub async fn run(
    client: End,
    upstream: End,
    client_first: &[u8],
    upstream_first: &[u8],
    limits: TunnelLimits,
    mode: Mode,
    mut ticket: Ticket,
) -> TunnelStats {
    let start = Instant::now();
    let keepalive = if mode.frames { mode.keepalive } else { None };
    let (client_r, client_w) = client.split();
    let (up_r, up_w) = upstream.split();
    let mut readers: [Reader; 2] = [client_r, up_r];
    let mut io = Writers([client_w, up_w]);
    let mut dirs = [Dir::default(), Dir::default()];
    let mut live = Live {
        last_rx: [start; 2],
        ping_out: [None, None],
        want_ping: [false; 2],
        pings: 0,
        seed: std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish(),
    };
    let mut bytes = [0u64; 2];
    if !mode.frames {
        // No close frames in a plain splice: drain and timeouts just close.
        for d in &mut dirs {
            d.closed_sent = true;
        }
    }
    let mut last_activity = start;
    let mut first_closer: Option<Side> = None;
    let mut going_away: Option<(Instant, &'static str)> = None;
    let mut fin_deadline: Option<Instant> = None;

    let closed_by = 'tunnel: {
        for (side, first) in [
            (Side::Upstream, upstream_first),
            (Side::Client, client_first),
        ] {
            if first.is_empty() {
                continue;
            }
            let i = side.idx();
            if let Err(e) =
                forward(&mut io, &mut dirs[i], &mut live, side, first, mode.frames).await
            {
                break 'tunnel ClosedBy::Error(format!("write to {:?}: {e}", side.other()));
            }
            bytes[i] += first.len() as u64;
        }
        loop {
            let now = Instant::now();
            // Time-based decisions.
            if going_away.is_none() {
                if now.duration_since(last_activity) >= limits.idle_timeout {
                    going_away = Some((now, "idle-timeout"));
                } else if limits
                    .max_lifetime
                    .is_some_and(|l| now.duration_since(start) >= l)
                {
                    going_away = Some((now, "lifetime"));
                }
            }
            if let Some((interval, timeout)) = keepalive {
                for side in [Side::Client, Side::Upstream] {
                    let i = side.idx();
                    match &live.ping_out[i] {
                        Some((_, sent)) if now.duration_since(*sent) >= timeout => {
                            let live_side = side.other();
                            if dirs[i].tracker.at_boundary() {
                                let close = frame_to(live_side, &mut live, |m| {
                                    close_frame(1001, "peer not responding", m)
                                });
                                let _ = io.write(live_side, &close).await;
                            }
                            break 'tunnel ClosedBy::KeepaliveTimeout(if side == Side::Client {
                                "client"
                            } else {
                                "upstream"
                            });
                        }
                        None if now.duration_since(live.last_rx[i]) >= interval && !dirs[i].eof => {
                            live.want_ping[i] = true
                        }
                        _ => {}
                    }
                }
                if let Err(e) = send_due_pings(&mut io, &dirs, &mut live).await {
                    break 'tunnel ClosedBy::Error(format!("keepalive write: {e}"));
                }
            }
            if let Some((since, why)) = going_away {
                for side in [Side::Client, Side::Upstream] {
                    // Close toward `side` goes into the stream other → side.
                    let into = side.other().idx();
                    if !dirs[into].closed_sent
                        && (dirs[into].tracker.at_boundary() || dirs[into].eof)
                    {
                        let close =
                            frame_to(side, &mut live, |m| close_frame(1001, "going away", m));
                        let _ = io.write(side, &close).await;
                        dirs[into].closed_sent = true;
                    }
                }
                if dirs.iter().all(|d| d.closed_sent) || now.duration_since(since) >= BOUNDARY_GRACE
                {
                    break 'tunnel match why {
                        "idle-timeout" => ClosedBy::IdleTimeout,
                        "lifetime" => ClosedBy::Lifetime,
                        _ => ClosedBy::Drain,
                    };
                }
            }
            if let Some(d) = fin_deadline {
                if now >= d {
                    break 'tunnel ClosedBy::FinTimeout;
                }
            }
            let wake = next_wake(
                now,
                last_activity,
                start,
                &limits,
                keepalive,
                &live,
                going_away.is_some(),
                fin_deadline,
            );
            let [client_r, up_r] = &mut readers;
            let (side, read) = tokio::select! {
                r = client_r.read(limits.buffer_size), if !dirs[0].eof => (Side::Client, r),
                r = up_r.read(limits.buffer_size), if !dirs[1].eof => (Side::Upstream, r),
                _ = tokio::time::sleep_until(wake) => continue,
                _ = ticket.going_away(), if going_away.is_none() => {
                    going_away = Some((Instant::now(), "drain"));
                    continue;
                }
            };
            let i = side.idx();
            match read {
                Err(e) => break 'tunnel ClosedBy::Error(format!("{side:?} read: {e}")),
                Ok(chunk) if chunk.bytes().is_empty() => {
                    dirs[i].eof = true;
                    io.shutdown(side.other()).await;
                    first_closer.get_or_insert(side);
                    if dirs.iter().all(|d| d.eof) {
                        break 'tunnel if first_closer == Some(Side::Upstream) {
                            ClosedBy::Upstream
                        } else {
                            ClosedBy::Client
                        };
                    }
                    fin_deadline.get_or_insert(Instant::now() + FIN_TIMEOUT);
                }
                Ok(chunk) => {
                    let now = Instant::now();
                    live.last_rx[i] = now;
                    last_activity = now;
                    bytes[i] += chunk.bytes().len() as u64;
                    if let Err(e) = forward(
                        &mut io,
                        &mut dirs[i],
                        &mut live,
                        side,
                        chunk.bytes(),
                        mode.frames,
                    )
                    .await
                    {
                        break 'tunnel ClosedBy::Error(format!("write to {:?}: {e}", side.other()));
                    }
                }
            }
        }
    };
    TunnelStats {
        duration: start.elapsed(),
        bytes_up: bytes[0],
        bytes_down: bytes[1],
        closed_by,
    }
}

/// Sends every wanted ping whose stream is between frames.
async fn send_due_pings(io: &mut Writers, dirs: &[Dir; 2], live: &mut Live) -> std::io::Result<()> {
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
async fn forward(
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

/// When the loop must next look at the clock.
#[allow(clippy::too_many_arguments)]
fn next_wake(
    now: Instant,
    last_activity: Instant,
    start: Instant,
    limits: &TunnelLimits,
    keepalive: Option<(Duration, Duration)>,
    live: &Live,
    going_away: bool,
    fin: Option<Instant>,
) -> Instant {
    if going_away {
        return now + Duration::from_millis(20);
    }
    let mut wake = last_activity + limits.idle_timeout;
    if let Some(l) = limits.max_lifetime {
        wake = wake.min(start + l);
    }
    if let Some(f) = fin {
        wake = wake.min(f);
    }
    if let Some((interval, timeout)) = keepalive {
        for i in 0..2 {
            wake = match &live.ping_out[i] {
                Some((_, sent)) => wake.min(*sent + timeout),
                None => wake.min(live.last_rx[i] + interval),
            };
            if live.want_ping[i] {
                wake = wake.min(now + Duration::from_millis(20));
            }
        }
    }
    wake.max(now + Duration::from_millis(1))
}
