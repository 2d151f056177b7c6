//! When things go wrong: an upstream that is down (502), too slow (504) or
//! framing its body two ways (502), on the plain and the upgrade path; tunnels
//! closed by the idle timeout (and kept while busy); plugins that trap, loop,
//! hoard memory or recurse answer 502 while other routes' clients and tunnels
//! go on untouched (invariant 7).

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};
use upgate_tests::proxy::{self, route};
use upgate_tests::raw::{self, RawConn, RawResponse};
use upgate_tests::{origin, within_for, ws};

/// Sends `request` on a fresh connection and reads the whole answer; returns it and how long it took.
async fn answer(addr: std::net::SocketAddr, request: &str) -> (RawResponse, Duration) {
    let started = Instant::now();
    let mut client = RawConn::connect(addr).await;
    client.send(request).await;
    let res = client.read_response().await;
    (res, started.elapsed())
}

const PLAIN_GET: &str = "GET / HTTP/1.1\r\nHost: upgate.test\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_is_down_is_502_plain_and_upgrade() {
    let down = origin::closed_port().await;
    let proxy = proxy::start([route("/", down)]).await;
    let (plain, _) = answer(proxy.addr(), PLAIN_GET).await;
    assert_eq!(plain.status(), 502, "{}", plain.text());
    assert!(plain.text().contains("unreachable"), "{}", plain.text());
    let (upgrade, _) = answer(proxy.addr(), &raw::upgrade_request("/", "")).await;
    assert_eq!(upgrade.status(), 502, "{}", upgrade.text());
    assert!(upgrade.text().contains("connect"), "{}", upgrade.text());
}

