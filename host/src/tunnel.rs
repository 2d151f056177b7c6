//! The plain tunnel after a `101 Switching Protocols` to a protocol other than
//! WebSocket (WebSocket tunnels follow frames: [`crate::ws_tunnel`]): bytes spliced both ways with a
//! fixed buffer per direction, half-close passed on, and the tunnel closed on
//! error, when both directions end, after `FIN_TIMEOUT` in half-closed state, or
//! after the route's idle timeout without a byte either way.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::tunnels::Ticket;

/// How long one direction may stay open after the other has finished.
pub const FIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Who ended the tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClosedBy {
    /// The client closed first (or both finished, client first).
    Client,
    /// The upstream closed first.
    Upstream,
    /// No byte either way for the idle timeout.
    IdleTimeout,
    /// One side stayed open too long after the other closed.
    FinTimeout,
    /// The tunnel reached its maximum lifetime.
    Lifetime,
    /// The proxy is draining (shutdown, or its route was removed).
    Drain,
    /// A side did not answer upgate's keepalive ping in time (which side).
    KeepaliveTimeout(&'static str),
    /// A read or write failed.
    Error(String),
}

impl std::fmt::Display for ClosedBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClosedBy::Client => f.write_str("client"),
            ClosedBy::Upstream => f.write_str("upstream"),
            ClosedBy::IdleTimeout => f.write_str("idle-timeout"),
            ClosedBy::FinTimeout => f.write_str("fin-timeout"),
            ClosedBy::Lifetime => f.write_str("lifetime"),
            ClosedBy::Drain => f.write_str("drain"),
            ClosedBy::KeepaliveTimeout(side) => write!(f, "keepalive-timeout ({side} silent)"),
            ClosedBy::Error(e) => write!(f, "error: {e}"),
        }
    }
}

/// What a finished tunnel reports.
#[derive(Debug)]
pub struct TunnelStats {
    /// How long it was open.
    pub duration: Duration,
    /// Bytes client → upstream.
    pub bytes_up: u64,
    /// Bytes upstream → client.
    pub bytes_down: u64,
    /// Why it ended.
    pub closed_by: ClosedBy,
}

/// Limits of one tunnel.
#[derive(Debug, Clone, Copy)]
pub struct TunnelLimits {
    /// Close after this long without traffic.
    pub idle_timeout: Duration,
    /// Size of each direction's buffer.
    pub buffer_size: usize,
    /// Close after this long whatever the traffic (`None`: no limit).
    pub max_lifetime: Option<Duration>,
}

struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        self.last_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
    fn idle(&self) -> Duration {
        let now = self.start.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// Copies `from` → `to` until EOF (then shuts `to`'s write side down); returns bytes copied.
async fn pump<R, W>(
    from: &mut R,
    to: &mut W,
    size: usize,
    activity: &Activity,
    counter: &AtomicU64,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; size];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            to.shutdown().await?;
            return Ok(());
        }
        activity.touch();
        to.write_all(&buf[..n]).await?;
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Splices `client` and `upstream` until the tunnel ends. `upstream_first` holds
/// bytes the upstream sent right after its 101: they reach the client before anything else.
pub async fn run<C, U>(
    client: C,
    upstream: U,
    upstream_first: &[u8],
    limits: TunnelLimits,
    mut ticket: Ticket,
) -> TunnelStats
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let activity = Activity {
        start: Instant::now(),
        last_ms: AtomicU64::new(0),
    };
    let (up, down) = (AtomicU64::new(0), AtomicU64::new(0));
    let (mut client_r, mut client_w) = tokio::io::split(client);
    let (mut up_r, mut up_w) = tokio::io::split(upstream);
    let closed_by = async {
        if !upstream_first.is_empty() {
            if let Err(e) = client_w.write_all(upstream_first).await {
                return ClosedBy::Error(format!("client write: {e}"));
            }
            down.fetch_add(upstream_first.len() as u64, Ordering::Relaxed);
        }
        let c2u = pump(&mut client_r, &mut up_w, limits.buffer_size, &activity, &up);
        let u2c = pump(
            &mut up_r,
            &mut client_w,
            limits.buffer_size,
            &activity,
            &down,
        );
        tokio::pin!(c2u, u2c);
        let idle_check = limits
            .idle_timeout
            .min(Duration::from_secs(1))
            .max(Duration::from_millis(10));
        let mut first: Option<ClosedBy> = None;
        let mut fin_deadline: Option<tokio::time::Instant> = None;
        let (mut c2u_done, mut u2c_done) = (false, false);
        let lifetime = async {
            match limits.max_lifetime {
                Some(l) => tokio::time::sleep(l).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(lifetime);
        loop {
            let fin = async {
                match fin_deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = &mut c2u, if !c2u_done => {
                    c2u_done = true;
                    if let Err(e) = r { return ClosedBy::Error(format!("client → upstream: {e}")); }
                    first.get_or_insert(ClosedBy::Client);
                }
                r = &mut u2c, if !u2c_done => {
                    u2c_done = true;
                    if let Err(e) = r { return ClosedBy::Error(format!("upstream → client: {e}")); }
                    first.get_or_insert(ClosedBy::Upstream);
                }
                _ = tokio::time::sleep(idle_check) => {
                    if activity.idle() >= limits.idle_timeout {
                        return ClosedBy::IdleTimeout;
                    }
                    continue;
                }
                _ = fin => return ClosedBy::FinTimeout,
                _ = &mut lifetime => return ClosedBy::Lifetime,
                _ = ticket.going_away() => return ClosedBy::Drain,
            }
            if c2u_done && u2c_done {
                return first.unwrap_or(ClosedBy::Client);
            }
            fin_deadline.get_or_insert(tokio::time::Instant::now() + FIN_TIMEOUT);
        }
    }
    .await;
    TunnelStats {
        duration: activity.start.elapsed(),
        bytes_up: up.load(Ordering::Relaxed),
        bytes_down: down.load(Ordering::Relaxed),
        closed_by,
    }
}
