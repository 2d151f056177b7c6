//! Accepting connections: one loop per listener, and for each connection the
//! work its listener's kind calls for. Plain HTTP goes to [`crate::conn`]; TLS
//! is terminated here first (handshake bounded by the head timeout, SNI kept
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

/// Accepts on `listener` (configured as `config`) until `stopped` changes.
pub async fn accept_loop(
    listener: TcpListener,
    config: ListenerConfig,
    shared: Arc<Shared>,
    mut stopped: watch::Receiver<bool>,
) {
    let config = Arc::new(config);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, client)) => {
                    tokio::spawn(handle(stream, client, config.clone(), shared.clone()));
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

/// The listener's settings now: the current snapshot's for the same address
/// and kind, else those it started with.
fn current_kind(shared: &Shared, started: &ListenerConfig) -> ListenerKind {
    let snapshot = shared.snapshot();
    snapshot
        .config
        .listeners
        .iter()
        .find(|l| l.address == started.address && l.kind.name() == started.kind.name())
        .map_or_else(|| started.kind.clone(), |l| l.kind.clone())
}

async fn handle(
    tcp: TcpStream,
    client: SocketAddr,
    listener: Arc<ListenerConfig>,
    shared: Arc<Shared>,
) {
    let accepted = Instant::now();
    let _ = tcp.set_nodelay(true);
    match current_kind(&shared, &listener) {
        ListenerKind::Http => {
            let peer = PeerInfo {
                client_addr: client,
                scheme: "http",
                tls_server_name: None,
            };
            conn::serve(tcp, peer, accepted, shared).await;
        }
        ListenerKind::Tls(config) => {
            let handshake = TlsAcceptor::from(config).accept(tcp);
            let tls = match tokio::time::timeout_at(accepted + shared.head_timeout, handshake).await
            {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::info!(%client, listener = %listener.address, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    let ms = shared.head_timeout.as_millis() as u64;
                    tracing::info!(%client, listener = %listener.address, timeout_ms = ms, "TLS handshake timeout");
                    return;
                }
            };
            let peer = PeerInfo {
                client_addr: client,
                scheme: "https",
                tls_server_name: tls.get_ref().1.server_name().map(str::to_ascii_lowercase),
            };
            conn::serve(tls, peer, accepted, shared).await;
        }
        ListenerKind::Passthrough(config) => {
            passthrough::serve(tcp, client, listener.address, config, shared).await;
        }
    }
}
