//! Tunnels that live as long as they should (issue 4): proxy keepalive pings a
//! silent side, swallows its own pongs and closes with 1001 toward the live
//! side when a peer stops answering; fragmented messages with interleaved pings
//! pass byte for byte; graceful drain sends 1001 to both sides; max_lifetime
//! and the request-head timeout (408); the default idle timeout is not 60 s.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};
use upgate_tests::frame::{self, Frame};
use upgate_tests::proxy::{self, config_text, route};
use upgate_tests::raw::{self, RawConn};
use upgate_tests::{origin, within_for, ws};

const PING: u8 = 0x9;
const PONG: u8 = 0xA;
const CLOSE: u8 = 0x8;

/// Opens a tunnel through `addr` with the raw client (to a scripted origin answering 101).
async fn open_raw(addr: std::net::SocketAddr) -> RawConn {
    let mut client = RawConn::connect(addr).await;
    client.send(raw::upgrade_request("/", "")).await;
    let head = client.read_head().await;
    assert_eq!(head.status, 101);
    client
}

fn scripted_switch() -> Vec<u8> {
    origin::switching("websocket", raw::KEY, "", b"")
}

/// Every frame in `bytes` (a client→origin stream).
fn frames(mut bytes: &[u8]) -> Vec<Frame> {
    let mut out = Vec::new();
    while let Some((f, used)) = frame::parse(bytes) {
        out.push(f);
        bytes = &bytes[used..];
    }
    assert!(
        bytes.is_empty(),
        "stream ends mid-frame: {} bytes left",
        bytes.len()
    );
    out
}

fn is_keepalive_ping(f: &Frame) -> bool {
    f.opcode == PING && f.payload.starts_with(b"upgate-ka-")
}

fn close_code(f: &Frame) -> u16 {
    u16::from_be_bytes([f.payload[0], f.payload[1]])
}

