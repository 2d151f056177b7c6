//! `workers`: upgate as the binary runs it, on worker threads of its own, each
//! with its own event loop and its own socket on the listener. Upgrades, plugin
//! calls, tunnels and plain requests work whichever worker accepts them, and
//! stopping stops every worker's accept loop while tunnels stay up.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use upgate_tests::proxy::{self, route};
use upgate_tests::raw::RawConn;
use upgate_tests::{http_origin, origin, within, ws};

/// Connections opened at once: enough that the kernel spreads them over both
/// workers' sockets (it hashes each connection's addresses and ports: all on
/// one socket has odds of about 2^-39).
const CONNECTIONS: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_serve_upgrades_tunnels_and_plain_http() {
    let echo = origin::ws_echo().await;
    let http = http_origin::http().await;
    let proxy =
        proxy::start_on_workers([route("/ws", echo.addr()), route("/", http.addr())], 2).await;
    let addr = proxy.addr();

    let opening: Vec<_> = (0..CONNECTIONS)
        .map(|i| {
            tokio::spawn(async move {
                let mut client = ws::connect(addr, "/ws").await;
                ws::round_trip(&mut client, &format!("hello {i}")).await;
                client
            })
        })
        .collect();
    let mut tunnels = Vec::new();
    for t in opening {
        tunnels.push(within("open a tunnel", t).await.unwrap());
    }
    assert_eq!(proxy.proxy().open_tunnels(), CONNECTIONS);
    let accepted = proxy.proxy().accepted_by_worker();
    assert_eq!(
        accepted.iter().sum::<u64>(),
        CONNECTIONS as u64,
        "{accepted:?}"
    );
    assert!(
        accepted.iter().all(|&n| n > 0),
        "the kernel gave every connection to one worker: {accepted:?}"
    );

    for i in 0..10 {
        let mut client = RawConn::connect(addr).await;
        client
            .send(format!(
                "GET /plain?n={i} HTTP/1.1\r\nHost: upgate.test\r\n\r\n"
            ))
            .await;
        let res = client.read_response().await;
        assert_eq!(res.status(), 200, "request {i}");
        assert_eq!(res.text(), "hello from origin\n");
    }

    // Stopping closes every worker's socket: no connection is accepted any more
    // (a socket left open would take them all: the kernel spreads new
    // connections over the sockets still bound)...
    proxy.shutdown().await;
    for i in 0..20 {
        let refused = within(
            "connect after shutdown",
            tokio::net::TcpStream::connect(addr),
        )
        .await;
        assert!(
            refused.is_err(),
            "connection {i} was accepted after shutdown"
        );
    }
    // ...and the tunnels the workers hold go on.
    for (i, client) in tunnels.iter_mut().enumerate() {
        ws::round_trip(client, &format!("still here {i}")).await;
    }
}
