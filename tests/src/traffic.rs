//! Background WebSocket traffic for tests that disturb a running upgate
//! (reloads, swaps): kept tunnels that echo on a timer and a client that keeps
//! opening fresh upgrades, all through the proxy; [`Load::finish`] fails the
//! test on any dropped tunnel or failed handshake.
//!
//! ```no_run
//! # async fn demo(proxy: std::net::SocketAddr) {
//! use upgate_tests::traffic::Load;
//! let load = Load::start(proxy, "/kept/", 2, true).await;
//! // ... change something under the proxy ...
//! load.finish().await;
//! # }
//! ```

use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::{within, ws};

/// Time between two echoes on a kept tunnel.
const ECHO_EVERY: Duration = Duration::from_millis(20);
/// The least time the background traffic runs, so every tunnel echoes a few times.
const MIN_LOAD: Duration = Duration::from_millis(150);
/// Upper bounds on the load loops (they normally stop on their flag first).
const MAX_ECHOES: usize = 2_000;
const MAX_UPGRADES: usize = 5_000;

/// Sends `text` and waits (bounded) for its echo; says what went wrong instead.
async fn echo_once(ws: &mut ws::Ws, text: &str) -> Result<(), String> {
    let exchange = async {
        ws.send(Message::text(text))
            .await
            .map_err(|e| e.to_string())?;
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.as_str() == text => Ok(()),
            other => Err(format!("expected the echo of {text:?}, got {other:?}")),
        }
    };
    tokio::time::timeout(crate::STEP, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no echo of {text:?} within {:?}", crate::STEP)))
}

/// Background traffic: tunnels that echo every [`ECHO_EVERY`], and a client
/// opening a fresh upgrade (one echo, then close) in a loop. Stopped with
/// [`Load::finish`], which fails the test on any dropped tunnel or failed handshake.
pub struct Load {
    stop: Arc<AtomicBool>,
    /// When the traffic started: it runs at least [`MIN_LOAD`].
    started: Instant,
    tunnels: Vec<JoinHandle<Result<usize, String>>>,
    upgrader: Option<JoinHandle<(usize, Vec<String>)>>,
}

impl Load {
    /// Opens `tunnels` tunnels on `path` (and, with `upgrades`, starts the upgrading client).
    pub async fn start(addr: SocketAddr, path: &str, tunnels: usize, upgrades: bool) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::new();
        for t in 0..tunnels {
            let mut tunnel = ws::connect(addr, &format!("{path}tunnel-{t}")).await;
            ws::round_trip(&mut tunnel, "open").await;
            let stop = stop.clone();
            handles.push(tokio::spawn(async move {
                for i in 0..MAX_ECHOES {
                    if stop.load(Ordering::Relaxed) {
                        echo_once(&mut tunnel, "last").await?;
                        return Ok(i);
                    }
                    echo_once(&mut tunnel, &format!("tunnel {t} echo {i}")).await?;
                    tokio::time::sleep(ECHO_EVERY).await;
                }
                Ok(MAX_ECHOES)
            }));
        }
        let upgrader = upgrades.then(|| {
            let stop = stop.clone();
            let path = path.to_string();
            tokio::spawn(async move {
                let (mut ok, mut failed) = (0, Vec::new());
                for i in 0..MAX_UPGRADES {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let target = format!("{path}load-{i}");
                    match ws::try_connect(addr, &target, &[]).await {
                        Ok((mut client, _)) => match echo_once(&mut client, "fresh").await {
                            Ok(()) => {
                                ok += 1;
                                let _ = client.close(None).await;
                            }
                            Err(e) => failed.push(format!("{target}: {e}")),
                        },
                        Err(e) => failed.push(format!("{target}: handshake: {}", ws::describe(&e))),
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                (ok, failed)
            })
        });
        Load {
            stop,
            started: Instant::now(),
            tunnels: handles,
            upgrader,
        }
    }

    /// Stops the traffic; asserts every tunnel answered every echo (and one
    /// more), and every fresh upgrade succeeded.
    pub async fn finish(self) {
        tokio::time::sleep(MIN_LOAD.saturating_sub(self.started.elapsed())).await;
        self.stop.store(true, Ordering::Relaxed);
        for (t, task) in self.tunnels.into_iter().enumerate() {
            match within("a kept tunnel stops", task).await.unwrap() {
                Ok(echoes) => assert!(echoes > 0, "tunnel {t} never echoed"),
                Err(e) => panic!("tunnel {t} dropped: {e}"),
            }
        }
        if let Some(task) = self.upgrader {
            let (ok, failed) = within("the upgrading client stops", task).await.unwrap();
            assert!(
                failed.is_empty(),
                "{} failed handshakes: {failed:#?}",
                failed.len()
            );
            assert!(ok > 0, "the upgrading client never got through");
        }
    }
}
