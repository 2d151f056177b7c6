//! Connecting to an upstream: each `host:port` address in order, each with the
//! upstream's connect timeout, until one accepts. Used by the plain proxy's
//! connection pool and by plugin exchanges alike.

use std::time::Duration;
use tokio::net::TcpStream;

use crate::config::UpstreamConfig;

/// No address of an upstream accepted a connection.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// Every address failed; each reason in order.
    #[error("upstream `{upstream}`: {}", .attempts.join("; "))]
    AllFailed {
        /// The upstream's name.
        upstream: String,
        /// `address: reason` per attempt.
        attempts: Vec<String>,
    },
    /// Every address failed and at least one by timing out.
    #[error("upstream `{upstream}`: connect timed out ({})", .attempts.join("; "))]
    TimedOut {
        /// The upstream's name.
        upstream: String,
        /// `address: reason` per attempt.
        attempts: Vec<String>,
    },
}

/// Connects to the first address of `upstream` that accepts; returns the stream and the address used.
pub async fn connect(upstream: &UpstreamConfig) -> Result<(TcpStream, String), ConnectError> {
    let mut attempts = Vec::new();
    let mut timed_out = false;
    for addr in &upstream.addresses {
        match tokio::time::timeout(upstream.connect_timeout, TcpStream::connect(addr.as_str()))
            .await
        {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok((stream, addr.clone()));
            }
            Ok(Err(e)) => attempts.push(format!("{addr}: {e}")),
            Err(_) => {
                timed_out = true;
                attempts.push(format!(
                    "{addr}: no answer in {}",
                    fmt(upstream.connect_timeout)
                ));
            }
        }
    }
    let upstream = upstream.name.clone();
    Err(if timed_out {
        ConnectError::TimedOut { upstream, attempts }
    } else {
        ConnectError::AllFailed { upstream, attempts }
    })
}

fn fmt(d: Duration) -> String {
    crate::config::duration::format(d)
}
