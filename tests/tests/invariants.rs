//! design.md §5, one test per way each invariant can be broken: a tunnel opens
//! only on a client upgrade answered by a valid 101 to an offered, allowed
//! protocol with the right accept key (1, 2); a non-101 answer is relayed and the
//! connection never tunnelled afterwards (3); bytes that arrive with a head are
//! delivered first (5). Hop-by-hop handling and exact spellings (4) are pinned in
//! `http.rs` and `plugins.rs`, plugin isolation (7) in `failures.rs`.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::time::Duration;
use upgate_tests::proxy::{self, route};
use upgate_tests::raw::{self, RawConn};
use upgate_tests::server::Server;
use upgate_tests::{frame, http_origin, origin, ws};

/// What an origin answers to refuse an upgrade: a 403 with a body.
const FORBIDDEN: &[u8] =
    b"HTTP/1.1 403 Forbidden\r\nContent-Length: 10\r\nX-Origin: yes\r\n\r\nforbidden\n";

/// Asserts origin connection 0 is closed and got nothing after its head: the
/// client's later bytes were never tunnelled to it.
async fn nothing_tunnelled(origin: &Server) {
    let conn = origin.closed(0).await;
    assert!(
        conn.after_head.is_empty(),
        "bytes reached the origin after a refused upgrade: {:?}",
        String::from_utf8_lossy(&conn.after_head)
    );
}

