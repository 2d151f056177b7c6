//! The frame-aware tunnel for WebSocket: bytes are forwarded exactly as they
//! arrive, but the host follows frame boundaries both ways ([`crate::ws_frame`])
//! so that it can, between frames, ping a side that has gone quiet (masked
//! toward the upstream, unmasked toward the client), swallow the pongs that
//! answer it, close with 1001 toward the live side when a pong does not come
//! back, and send 1001 "going away" to both sides on drain or at the end of the
//! tunnel's lifetime. Application pings, fragmented messages and compressed
//! frames pass through untouched.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::time::Instant;

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

struct Halves<C, U> {
    client_r: ReadHalf<C>,
    client_w: WriteHalf<C>,
    up_r: ReadHalf<U>,
    up_w: WriteHalf<U>,
}

impl<C: AsyncRead + AsyncWrite, U: AsyncRead + AsyncWrite> Halves<C, U> {
    /// Writes `bytes` to `side`.
    async fn write(&mut self, side: Side, bytes: &[u8]) -> std::io::Result<()> {
        match side {
            Side::Client => self.client_w.write_all(bytes).await,
            Side::Upstream => self.up_w.write_all(bytes).await,
        }
    }

    async fn shutdown(&mut self, side: Side) {
        let _ = match side {
            Side::Client => self.client_w.shutdown().await,
            Side::Upstream => self.up_w.shutdown().await,
        };
    }
}

/// A frame upgate sends to `to`: masked when it goes to the upstream.
fn frame_to(to: Side, live: &mut Live, build: impl FnOnce(Option<[u8; 4]>) -> Vec<u8>) -> Vec<u8> {
    let mask = (to == Side::Upstream).then(|| live.mask());
    build(mask)
}

/// Runs a WebSocket tunnel. `keepalive` is `(interval, pong timeout)`.
pub async fn run<C, U>(
    client: C,
    upstream: U,
    upstream_first: &[u8],
    limits: TunnelLimits,
    keepalive: Option<(Duration, Duration)>,
    mut ticket: Ticket,
) -> TunnelStats
where
    C: AsyncRead + AsyncWrite,
    U: AsyncRead + AsyncWrite,
{
    let start = Instant::now();
    let (client_r, client_w) = tokio::io::split(client);
    let (up_r, up_w) = tokio::io::split(upstream);
    let mut io = Halves {
        client_r,
        client_w,
        up_r,
        up_w,
    };
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
    let mut bufs = [vec![0u8; limits.buffer_size], vec![0u8; limits.buffer_size]];
    let mut last_activity = start;
    let mut first_closer: Option<Side> = None;
    let mut going_away: Option<(Instant, &'static str)> = None;
    let mut fin_deadline: Option<Instant> = None;

    let closed_by = 'tunnel: {
        if !upstream_first.is_empty() {
            if let Err(e) = forward(
                &mut io,
                &mut dirs[1],
                &mut live,
                Side::Upstream,
                upstream_first,
            )
            .await
            {
                break 'tunnel ClosedBy::Error(format!("client write: {e}"));
            }
            bytes[1] += upstream_first.len() as u64;
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
            let [cbuf, ubuf] = &mut bufs;
            let (side, read) = tokio::select! {
                r = io.client_r.read(cbuf), if !dirs[0].eof => (Side::Client, r),
                r = io.up_r.read(ubuf), if !dirs[1].eof => (Side::Upstream, r),
                _ = tokio::time::sleep_until(wake) => continue,
                _ = ticket.going_away(), if going_away.is_none() => {
                    going_away = Some((Instant::now(), "drain"));
                    continue;
                }
            };
            let i = side.idx();
            match read {
                Err(e) => break 'tunnel ClosedBy::Error(format!("{side:?} read: {e}")),
                Ok(0) => {
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
                Ok(n) => {
                    let now = Instant::now();
                    live.last_rx[i] = now;
                    last_activity = now;
                    bytes[i] += n as u64;
                    if let Err(e) =
                        forward(&mut io, &mut dirs[i], &mut live, side, &bufs[i][..n]).await
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
async fn send_due_pings<C: AsyncRead + AsyncWrite, U: AsyncRead + AsyncWrite>(
    io: &mut Halves<C, U>,
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
async fn forward<C: AsyncRead + AsyncWrite, U: AsyncRead + AsyncWrite>(
    io: &mut Halves<C, U>,
    dir: &mut Dir,
    live: &mut Live,
    from: Side,
    chunk: &[u8],
) -> std::io::Result<()> {
    let to = from.other();
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
