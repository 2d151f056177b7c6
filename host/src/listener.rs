//! Accepting connections: one loop per listener on each worker, and for each connection the
//! work its listener's kind calls for. Plain HTTP goes to [`crate::conn`]; TLS
//! is terminated here first (handshake bounded by `request_head_timeout`, SNI kept
//! for the plugin); pass-through goes to [`crate::passthrough`].
//!
//! A connection uses the listener settings of the snapshot current when it is
//! accepted, so a reload (SIGHUP) brings new certificates and pass-through
//! names to new connections; the address and kind stay as started.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::config::{ListenerConfig, ListenerKind};
use crate::plugin::PeerInfo;
use crate::server::Shared;
use crate::{conn, passthrough};

/// A listener as started: its place in the config, and its settings then.
struct Started {
    /// Index in `[[listeners]]`.
    index: usize,
    /// The bound address (the port resolved when the config said 0), for logs.
    bound: SocketAddr,
    /// Its settings at start.
    config: ListenerConfig,
}

/// Accepts on `listener` (`[[listeners]]` entry `index`, configured as
/// `config`) until `stopped` changes. Each worker runs its own loop on its own
/// socket, registered with its runtime ([`crate::workers::bind`]); `(index,
/// worker)` says which listener and which worker.
pub async fn accept_loop(
    listener: TcpListener,
    (index, worker): (usize, usize),
    config: ListenerConfig,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    let bound = listener.local_addr().unwrap_or(config.address);
    let started = Arc::new(Started {
        index,
        bound,
        config,
    });
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, client)) => {
                    if let Some(count) = shared.accepted.get(worker) {
                        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    tokio::spawn(handle(stream, client, started.clone(), shared.clone(), worker));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = stopped.changed() => return,
        }
    }
}

/// The listener's settings now: the current snapshot's entry at the same
/// index if it has the same address and kind, else those it started with.
fn current_kind(shared: &Shared, started: &Started) -> ListenerKind {
    let was = &started.config;
    let snapshot = shared.snapshot();
    snapshot
        .config
        .listeners
        .get(started.index)
        .filter(|l| l.address == was.address && l.kind.name() == was.kind.name())
        .map_or_else(|| was.kind.clone(), |l| l.kind.clone())
}

/// One accepted connection, as its own task. What serves it is boxed: the task
/// then stays small (the serving futures of all three kinds inline made it
/// 8.5 KB, copied whole when the task was created and twice more when it ended).
async fn handle(
    tcp: TcpStream,
    client: SocketAddr,
    started: Arc<Started>,
    shared: Arc<Shared>,
    worker: usize,
) {
    let accepted = Instant::now();
    let _ = tcp.set_nodelay(true);
    let head_timeout = shared.snapshot().config.request_head_timeout;
    let listener = started.bound;
    match current_kind(&shared, &started) {
        ListenerKind::Http => {
            let peer = PeerInfo {
                client_addr: client,
                scheme: "http",
                tls_server_name: None,
            };
            Box::pin(conn::serve(tcp, peer, accepted, shared, worker)).await;
        }
        ListenerKind::Tls(config) => {
            let handshake = Box::pin(TlsAcceptor::from(config).accept(tcp));
            let tls = match tokio::time::timeout_at(accepted + head_timeout, handshake).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::info!(%client, %listener, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    let ms = head_timeout.as_millis() as u64;
                    tracing::info!(%client, %listener, timeout_ms = ms, "TLS handshake timeout");
                    return;
                }
            };
            let peer = PeerInfo {
                client_addr: client,
                scheme: "https",
                tls_server_name: tls.get_ref().1.server_name().map(str::to_ascii_lowercase),
            };
            Box::pin(conn::serve(tls, peer, accepted, shared, worker)).await;
        }
        ListenerKind::Passthrough(config) => {
            Box::pin(passthrough::serve(tcp, client, listener, config, shared)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    /// The size of the future `f` returns.
    fn future_size<A, B, C, D, E, F>(_: impl Fn(A, B, C, D, E) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    #[test]
    fn a_connection_task_stays_small() {
        // 8.5 KB before its serving futures were boxed; 1.5 KB after.
        let size = future_size(super::handle);
        assert!(size <= 2048, "the per-connection task is {size} bytes");
    }
}
