//! What a tunnel is given and what it reports: its limits, why it closed, its
//! byte counts. The loop itself is [`crate::splice`]; its ends, [`crate::tunnel_io`].

use std::time::Duration;

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
