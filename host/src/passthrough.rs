//! One connection on a pass-through listener: read the client's ClientHello
//! (bounded in bytes and time, see [`crate::tls::hello`]) without terminating
//! TLS, pick the upstream by its server name, connect, forward the bytes read
//! so far, then splice both ways as a tunnel does after a 101 ([`crate::splice`],
//! frames not followed): same idle timeout, and counted in [`crate::tunnels`]
//! so that drain closes it. upgate never holds the keys: the client's
//! handshake is with the upstream.

use bytes::BytesMut;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tracing::{info, warn};

use crate::config::{PassthroughConfig, DEFAULT_BUFFER_SIZE};
use crate::server::Shared;
use crate::splice::{self, Mode};
use crate::tls::hello;
use crate::tunnel::TunnelLimits;
use crate::tunnel_io::End;
use crate::upstream;

/// Time a client has to send its complete ClientHello.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// A fatal `unrecognized_name` alert (RFC 6066 §3), for a name with no upstream.
const UNRECOGNIZED_NAME: [u8; 7] = [21, 3, 3, 0, 2, 2, 112];

/// Serves one pass-through connection until its tunnel ends.
pub async fn serve(
    mut client: TcpStream,
    addr: SocketAddr,
    listener: SocketAddr,
    config: Arc<PassthroughConfig>,
    shared: Arc<Shared>,
) {
    let mut buf = BytesMut::with_capacity(2048);
    let sni = match tokio::time::timeout(HELLO_TIMEOUT, hello::read(&mut client, &mut buf)).await {
        Ok(Ok(sni)) => sni,
        Ok(Err(e)) => {
            info!(client = %addr, %listener, error = %e, "passthrough: no usable ClientHello; closed");
            return;
        }
        Err(_) => {
            let ms = HELLO_TIMEOUT.as_millis() as u64;
            info!(client = %addr, %listener, timeout_ms = ms, "passthrough: ClientHello timeout; closed");
            return;
        }
    };
    let sni_text = sni.as_deref().unwrap_or("-");
    let Some(name) = config.upstream_for(sni.as_deref()) else {
        info!(client = %addr, %listener, sni = sni_text, "passthrough: no upstream for this server name; closed");
        let _ = client.write_all(&UNRECOGNIZED_NAME).await;
        return;
    };
    let Some(up) = shared.snapshot().config.upstreams.get(name).cloned() else {
        warn!(client = %addr, %listener, sni = sni_text, upstream = name, "passthrough: upstream gone after a reload; closed");
        return;
    };
    let mut stream = match upstream::connect(&up).await {
        Ok((stream, _)) => stream,
        Err(e) => {
            warn!(client = %addr, %listener, sni = sni_text, error = %e, "passthrough: upstream connect failed; closed");
            return;
        }
    };
    // The hello goes first; written here so that its buffer is not held for the tunnel's life.
    let sent = async {
        stream.write_all(&buf).await?;
        stream.flush().await
    };
    if let Err(e) = sent.await {
        warn!(client = %addr, %listener, sni = sni_text, upstream = %up.name, error = %e, "passthrough: upstream write failed; closed");
        return;
    }
    let hello_len = buf.len() as u64;
    drop(buf);
    let upstream_end = End::from(stream);
    let limits = TunnelLimits {
        idle_timeout: config.idle_timeout,
        buffer_size: DEFAULT_BUFFER_SIZE,
        max_lifetime: None,
    };
    let mode = Mode {
        frames: false,
        keepalive: None,
    };
    let ticket = shared.tunnels.open(&format!("passthrough {listener}"));
    let stats = splice::run(
        End::Tcp(client),
        upstream_end,
        &[],
        &[],
        limits,
        mode,
        ticket,
    )
    .await;
    info!(
        client = %addr, %listener, sni = sni_text, upstream = %up.name,
        duration_ms = stats.duration.as_millis() as u64,
        bytes_up = stats.bytes_up + hello_len, bytes_down = stats.bytes_down,
        closed_by = %stats.closed_by, "passthrough closed"
    );
}