/// One rule for where a response body ends, on both paths that read one
/// (src/framing.rs): two different lengths could be read two ways downstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_different_content_lengths_are_502_plain_and_upgrade() {
    let origin =
        origin::scripted("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!")
            .await;
    let proxy = proxy::start([route("/", origin.addr())]).await;
    let (plain, _) = answer(proxy.addr(), PLAIN_GET).await;
    let (upgrade, _) = answer(proxy.addr(), &raw::upgrade_request("/", "")).await;
    for (what, res) in [("plain", plain), ("upgrade", upgrade)] {
        assert_eq!(res.status(), 502, "{what}: {}", res.text());
        assert!(
            res.text().contains("two different Content-Length"),
            "{what}: {}",
            res.text()
        );
    }
    assert_eq!(origin.connections(), 2, "both requests reached the origin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_code_below_100_is_502_on_every_path() {
    let origin = origin::scripted("HTTP/1.1 099 Odd\r\nContent-Length: 2\r\n\r\nhi").await;
    let proxy = proxy::start([route("/", origin.addr())]).await;
    let post = "POST / HTTP/1.1\r\nHost: upgate.test\r\nContent-Length: 1\r\n\r\nx";
    let (plain, _) = answer(proxy.addr(), PLAIN_GET).await;
    let (with_body, _) = answer(proxy.addr(), post).await;
    let (upgrade, _) = answer(proxy.addr(), &raw::upgrade_request("/", "")).await;
    for (what, res) in [
        ("plain", plain),
        ("with a body", with_body),
        ("upgrade", upgrade),
    ] {
        assert_eq!(res.status(), 502, "{what}: {}", res.text());
    }
    assert_eq!(origin.connections(), 3, "every request reached the origin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_too_slow_to_answer_is_504_plain_and_upgrade() {
    let silent = origin::silent().await;
    let proxy = proxy::start([route("/", silent.addr()).response_timeout("300ms")]).await;
    let upgrade_request = raw::upgrade_request("/", "");
    let (plain, upgrade) = tokio::join!(
        answer(proxy.addr(), PLAIN_GET),
        answer(proxy.addr(), &upgrade_request)
    );
    for (what, (res, took)) in [("plain", plain), ("upgrade", upgrade)] {
        assert_eq!(res.status(), 504, "{what}: {}", res.text());
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_secs(3),
            "{what}: answered after {took:?}, not after the 300 ms response timeout"
        );
    }
    assert_eq!(silent.connections(), 2, "both requests reached the origin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_tunnel_is_closed_by_the_idle_timeout() {
    let echo = origin::ws_echo().await;
    let proxy = proxy::start([route("/", echo.addr()).idle_timeout("300ms")]).await;
    let mut client = ws::connect(proxy.addr(), "/").await;
    ws::round_trip(&mut client, "then silence").await;
    let quiet_since = Instant::now();
    let end = within_for(
        Duration::from_millis(1500),
        "the idle tunnel to close",
        futures_util::StreamExt::next(&mut client),
    )
    .await;
    let after = quiet_since.elapsed();
    assert!(
        !matches!(end, Some(Ok(ref m)) if !m.is_close()),
        "got a message instead of the end of the tunnel: {end:?}"
    );
    assert!(
        after >= Duration::from_millis(250),
        "closed after only {after:?}"
    );
    echo.closed(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_tunnel_outlives_the_idle_timeout() {
    let echo = origin::ws_echo().await;
    let proxy = proxy::start([route("/", echo.addr()).idle_timeout("300ms")]).await;
    let mut client = ws::connect(proxy.addr(), "/").await;
    let started = Instant::now();
    for i in 0..12 {
        ws::round_trip(&mut client, &format!("message {i}")).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(started.elapsed() >= Duration::from_millis(1200));
    ws::round_trip(&mut client, "still open").await;
}

/// Two routes on one proxy: `/bad` with the probe in `mode` (deadline 50 ms),
/// `/echo` with the pass-through plugin. While `/bad` requests fail, an echo
/// tunnel opened before them keeps echoing, and new echo clients are served.
async fn failing_plugin_leaves_others_alone(mode: &str, kind: &str) {
    let echo = origin::ws_echo().await;
    let proxy = proxy::start([
        route("/bad", echo.addr())
            .probe(mode)
            .plugin_deadline("50ms"),
        route("/echo", echo.addr()),
    ])
    .await;
    let mut before = ws::connect(proxy.addr(), "/echo").await;
    ws::round_trip(&mut before, "before").await;
    let addr = proxy.addr();
    let bad: Vec<_> = (0..4)
        .map(|_| tokio::spawn(async move { answer(addr, &raw::upgrade_request("/bad", "")).await }))
        .collect();
    for i in 0..5 {
        let t = Instant::now();
        ws::round_trip(&mut before, &format!("during {i}")).await;
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "echo stalled {:?} while plugins failed",
            t.elapsed()
        );
        let mut fresh = ws::connect(proxy.addr(), "/echo").await;
        ws::round_trip(&mut fresh, "new client during").await;
    }
    for task in bad {
        let (res, took) = task.await.unwrap();
        assert_eq!(res.status(), 502, "{mode}: {}", res.text());
        assert!(
            res.text().contains(kind),
            "{mode}: 502 body {:?} lacks {kind:?}",
            res.text()
        );
        assert!(
            took < Duration::from_secs(2),
            "{mode}: answered after {took:?}"
        );
    }
    ws::round_trip(&mut before, "after").await;
    let mut after = ws::connect(proxy.addr(), "/echo").await;
    ws::round_trip(&mut after, "new client after").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapping_plugin_is_502_and_other_routes_go_on() {
    failing_plugin_leaves_others_alone("trap", "trap").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looping_plugin_hits_its_deadline_and_other_routes_go_on() {
    failing_plugin_leaves_others_alone("loop", "deadline").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_hoarding_memory_is_502_and_other_routes_go_on() {
    failing_plugin_leaves_others_alone("alloc", "plugin failed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_recursing_without_end_is_502_and_other_routes_go_on() {
    failing_plugin_leaves_others_alone("recurse", "plugin failed").await;
}
