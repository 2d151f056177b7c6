//! Plain HTTP through upgate (no upgrade, so no plugin): GET, POST bodies that
//! stream both ways, keep-alive on both sides, forwarding headers, and
//! hop-by-hop headers dropped in each direction (RFC 9110 §7.6.1), and a
//! transfer coding under the chunks kept on both paths that relay an answer.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::time::Duration;
use upgate_tests::proxy::{self, route};
use upgate_tests::raw::{self, RawConn};
use upgate_tests::{contains, http_origin, origin};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_is_proxied() {
    let origin = http_origin::http().await;
    let proxy = proxy::start([route("/", origin.addr())]).await;
    let mut client = RawConn::connect(proxy.addr()).await;
    client
        .send("GET /plain?x=1 HTTP/1.1\r\nHost: upgate.test\r\n\r\n")
        .await;
    let res = client.read_response().await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text(), "hello from origin\n");
    let seen = origin.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].target.as_str()),
        ("GET", "/plain?x=1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_chunked_post_streams_both_ways() {
    let origin = http_origin::http().await;
    let proxy = proxy::start([route("/", origin.addr())]).await;
    let mut client = RawConn::connect(proxy.addr()).await;
    client
        .send("POST /echo HTTP/1.1\r\nHost: upgate.test\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await;
    let mut head = None;
    // Each chunk must come back before the next is sent: nothing is buffered whole.
    for part in ["first chunk;", "second, later;", "third and last"] {
        client.send(format!("{:x}\r\n{part}\r\n", part.len())).await;
        if head.is_none() {
            head = Some(client.read_head().await);
        }
        let echoed = client.read_chunked_bytes(part.len()).await;
        assert_eq!(String::from_utf8_lossy(&echoed), part);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    client.send("0\r\n\r\n").await;
    assert_eq!(client.read_chunk().await, None, "the echo did not end");
    let head = head.unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(
        RawConn::framing(&head, "POST"),
        raw::Framing::Chunked,
        "a streamed answer of unknown length goes out chunked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_mib_post_is_echoed_intact() {
    let origin = http_origin::http().await;
    let proxy = proxy::start([route("/", origin.addr())]).await;
    let body: Vec<u8> = (0..1usize << 20).map(|i| (i % 253) as u8).collect();
    let mut client = RawConn::connect(proxy.addr()).await;
    let head = format!(
        "POST /echo HTTP/1.1\r\nHost: upgate.test\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    client.send(head).await;
    client.send(&body).await;
    let res = client.read_response().await;
    assert_eq!(res.status(), 200);
    assert!(res.body == body, "the 1 MiB echo differs");
    assert_eq!(
        origin.requests()[0].header("content-length"),
        Some("1048576")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_is_reused_on_both_sides() {
    let origin = http_origin::http().await;
    let proxy = proxy::start([route("/", origin.addr())]).await;
    let mut client = RawConn::connect(proxy.addr()).await;
    for path in ["/a", "/b", "/c"] {
        client
            .send(format!("GET {path} HTTP/1.1\r\nHost: upgate.test\r\n\r\n"))
            .await;
        let res = client.read_response().await;
        assert_eq!(
            res.status(),
            200,
            "request {path} on the same client connection"
        );
        assert_eq!(res.head.header("x-origin-conn"), Some("0"));
    }
    let targets: Vec<String> = origin.requests().into_iter().map(|s| s.target).collect();
    assert_eq!(targets, ["/a", "/b", "/c"]);
    assert_eq!(
        origin.connections(),
        1,
        "the pooled upstream connection was not reused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_reach_the_origin() {
    let origin = http_origin::http().await;
    let proxy = proxy::start([route("/", origin.addr())]).await;
    let mut client = RawConn::connect(proxy.addr()).await;
    client
        .send("GET / HTTP/1.1\r\nHost: upgate.test\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n")
        .await;
    assert_eq!(client.read_response().await.status(), 200);
    let seen = &origin.requests()[0];
    assert_eq!(
        seen.header("x-forwarded-for"),
        Some("203.0.113.9, 127.0.0.1")
    );
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    let forwarded = seen.header("forwarded").unwrap_or_default();
    assert!(
        forwarded.starts_with("for=127.0.0.1;proto=http"),
        "Forwarded: {forwarded}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_reach_the_origin_on_upgrades() {
    let echo = origin::ws_echo().await;
    let proxy = proxy::start([route("/", echo.addr())]).await;
    let mut client = RawConn::connect(proxy.addr()).await;
    client.send(raw::upgrade_request("/", "")).await;
    assert_eq!(client.read_head().await.status, 101);
    let head = echo.head(0).await;
    for line in [
        "\r\nX-Forwarded-For: 127.0.0.1\r\n",
        "\r\nX-Forwarded-Proto: http\r\n",
        "\r\nForwarded: for=127.0.0.1;proto=http\r\n",
    ] {
        assert!(
            head.contains(line),
            "no {line:?} in the origin's head:\n{head}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_are_dropped_both_ways() {
    let origin = http_origin::http().await;
    let proxy = proxy::start([route("/", origin.addr())]).await;
    let mut client = RawConn::connect(proxy.addr()).await;
    client
        .send(
            "GET /hop HTTP/1.1\r\nHost: upgate.test\r\nConnection: keep-alive, X-Secret\r\n\
             X-Secret: 1\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n\
             X-Kept: yes\r\n\r\n",
        )
        .await;
    let res = client.read_response().await;
    assert_eq!(res.status(), 200);
    let seen = &origin.requests()[0];
    assert_eq!(seen.header("x-kept"), Some("yes"));
    for name in ["x-secret", "keep-alive", "proxy-connection"] {
        assert_eq!(seen.header(name), None, "{name} reached the origin");
    }
    assert!(
        !seen.header("connection").unwrap_or("").contains("X-Secret"),
        "the client's Connection header reached the origin: {seen:?}"
    );
    assert_eq!(res.head.header("x-resp-kept"), Some("yes"));
    for name in ["x-resp-secret", "keep-alive"] {
        assert_eq!(res.head.header(name), None, "{name} reached the client");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_are_dropped_from_upgrades() {
    let echo = origin::ws_echo().await;
    let proxy = proxy::start([route("/", echo.addr())]).await;
    let mut client = RawConn::connect(proxy.addr()).await;
    let request = "GET / HTTP/1.1\r\nHost: upgate.test\r\nConnection: Upgrade, X-Secret\r\n\
                   Upgrade: websocket\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\n\
                   Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    client.send(request).await;
    assert_eq!(client.read_head().await.status, 101);
    let head = echo.head(0).await;
    let lower = head.to_ascii_lowercase();
    assert!(
        !contains(lower.as_bytes(), b"x-secret"),
        "X-Secret reached the origin:\n{head}"
    );
    assert!(
        !contains(lower.as_bytes(), b"keep-alive"),
        "Keep-Alive reached the origin:\n{head}"
    );
    assert!(head.contains("\r\nConnection: Upgrade\r\n"), "{head}");
    assert!(head.contains("\r\nUpgrade: websocket\r\n"), "{head}");
}

/// A transfer coding under the chunks (`gzip, chunked`) reaches the client on
/// both paths that relay an upstream's answer: the plain path forwards the
/// chunks as they came, a plugin's `relay` decodes them and hyper frames the
/// body anew, so the coding must be announced again (src/framing.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_coding_under_the_chunks_reaches_the_client() {
    let origin = origin::scripted(
        "HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
         5\r\ncoded\r\n0\r\n\r\n",
    )
    .await;
    let proxy = proxy::start([route("/", origin.addr())]).await;
    for (what, request) in [
        (
            "plain",
            "GET / HTTP/1.1\r\nHost: upgate.test\r\n\r\n".to_string(),
        ),
        ("upgrade relay", raw::upgrade_request("/", "")),
    ] {
        let mut client = RawConn::connect(proxy.addr()).await;
        client.send(request).await;
        let res = client.read_response().await;
        assert_eq!(
            (res.status(), res.text().as_str()),
            (403, "coded"),
            "{what}"
        );
        let te = res.head.header("transfer-encoding").unwrap_or("");
        assert_eq!(
            te.to_ascii_lowercase(),
            "gzip, chunked",
            "{what}: {:?}",
            res.head
        );
    }
}