/// Reads frames, answering pings, until a close frame; returns it and when it came.
async fn answer_pings_until_close(client: &mut RawConn, limit: Duration) -> (Frame, Duration) {
    let started = Instant::now();
    within_for(limit, "a close frame", async {
        loop {
            let f = client.read_frame().await;
            match f.opcode {
                PING => client.send(frame::masked(PONG, true, &f.payload)).await,
                CLOSE => return (f, started.elapsed()),
                _ => {}
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_detects_a_silent_upstream_and_closes_1001_toward_the_client() {
    // The scripted origin never answers pings: a peer gone silent without closing.
    let origin = origin::scripted(scripted_switch()).await;
    let proxy = proxy::start([route("/", origin.addr())
        .set("keepalive_interval", "\"200ms\"")
        .set("keepalive_timeout", "\"300ms\"")])
    .await;
    let mut client = open_raw(proxy.addr()).await;
    let (close, after) = answer_pings_until_close(&mut client, Duration::from_secs(5)).await;
    assert_eq!(close_code(&close), 1001, "{close:?}");
    assert!(
        after < Duration::from_millis(200 + 300 + 700),
        "closed after {after:?}"
    );
    let sent = origin.closed(0).await.after_head;
    let pings: Vec<Frame> = frames(&sent)
        .into_iter()
        .filter(is_keepalive_ping)
        .collect();
    assert!(!pings.is_empty(), "upgate never pinged the upstream");
    // Toward the upstream upgate is the client: its frames must be masked.
    assert_ne!(
        sent[1] & 0x80,
        0,
        "keepalive ping to the upstream is not masked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_keeps_an_idle_tunnel_alive_past_its_idle_timeout_and_swallows_pongs() {
    let echo = origin::ws_echo().await;
    let with = proxy::start([route("/", echo.addr())
        .idle_timeout("600ms")
        .set("keepalive_interval", "\"150ms\"")
        .set("keepalive_timeout", "\"1s\"")])
    .await;
    let mut client = ws::connect(with.addr(), "/").await;
    // Idle for 1.5 s (2.5 idle timeouts), reading so tungstenite answers pings.
    let idle_until = Instant::now() + Duration::from_millis(1500);
    let (mut pings, mut pongs) = (0, 0);
    while let Ok(Some(msg)) = tokio::time::timeout_at(
        idle_until.into(),
        futures_util::StreamExt::next(&mut client),
    )
    .await
    {
        match msg.unwrap() {
            tokio_tungstenite::tungstenite::Message::Ping(p) => {
                assert!(p.starts_with(b"upgate-ka-"));
                pings += 1;
            }
            tokio_tungstenite::tungstenite::Message::Pong(_) => pongs += 1,
            other => panic!("unexpected message while idle: {other:?}"),
        }
    }
    assert!(pings >= 3, "only {pings} keepalive pings in 1.5 s");
    assert_eq!(
        pongs, 0,
        "the origin's pongs to upgate's pings reached the client"
    );
    ws::round_trip(&mut client, "still here").await;

    // The same idle time without keepalive: the idle timeout closes it.
    let without = proxy::start([route("/", echo.addr()).idle_timeout("600ms")]).await;
    let mut raw_client = open_raw(without.addr()).await;
    raw_client.closed_within(Duration::from_secs(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragments_and_app_pings_pass_byte_for_byte_with_keepalive_pings_between_frames() {
    let origin = origin::scripted(scripted_switch()).await;
    let proxy = proxy::start([route("/", origin.addr())
        .set("keepalive_interval", "\"50ms\"")
        .set("keepalive_timeout", "\"5s\"")])
    .await;
    let mut client = open_raw(proxy.addr()).await;
    let sent = vec![
        (0x1, false, b"frag-1 ".to_vec()),
        (PING, true, b"app ping".to_vec()),
        (0x0, false, vec![b'x'; 70_000]),
        (PONG, true, b"app pong".to_vec()),
        (0x0, true, b" end".to_vec()),
        (0x2, true, vec![7u8; 300]),
    ];
    for (op, fin, payload) in &sent {
        let bytes = frame::masked(*op, *fin, payload);
        // Split each frame in two writes, with quiet time so keepalive pings fall due.
        let mid = bytes.len() / 2;
        client.send(&bytes[..mid]).await;
        tokio::time::sleep(Duration::from_millis(80)).await;
        client.send(&bytes[mid..]).await;
        tokio::time::sleep(Duration::from_millis(80)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(client);
    let received = frames(&origin.closed(0).await.after_head);
    let injected = received.iter().filter(|f| is_keepalive_ping(f)).count();
    assert!(
        injected >= 1,
        "no keepalive ping was injected between frames"
    );
    let app: Vec<(u8, bool, Vec<u8>)> = received
        .into_iter()
        .filter(|f| !is_keepalive_ping(f))
        .map(|f| (f.opcode, f.fin, f.payload))
        .collect();
    assert_eq!(app.len(), sent.len());
    assert!(app == sent, "the application's frames changed on the way");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_sends_1001_to_both_sides_within_the_deadline() {
    let origin = origin::scripted(scripted_switch()).await;
    let mut text = config_text(&[route("/", origin.addr())]);
    text.insert_str(0, "drain_timeout = \"300ms\"\n");
    let config = upgate::Config::parse(&text, "test", std::path::Path::new(".")).unwrap();
    let proxy = upgate::Proxy::start(config).await.unwrap();
    let addr = proxy.local_addrs()[0];
    let mut client = open_raw(addr).await;
    client.send(frame::masked(0x1, true, b"before drain")).await;
    let started = Instant::now();
    let drained = tokio::spawn(proxy.drain());
    let (close, _) = answer_pings_until_close(&mut client, Duration::from_secs(3)).await;
    assert_eq!(close_code(&close), 1001);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "closed before the drain deadline"
    );
    within_for(Duration::from_secs(3), "drain to finish", drained)
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(300 + 2500),
        "drain took {:?}",
        started.elapsed()
    );
    let to_origin = frames(&origin.closed(0).await.after_head);
    assert_eq!(to_origin[0].text(), "before drain");
    let last = to_origin.last().unwrap();
    assert_eq!(
        (last.opcode, close_code(last)),
        (CLOSE, 1001),
        "origin got {to_origin:?}"
    );
    // New connections are refused once draining started.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_lifetime_closes_a_busy_tunnel_with_1001() {
    let echo = origin::ws_echo().await;
    let proxy = proxy::start([route("/", echo.addr()).set("max_lifetime", "\"400ms\"")]).await;
    let mut client = ws::connect(proxy.addr(), "/").await;
    let started = Instant::now();
    let closed = within_for(Duration::from_secs(3), "lifetime close", async {
        loop {
            ws::send(&mut client, "busy".into()).await;
            match futures_util::StreamExt::next(&mut client).await {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(f))) => return f,
                Some(Ok(_)) => tokio::time::sleep(Duration::from_millis(50)).await,
                other => panic!("tunnel ended without a close frame: {other:?}"),
            }
        }
    })
    .await;
    assert_eq!(closed.map(|f| u16::from(f.code)), Some(1001));
    assert!(started.elapsed() >= Duration::from_millis(350));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_client_gets_408() {
    let echo = origin::ws_echo().await;
    let mut text = config_text(&[route("/", echo.addr())]);
    text.insert_str(0, "request_head_timeout = \"300ms\"\n");
    let proxy = proxy::start_toml(&text).await;
    let mut client = RawConn::connect(proxy.addr()).await;
    let started = Instant::now();
    client
        .send("GET / HTTP/1.1\r\nHost: upgate.test\r\nX-Slow: ")
        .await;
    let rest = client.closed_within(Duration::from_secs(3)).await;
    assert!(
        rest.starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&rest)
    );
    assert!(started.elapsed() < Duration::from_millis(1500));
}

/// The default idle timeout is an hour, not nginx's 60 s: jump the clock past
/// 60 s with an idle tunnel open (a route with `idle_timeout = "60s"` closes).
#[tokio::test]
async fn an_idle_tunnel_outlives_60_seconds_by_default() {
    let echo = origin::ws_echo().await;
    let default = proxy::start([route("/", echo.addr())]).await;
    let nginx_like = proxy::start([route("/", echo.addr()).idle_timeout("60s")]).await;
    let mut kept = ws::connect(default.addr(), "/").await;
    let mut cut = open_raw(nginx_like.addr()).await;
    ws::round_trip(&mut kept, "hello").await;
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(61)).await;
    tokio::time::resume();
    cut.closed_within(Duration::from_secs(3)).await;
    ws::round_trip(&mut kept, "after 61 s of quiet").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_reaches_a_tunnel_that_never_goes_quiet() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let echo = origin::ws_echo().await;
    let mut text = config_text(&[route("/", echo.addr())]);
    text.insert_str(0, "drain_timeout = \"300ms\"\n");
    let config = upgate::Config::parse(&text, "test", std::path::Path::new(".")).unwrap();
    let proxy = upgate::Proxy::start(config).await.unwrap();
    let (mut tx, mut rx) = ws::connect(proxy.local_addrs()[0], "/").await.split();
    // Messages go out for 10 s without waiting for their echoes, so both of
    // the tunnel's sockets always have bytes to read.
    let flood = tokio::spawn(async move {
        let message = "busy ".repeat(200);
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if tx.send(Message::text(message.clone())).await.is_err() {
                break;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let drained = tokio::spawn(proxy.drain());
    // The tunnel ends with a 1001 once a frame boundary comes, or without a
    // close frame one second after the drain deadline: either way well
    // before the flood would stop.
    let ended = within_for(Duration::from_secs(4), "the drained tunnel to end", async {
        loop {
            match rx.next().await {
                Some(Ok(Message::Close(f))) => return f.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
                _ => return None,
            }
        }
    })
    .await;
    assert!(matches!(ended, Some(1001) | None), "closed with {ended:?}");
    assert!(started.elapsed() >= Duration::from_millis(250));
    flood.abort();
    within_for(Duration::from_secs(3), "drain to finish", drained)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_timeout_still_fires_after_traffic_longer_than_it() {
    let echo = origin::ws_echo().await;
    let proxy = proxy::start([route("/", echo.addr()).idle_timeout("300ms")]).await;
    let mut client = ws::connect(proxy.addr(), "/").await;
    // Echoes back to back for over three idle periods: the tunnel's timer
    // fires (and is moved) while its sockets keep it busy.
    let busy_until = Instant::now() + Duration::from_millis(1000);
    while Instant::now() < busy_until {
        ws::send(&mut client, "busy".into()).await;
        assert_eq!(
            ws::recv(&mut client).await.into_text().unwrap().as_str(),
            "busy"
        );
    }
    let quiet = Instant::now();
    let closed = within_for(Duration::from_secs(3), "the idle timeout", async {
        loop {
            match futures_util::StreamExt::next(&mut client).await {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(f))) => return f,
                Some(Ok(_)) => {}
                other => panic!("tunnel ended without a close frame: {other:?}"),
            }
        }
    })
    .await;
    assert_eq!(closed.map(|f| u16::from(f.code)), Some(1001));
    assert!(quiet.elapsed() >= Duration::from_millis(250));
}