/// Sends a client upgrade to an origin that answers `response`, expects a 502
/// whose body mentions `why`, then checks no byte is tunnelled either way.
async fn bad_switch_is_502(response: Vec<u8>, request: String, why: &str) {
    let origin = origin::scripted(response).await;
    let proxy =
        proxy::start([route("/", origin.addr()).allowed_upgrades(&["websocket", "foo"])]).await;
    let mut client = RawConn::connect(proxy.addr()).await;
    client.send(request).await;
    let res = client.read_response().await;
    assert_eq!(res.status(), 502, "{}", res.text());
    assert!(
        res.text().contains(why),
        "502 body {:?} lacks {why:?}",
        res.text()
    );
    client
        .send(frame::masked(frame::TEXT, true, b"not for the origin"))
        .await;
    let rest = client.closed_within(Duration::from_secs(3)).await;
    assert!(
        !upgate_tests::contains(&rest, b"from origin"),
        "origin bytes reached the client"
    );
    nothing_tunnelled(&origin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsolicited_101_to_a_plain_get_is_502() {
    let origin = origin::scripted(
        &b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nfrom origin"[..],
    )
    .await;
    let proxy = proxy::start([route("/", origin.addr())]).await;
    let mut client = RawConn::connect(proxy.addr()).await;
    client
        .send("GET / HTTP/1.1\r\nHost: upgate.test\r\n\r\n")
        .await;
    let res = client.read_response().await;
    assert_eq!(
        res.status(),
        502,
        "a 101 to a request that did not ask to upgrade was relayed"
    );
    client.send("bytes after the answer").await;
    let rest = client.closed_within(Duration::from_secs(3)).await;
    assert!(
        !upgate_tests::contains(&rest, b"from origin"),
        "origin bytes reached the client"
    );
    nothing_tunnelled(&origin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switch_to_a_protocol_the_client_did_not_offer_is_502() {
    let response = origin::switching("h2c", raw::KEY, "", b"from origin");
    bad_switch_is_502(response, raw::upgrade_request("/", ""), "`h2c`").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_sec_websocket_accept_is_502() {
    let response =
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                     Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\nfrom origin";
    bad_switch_is_502(
        response.to_vec(),
        raw::upgrade_request("/", ""),
        "Sec-WebSocket-Accept",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_sec_websocket_accept_is_502() {
    let response = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nfrom origin";
    bad_switch_is_502(
        response.to_vec(),
        raw::upgrade_request("/", ""),
        "Sec-WebSocket-Accept",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_101_without_an_upgrade_header_is_502() {
    let response = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\r\nfrom origin";
    bad_switch_is_502(
        response.to_vec(),
        raw::upgrade_request("/", ""),
        "without an Upgrade header",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protocol_the_route_does_not_allow_is_502() {
    let origin = origin::scripted(origin::switching("foo", raw::KEY, "", b"from origin")).await;
    let proxy = proxy::start([route("/", origin.addr())]).await;
    let mut client = RawConn::connect(proxy.addr()).await;
    client
        .send("GET / HTTP/1.1\r\nHost: upgate.test\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n")
        .await;
    let res = client.read_response().await;
    assert_eq!(res.status(), 502);
    assert!(res.text().contains("does not allow"), "{}", res.text());
    nothing_tunnelled(&origin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protocol_the_route_allows_is_tunnelled() {
    let origin = origin::scripted(origin::switching("foo", raw::KEY, "", b"from origin")).await;
    let proxy = proxy::start([route("/", origin.addr()).allowed_upgrades(&["foo"])]).await;
    let mut client = RawConn::connect(proxy.addr()).await;
    client
        .send("GET / HTTP/1.1\r\nHost: upgate.test\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n")
        .await;
    let head = client.read_head().await;
    assert_eq!((head.status, head.header("upgrade")), (101, Some("foo")));
    assert_eq!(client.read_exact(11).await, b"from origin");
    client.send("foo bytes").await;
    upgate_tests::eventually("the origin receives the tunnelled bytes", || {
        (origin.conn(0).after_head == b"foo bytes").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upgrade_token_counts_in_any_case_within_a_list() {
    let echo = origin::ws_echo().await;
    let proxy = proxy::start([route("/", echo.addr())]).await;
    let mut client = RawConn::connect(proxy.addr()).await;
    let request = raw::upgrade_request("/", "")
        .replace("Connection: Upgrade", "Connection: keep-alive, UPGRADE");
    client.send(request).await;
    assert_eq!(client.read_head().await.status, 101);
    client
        .send(frame::masked(frame::TEXT, true, b"tunnelled"))
        .await;
    assert_eq!(client.read_frame().await.text(), "tunnelled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_header_without_the_connection_token_is_a_plain_request() {
    let origin = http_origin::http().await;
    let proxy = proxy::start([route("/", origin.addr())]).await;
    let mut client = RawConn::connect(proxy.addr()).await;
    let request =
        raw::upgrade_request("/", "").replace("Connection: Upgrade", "Connection: keep-alive");
    client.send(request).await;
    let res = client.read_response().await;
    assert_eq!(
        (res.status(), res.text().as_str()),
        (200, "hello from origin\n")
    );
    let seen = &origin.requests()[0];
    assert_eq!(
        seen.header("upgrade"),
        None,
        "a hop-by-hop Upgrade reached the origin"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_403_is_relayed_and_the_next_bytes_are_a_new_request() {
    let origin = origin::scripted(FORBIDDEN).await;
    let proxy = proxy::start([route("/", origin.addr())]).await;
    let mut client = RawConn::connect(proxy.addr()).await;
    client.send(raw::upgrade_request("/", "")).await;
    let res = client.read_response().await;
    assert_eq!((res.status(), res.text().as_str()), (403, "forbidden\n"));
    assert_eq!(res.head.header("x-origin"), Some("yes"));
    client
        .send("GET /after HTTP/1.1\r\nHost: upgate.test\r\n\r\n")
        .await;
    let second = client.read_response().await;
    assert_eq!(
        second.status(),
        403,
        "the follow-up request was not answered as HTTP"
    );
    let head = origin.head(1).await;
    assert!(head.starts_with("GET /after HTTP/1.1\r\n"), "{head}");
    nothing_tunnelled(&origin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_after_a_relayed_403_never_reach_the_origin() {
    let origin = origin::scripted(FORBIDDEN).await;
    let proxy = proxy::start([route("/", origin.addr())]).await;
    let mut client = RawConn::connect(proxy.addr()).await;
    client.send(raw::upgrade_request("/", "")).await;
    assert_eq!(client.read_response().await.status(), 403);
    client
        .send(frame::masked(frame::TEXT, true, b"smuggled"))
        .await;
    let rest = client.closed_within(Duration::from_secs(3)).await;
    assert!(
        rest.starts_with(b"HTTP/1.1 400 "),
        "{:?}",
        String::from_utf8_lossy(&rest)
    );
    nothing_tunnelled(&origin).await;
    assert_eq!(origin.connections(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_always_tunnel_on_a_403_is_relayed_not_tunnelled() {
    let origin = origin::scripted(FORBIDDEN).await;
    let proxy = proxy::start([route("/", origin.addr()).probe("always-tunnel")]).await;
    let mut client = RawConn::connect(proxy.addr()).await;
    client.send(raw::upgrade_request("/", "")).await;
    let res = client.read_response().await;
    assert_eq!((res.status(), res.text().as_str()), (403, "forbidden\n"));
    client
        .send(frame::masked(frame::TEXT, true, b"smuggled"))
        .await;
    let rest = client.closed_within(Duration::from_secs(3)).await;
    assert!(
        rest.starts_with(b"HTTP/1.1 400 "),
        "{:?}",
        String::from_utf8_lossy(&rest)
    );
    nothing_tunnelled(&origin).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_relay_101_is_502() {
    let echo = origin::ws_echo().await;
    let proxy = proxy::start([route("/", echo.addr()).probe("relay-101")]).await;
    let mut client = RawConn::connect(proxy.addr()).await;
    client.send(raw::upgrade_request("/", "")).await;
    let res = client.read_response().await;
    assert_eq!(res.status(), 502);
    assert!(res.text().contains("relayed a 101"), "{}", res.text());
    echo.closed(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_accept_in_the_plugins_101_never_reaches_the_client() {
    let echo = origin::ws_echo().await;
    let proxy = proxy::start([route("/", echo.addr()).probe("bad-key")]).await;
    let mut client = RawConn::connect(proxy.addr()).await;
    client.send(raw::upgrade_request("/", "")).await;
    let head = client.read_head().await;
    assert_eq!(head.status, 101);
    assert_eq!(head.header("sec-websocket-accept"), Some(raw::ACCEPT));
    // tungstenite checks the key itself too.
    let mut ws_client = ws::connect(proxy.addr(), "/").await;
    ws::round_trip(&mut ws_client, "accept recomputed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clients_first_frame_in_the_head_write_arrives() {
    let echo = origin::ws_echo().await;
    let proxy = proxy::start([route("/", echo.addr())]).await;
    let mut client = RawConn::connect(proxy.addr()).await;
    let mut bytes = raw::upgrade_request("/", "").into_bytes();
    bytes.extend(frame::masked(frame::TEXT, true, b"early"));
    bytes.extend(frame::masked(frame::BINARY, true, b"second"));
    client.send(bytes).await;
    assert_eq!(client.read_head().await.status, 101);
    let first = client.read_frame().await;
    assert_eq!(
        (first.opcode, first.text().as_str()),
        (frame::TEXT, "early")
    );
    let second = client.read_frame().await;
    assert_eq!(
        (second.opcode, second.text().as_str()),
        (frame::BINARY, "second")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_origins_first_frame_in_the_101_write_arrives() {
    let mut first = frame::unmasked(frame::TEXT, true, b"hello from the origin");
    first.extend(frame::unmasked(frame::BINARY, true, b"and more"));
    let origin = origin::scripted(origin::switching("websocket", raw::KEY, "", &first)).await;
    let proxy = proxy::start([route("/", origin.addr())]).await;
    let mut client = RawConn::connect(proxy.addr()).await;
    client.send(raw::upgrade_request("/", "")).await;
    let head = client.read_head().await;
    assert_eq!(head.status, 101);
    assert_eq!(head.header("sec-websocket-accept"), Some(raw::ACCEPT));
    assert_eq!(client.read_frame().await.text(), "hello from the origin");
    assert_eq!(client.read_frame().await.text(), "and more");
    let reply = frame::masked(frame::TEXT, true, b"reply");
    client.send(&reply).await;
    upgate_tests::eventually("the origin receives the client's reply", || {
        (origin.conn(0).after_head == reply).then_some(())
    })
    .await;
}

/// An upgrade that is not a connection's first request goes through hyper's
/// upgrade hand-off (a first request is decided before hyper): same 101, and
/// the frame sent with the head still arrives first (5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_after_a_plain_request_on_one_connection_is_tunnelled() {
    let echo = origin::ws_echo().await;
    let http = http_origin::http().await;
    let proxy = proxy::start([route("/plain", http.addr()), route("/", echo.addr())]).await;
    let mut client = RawConn::connect(proxy.addr()).await;
    client
        .send("GET /plain HTTP/1.1\r\nHost: upgate.test\r\n\r\n")
        .await;
    let res = client.read_response().await;
    assert_eq!(
        (res.status(), res.text().as_str()),
        (200, "hello from origin\n")
    );
    let mut bytes = raw::upgrade_request("/", "").into_bytes();
    bytes.extend(frame::masked(frame::TEXT, true, b"early"));
    client.send(bytes).await;
    let head = client.read_head().await;
    assert_eq!(head.status, 101);
    assert_eq!(head.header("sec-websocket-accept"), Some(raw::ACCEPT));
    let first = client.read_frame().await;
    assert_eq!(
        (first.opcode, first.text().as_str()),
        (frame::TEXT, "early")
    );
}
