//! The tunnel loop. For WebSocket, bytes are forwarded exactly as they
//! arrive, but the host follows frame boundaries both ways ([`crate::ws_frame`])
//! so that it can, between frames, ping a side that has gone quiet (masked
//! toward the upstream, unmasked toward the client), swallow the pongs that
//! answer it, close with 1001 toward the live side when a pong does not come
//! back, and send 1001 "going away" to both sides on drain or at the end of the
//! tunnel's lifetime. Application pings, fragmented messages and compressed
//! frames pass through untouched. Tunnels of other protocols run the same loop
//! with frame tracking off: a plain splice, closed without a close frame.

use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::task::Poll;
use std::time::Duration;
use tokio::time::Instant;

use crate::splice_forward::{forward, frame_to, send_due_pings, Dir, Live, Side, Writers};
use crate::tunnel_io::{End, Reader};

use crate::tunnel::{ClosedBy, TunnelLimits, TunnelStats, FIN_TIMEOUT};
use crate::tunnels::Ticket;
use crate::ws_frame::close_frame;

/// Longest wait for a frame boundary before closing without a close frame.
const BOUNDARY_GRACE: Duration = Duration::from_secs(1);

/// What the loop woke up for.
enum Event {
    /// A read on side 0 (client) or 1 (upstream).
    Read(usize, std::io::Result<crate::tunnel_io::Chunk>),
    /// The timer: time to look at the clock.
    Timer,
    /// The tunnel must go away.
    GoAway,
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
    // One timer for the tunnel's life, moved only when a deadline comes earlier
    // than it is set for: activity pushes deadlines later, and a timer firing
    // early just makes the loop look at the clock, so a busy tunnel touches the
    // timer wheel about once per idle period, not once per read.
    let timer = tokio::time::sleep_until(start + limits.idle_timeout);
    tokio::pin!(timer);
    // One wait for the go-away signal for the tunnel's life, not a new one per
    // read (each registered and unregistered a waiter under a lock). Polled only
    // until it completes: `going_away` is set then.
    let mut signals = ticket.signals();
    let go_away = ticket.going_away();
    tokio::pin!(go_away);
    // Its first poll registers it (and finds a signal sent before the tunnel).
    let mut first_look = true;
    let mut turn: u32 = 0;

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
        // The side whose bytes the last turn forwarded: its activity is
        // stamped with the next turn's clock reading (one reading per event).
        let mut forwarded: Option<usize> = None;
        loop {
            let now = Instant::now();
            if let Some(i) = forwarded.take() {
                live.last_rx[i] = now;
                last_activity = now;
            }
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
            if wake < timer.deadline() || timer.is_elapsed() {
                timer.as_mut().reset(wake);
            }
            turn = turn.wrapping_add(1);
            let eof = [dirs[0].eof, dirs[1].eof];
            let watching = going_away.is_none();
            // Every source that may have spent the task's wake-up is polled
            // before the loop waits (a timer that fired gave up the waker:
            // skipping it after a read lost wake-ups). The go-away signal is
            // polled exactly when it changed, which is known without its lock.
            let event = std::future::poll_fn(|cx| {
                // A change of the signal first: rare, and a tunnel whose
                // sockets are always readable must still hear it.
                if watching
                    && (std::mem::take(&mut first_look) || signals.changed())
                    && go_away.as_mut().poll(cx).is_ready()
                {
                    return Poll::Ready(Event::GoAway);
                }
                // The two sides take turns at being looked at first.
                for k in [turn & 1, !turn & 1] {
                    let i = k as usize;
                    if !eof[i] {
                        if let Poll::Ready(read) = readers[i].poll_read(cx, limits.buffer_size) {
                            return Poll::Ready(Event::Read(i, read));
                        }
                    }
                }
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Event::Timer),
                    Poll::Pending => Poll::Pending,
                }
            });
            let (side, read) = match event.await {
                Event::Read(0, read) => (Side::Client, read),
                Event::Read(_, read) => (Side::Upstream, read),
                Event::Timer => continue,
                Event::GoAway => {
                    going_away = Some((Instant::now(), "drain"));
                    continue;
                }
            };
            let i = side.idx();
            match read {
                Err(e) => break 'tunnel ClosedBy::Error(format!("{side:?} read: {e}")),
                Ok(chunk) if chunk.bytes().is_empty() => {
                    dirs[i].eof = true;
                    first_closer.get_or_insert(side);
                    // After close frames both ways nothing more may come: close
                    // both connections now (as nginx does) instead of half-closing
                    // and waiting for the other side's FIN.
                    let handshake_done = dirs.iter().all(|d| d.close_seen);
                    if !handshake_done {
                        io.shutdown(side.other()).await;
                    }
                    if handshake_done || dirs.iter().all(|d| d.eof) {
                        break 'tunnel if first_closer == Some(Side::Upstream) {
                            ClosedBy::Upstream
                        } else {
                            ClosedBy::Client
                        };
                    }
                    fin_deadline.get_or_insert(Instant::now() + FIN_TIMEOUT);
                }
                Ok(chunk) => {
                    forwarded = Some(i);
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
    let [client_w, up_w] = io.0;
    client_w.close();
    up_w.close();
    drop(readers);
    TunnelStats {
        duration: start.elapsed(),
        bytes_up: bytes[0],
        bytes_down: bytes[1],
        closed_by,
    }
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
