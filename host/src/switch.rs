//! A switch of protocols the upgrade path decided on ([`crate::upgrade::decide`]):
//! the 101 the client gets, and the tunnel that runs after it in a task of its
//! own. The client's connection comes either from hyper (an upgrade request on
//! a connection hyper serves) or straight from the socket (a connection whose
//! first request is the upgrade, served without hyper: [`crate::conn`]).

use http::Response;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use tracing::{info, warn};

use crate::body::ProxyBody;
use crate::exchange::ExchangeStream;
use crate::rewind::Rewind;
use crate::splice::{self, Mode};
use crate::tunnel::TunnelLimits;
use crate::tunnel_io::End;
use crate::tunnels::Ticket;

/// A decided switch: the 101 for the client, and its tunnel.
pub struct Switch {
    /// The 101 the client gets.
    pub response: Response<ProxyBody>,
    /// What the tunnel needs once the 101 is out.
    pub tunnel: Tunnel,
}

/// A tunnel about to start: the upstream's connection and what came with it.
pub struct Tunnel {
    pub(crate) upstream_end: ExchangeStream,
    /// Bytes the upstream sent past its 101.
    pub(crate) upstream_first: Vec<u8>,
    /// The upstream's name, for the log.
    pub(crate) upstream: String,
    pub(crate) limits: TunnelLimits,
    pub(crate) mode: Mode,
    pub(crate) ticket: Ticket,
    pub(crate) route: String,
    pub(crate) client: SocketAddr,
}

impl Tunnel {
    /// Runs the tunnel with the client's end; `client_first` holds the bytes
    /// the client sent past its request head.
    pub async fn run(self, client_end: End, client_first: Vec<u8>) {
        let upstream_end = match self.upstream_end {
            ExchangeStream::Net(s) => End::from(s),
            ExchangeStream::Memory(m) => End::Other(Box::new(m)),
        };
        let stats = splice::run(
            client_end,
            upstream_end,
            &client_first,
            &self.upstream_first,
            self.limits,
            self.mode,
            self.ticket,
        )
        .await;
        info!(
            route = %self.route, client = %self.client, upstream = %self.upstream,
            duration_ms = stats.duration.as_millis() as u64,
            bytes_up = stats.bytes_up, bytes_down = stats.bytes_down,
            closed_by = %stats.closed_by, "tunnel closed"
        );
    }

    /// Runs the tunnel once hyper hands over the client's connection.
    pub async fn run_after(self, on_upgrade: hyper::upgrade::OnUpgrade) {
        match on_upgrade.await {
            Ok(upgraded) => {
                let (end, first) = client_end(upgraded);
                self.run(end, first).await;
            }
            Err(e) => {
                warn!(route = %self.route, client = %self.client, error = %e, "client upgrade failed");
            }
        }
    }
}

/// The 101's head as bytes, for a connection upgate answers without hyper:
/// status line, then the headers as hyper would write them (names lower case).
pub fn head_bytes(response: &Response<ProxyBody>) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\n");
    for (name, value) in response.headers() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The client's end of the tunnel and the bytes it sent past its head. A plain
/// TCP connection is taken back out of hyper so the tunnel can read it by
/// readiness (no buffer held while idle); anything else stays wrapped.
fn client_end(upgraded: hyper::upgrade::Upgraded) -> (End, Vec<u8>) {
    match upgraded.downcast::<TokioIo<Rewind<tokio::net::TcpStream>>>() {
        Ok(parts) => {
            let (prefix, stream) = parts.io.into_inner().into_parts();
            let mut first = parts.read_buf.to_vec();
            first.extend_from_slice(&prefix);
            (End::Tcp(stream), first)
        }
        Err(upgraded) => {
            tracing::debug!(
                "client connection is not plain TCP: tunnel reads it with its own buffer"
            );
            (End::Other(Box::new(TokioIo::new(upgraded))), Vec::new())
        }
    }
}
