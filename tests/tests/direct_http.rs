//! Bodyless plain requests, which upgate serves without hyper: every way an
//! upstream may frame a body (length, chunks with trailers, until it closes:
//! re-chunked; none for HEAD), interim 1xx answers skipped, header names
//! passed on as spelled, pipelined requests answered in order, `Connection:
//! close` from the client honoured, pooled upstream connections that the
//! upstream closed replaced (a request sent again only when its method is
//! idempotent), a body cut short never passed off as whole, a connection with
//! bytes past its answer's body never given another request, an upstream given
//! by name reached on every connect, and a client that leaves early freeing the
//! upstream connection.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use bytes::BytesMut;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use upgate_tests::proxy::{self, route};
use upgate_tests::raw::RawConn;
use upgate_tests::server::{read_head, Record, Server};

/// What the origin does with one request.
enum Act {
    /// Writes these pieces (a short pause between them), keeps the connection.
    Answer(Vec<&'static [u8]>),
    /// Writes this, then closes the connection.
    AnswerThenClose(&'static [u8]),
    /// Closes the connection without answering.
    Close,
    /// Never answers; waits for the proxy to close.
    Hang,
    /// Writes the start of an answer, then waits for the proxy to close.
    StartThenHang(&'static [u8]),
}

/// A keep-alive origin: for the `i`-th request on connection `conn`, with
/// request line `line`, does `script(conn, i, line)`. Every head is recorded
/// (`after_head` of the connection's record collects the later ones).
async fn origin(script: fn(usize, usize, &str) -> Act) -> Server {
    Server::spawn(move |stream, rec, conn| serve(stream, rec, conn, script)).await
}

async fn serve(
    mut stream: TcpStream,
    rec: Arc<Record>,
    conn: usize,
    script: fn(usize, usize, &str) -> Act,
) {
    let mut buf = BytesMut::with_capacity(4096);
    for i in 0..16 {
        let Some(len) = read_head(&mut stream, &mut buf).await else {
            break;
        };
        let head = buf.split_to(len);
        rec.update(conn, |c| {
            if i == 0 {
                c.head = head.to_vec();
            } else {
                c.after_head.extend_from_slice(&head);
            }
        });
        let text = String::from_utf8_lossy(&head).into_owned();
        let line = text.lines().next().unwrap_or_default().to_string();
        match script(conn, i, &line) {
            Act::Answer(pieces) => {
                for piece in pieces {
                    if stream.write_all(piece).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            Act::AnswerThenClose(bytes) => {
                let _ = stream.write_all(bytes).await;
                break;
            }
            Act::Close => break,
            Act::Hang | Act::StartThenHang(_) => {
                if let Act::StartThenHang(start) = script(conn, i, &line) {
                    if stream.write_all(start).await.is_err() {
                        break;
                    }
                }
                let mut rest = [0u8; 64];
                let wait = tokio::io::AsyncReadExt::read(&mut stream, &mut rest);
                let _ = tokio::time::timeout(Duration::from_secs(30), wait).await;
                break;
            }
        }
    }
    rec.update(conn, |c| c.closed = true);
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";

/// A proxy with one route to `upstream`, and a client connected to it.
async fn client_to(upstream: std::net::SocketAddr) -> (proxy::Running, RawConn) {
    let proxy = proxy::start([route("/", upstream)]).await;
    let client = RawConn::connect(proxy.addr()).await;
    (proxy, client)
}

/// An origin running `script`, a proxy in front of it, and a connected client.
async fn serving(script: fn(usize, usize, &str) -> Act) -> (Server, proxy::Running, RawConn) {
    let origin = origin(script).await;
    let (proxy, client) = client_to(origin.addr()).await;
    (origin, proxy, client)
}

/// Sends a bodyless request: `method` of `target`.
async fn ask(client: &mut RawConn, method: &str, target: &str) {
    let head = format!("{method} {target} HTTP/1.1\r\nHost: upgate.test\r\n\r\n");
    client.send(head).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_body_framing_arrives_whole_and_the_connection_is_reused() {
    let (origin, _proxy, mut client) =
        serving(|_, _, line| match line.split(' ').nth(1).unwrap_or("") {
            "/chunked" => Act::Answer(vec![
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n5\r\nhel",
                b"lo\r\n7;ext=1\r\n, world\r\n",
                b"0\r\nX-Sum: 12\r\n\r\n",
            ]),
            "/length" => Act::Answer(vec![
                b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello",
                b" world",
            ]),
            "/early" => Act::Answer(vec![
                b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
                b"HTTP/1.1 204 No Content\r\nX-After: hints\r\n\r\n",
            ]),
            _ => Act::Answer(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n"]),
        })
        .await;
    for _ in 0..2 {
        ask(&mut client, "GET", "/chunked").await;
        let res = client.read_response().await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.text(), "hello, world");
    }
    ask(&mut client, "GET", "/length").await;
    assert_eq!(client.read_response().await.text(), "hello world");
    ask(&mut client, "HEAD", "/head").await;
    let head = client.read_head().await;
    assert_eq!(
        head.header("content-length"),
        Some("7"),
        "HEAD keeps the length"
    );
    ask(&mut client, "GET", "/early").await;
    let head = client.read_head().await;
    assert_eq!(head.status, 204, "the 103 is not relayed");
    assert_eq!(head.header("x-after"), Some("hints"));
    ask(&mut client, "GET", "/length").await;
    assert_eq!(
        client.read_response().await.text(),
        "hello world",
        "a HEAD's and a 204's connection carry the next request"
    );
    assert_eq!(
        origin.connections(),
        1,
        "the upstream connection was not reused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_past_a_body_are_never_taken_for_the_next_answer() {
    // Each framing's answer comes with a second, unasked-for answer behind it
    // in the same write: its connection must not carry another request.
    let (origin, _proxy, mut client) =
        serving(|_, _, line| match line.split(' ').nth(1).unwrap_or("") {
            "/length" => Act::Answer(vec![
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL",
            ]),
            "/chunked" => Act::Answer(vec![
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL",
            ]),
            _ => Act::Answer(vec![b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfine"]),
        })
        .await;
    for framing in ["/length", "/chunked"] {
        ask(&mut client, "GET", framing).await;
        assert_eq!(client.read_response().await.text(), "hello", "{framing}");
        ask(&mut client, "GET", "/next").await;
        assert_eq!(
            client.read_response().await.text(),
            "fine",
            "the request after {framing} went to a connection with bytes left over"
        );
    }
    // /length and /chunked each left their connection; the two /next shared one.
    assert_eq!(origin.connections(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_until_close_is_rechunked_and_the_client_stays() {
    let (origin, _proxy, mut client) = serving(|_, _, _| {
        Act::AnswerThenClose(b"HTTP/1.1 200 OK\r\nX-MiXeD-CaSe: kept\r\n\r\nuntil the end")
    })
    .await;
    for _ in 0..2 {
        ask(&mut client, "GET", "/").await;
        let res = client.read_response().await;
        assert_eq!(res.head.header("transfer-encoding"), Some("chunked"));
        assert_eq!(res.head.header("connection"), None);
        assert!(
            res.head.headers.iter().any(|(n, _)| n == "X-MiXeD-CaSe"),
            "header spelling changed: {:?}",
            res.head.headers
        );
        assert_eq!(res.text(), "until the end");
    }
    assert_eq!(origin.connections(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_cut_short_resets_the_client_connection() {
    let (_origin, _proxy, mut client) = serving(|_, _, _| {
        Act::AnswerThenClose(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
    })
    .await;
    ask(&mut client, "GET", "/").await;
    let head = client.read_head().await;
    assert_eq!(head.header("content-length"), Some("100"));
    let rest = client.closed_within(Duration::from_secs(3)).await;
    assert!(rest.len() < 100, "a cut body looked whole: {rest:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_early_frees_the_upstream_connection() {
    let origin = origin(|_, _, _| Act::Hang).await;
    let (_proxy, mut client) = client_to(origin.addr()).await;
    ask(&mut client, "GET", "/slow").await;
    // The request reached the origin, then the client goes.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while origin.connections() == 0 || origin.conn(0).head.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the request never arrived"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(client);
    let closed = tokio::time::timeout(Duration::from_secs(3), origin.closed(0)).await;
    assert!(
        closed.is_ok(),
        "the upstream connection outlived the client"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_answer_to_head_has_no_body() {
    let down = upgate_tests::origin::closed_port().await;
    let (_proxy, mut client) = client_to(down).await;
    ask(&mut client, "HEAD", "/").await;
    let head = client.read_head().await;
    assert_eq!(head.status, 502);
    ask(&mut client, "GET", "/").await;
    let res = client.read_response().await;
    assert_eq!(res.status(), 502, "the HEAD's answer carried a body");
    assert!(res.text().contains("unreachable"), "{}", res.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order_and_close_is_honoured() {
    let (origin, _proxy, mut client) = serving(|_, _, line| {
        Act::Answer(vec![match line.split(' ').nth(1).unwrap_or("") {
            "/one" => b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\none\n",
            "/two" => b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ntwo\n",
            _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
        }])
    })
    .await;
    client
        .send(
            "GET /one HTTP/1.1\r\nHost: upgate.test\r\n\r\n\
             GET /two HTTP/1.1\r\nHost: upgate.test\r\nConnection: close\r\n\r\n\
             GET /never HTTP/1.1\r\nHost: upgate.test\r\n\r\n",
        )
        .await;
    assert_eq!(client.read_response().await.text(), "one\n");
    let two = client.read_response().await;
    assert_eq!(two.text(), "two\n");
    assert_eq!(two.head.header("connection"), Some("close"));
    let rest = client.closed_within(Duration::from_secs(3)).await;
    assert!(rest.is_empty(), "answered after close: {rest:?}");
    let seen = origin.conn(0).head_text() + &String::from_utf8_lossy(&origin.conn(0).after_head);
    assert!(
        !seen.contains("/never"),
        "a request after close went upstream"
    );
    assert!(
        !seen.to_ascii_lowercase().contains("connection:"),
        "the client's Connection header went upstream: {seen}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_connection_the_upstream_closed_is_replaced() {
    // Connection 0 answers one request, then closes without a word; every
    // other connection answers one request and closes after it.
    let (origin, _proxy, mut client) = serving(|conn, i, _| match (conn, i) {
        (0, 0) => Act::Answer(vec![OK]),
        (0, _) => Act::Close,
        _ => Act::AnswerThenClose(OK),
    })
    .await;
    for _ in 0..2 {
        ask(&mut client, "GET", "/").await;
        let res = client.read_response().await;
        assert_eq!(res.status(), 200, "{}", res.text());
    }
    assert_eq!(
        origin.connections(),
        2,
        "the GET was sent again on a new connection"
    );
    // Connection 1 closed after its answer: found closed in the pool, not used.
    ask(&mut client, "GET", "/").await;
    assert_eq!(client.read_response().await.status(), 200);
    assert_eq!(origin.connections(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_given_by_name_is_reached_on_every_connect() {
    // Each answer closes its connection, so each request connects anew, by
    // name (what is kept of a lookup, and for how long: resolve.rs's tests).
    let origin = origin(|_, _, _| Act::AnswerThenClose(OK)).await;
    let port = origin.addr().port();
    let text = proxy::config_text(&[route("/", origin.addr())]).replace(
        &format!("\"{}\"", origin.addr()),
        &format!("\"localhost:{port}\""),
    );
    assert!(text.contains(&format!("[\"localhost:{port}\"]")), "{text}");
    let proxy = proxy::start_toml(&text).await;
    let mut client = RawConn::connect(proxy.addr()).await;
    for _ in 0..2 {
        ask(&mut client, "GET", "/").await;
        assert_eq!(client.read_response().await.status(), 200);
    }
    assert_eq!(origin.connections(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_is_not_sent_twice() {
    let (origin, _proxy, mut client) = serving(|conn, i, _| match (conn, i) {
        (0, 0) => Act::Answer(vec![OK]),
        _ => Act::Close,
    })
    .await;
    ask(&mut client, "GET", "/").await;
    assert_eq!(client.read_response().await.status(), 200);
    client
        .send("POST /act HTTP/1.1\r\nHost: upgate.test\r\nContent-Length: 0\r\n\r\n")
        .await;
    let res = client.read_response().await;
    assert_eq!(res.status(), 502, "{}", res.text());
    assert!(res.text().contains("failed"), "{}", res.text());
    assert_eq!(origin.connections(), 1, "the POST went out again");
    ask(&mut client, "GET", "/").await;
    assert!(
        client.read_response().await.status() >= 200,
        "the client connection serves on after a 502"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_a_quiet_streamed_body_frees_the_upstream_connection() {
    let (origin, _proxy, mut client) = serving(|_, _, _| {
        Act::StartThenHang(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nevent\n\r\n")
    })
    .await;
    ask(&mut client, "GET", "/events").await;
    assert_eq!(client.read_head().await.status, 200);
    assert_eq!(client.read_chunk().await.as_deref(), Some(&b"event\n"[..]));
    drop(client);
    let closed = tokio::time::timeout(Duration::from_secs(3), origin.closed(0)).await;
    assert!(
        closed.is_ok(),
        "the upstream connection outlived the client"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_timeout_too_long_for_the_clock_means_no_timeout() {
    let origin = origin(|_, _, _| Act::Answer(vec![OK])).await;
    let never = route("/", origin.addr()).response_timeout("10000000000000000000s");
    let proxy = proxy::start([never]).await;
    let mut client = RawConn::connect(proxy.addr()).await;
    ask(&mut client, "GET", "/").await;
    assert_eq!(client.read_response().await.text(), "ok\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_head_too_slow_gets_408_and_an_idle_connection_closes_quietly() {
    let origin = origin(|_, _, _| Act::Answer(vec![OK])).await;
    let mut text = proxy::config_text(&[route("/", origin.addr())]);
    text.insert_str(0, "request_head_timeout = \"300ms\"\n");
    let proxy = proxy::start_toml(&text).await;
    // A head begun after a served request and never finished: 408.
    let mut slow = RawConn::connect(proxy.addr()).await;
    ask(&mut slow, "GET", "/").await;
    assert_eq!(slow.read_response().await.text(), "ok\n");
    slow.send("GET / HTTP/1.1\r\nHost: upg").await;
    let rest = slow.closed_within(Duration::from_secs(3)).await;
    assert!(
        rest.starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&rest)
    );
    // A keep-alive connection left idle: closed, nothing written.
    let mut idle = RawConn::connect(proxy.addr()).await;
    ask(&mut idle, "GET", "/").await;
    assert_eq!(idle.read_response().await.text(), "ok\n");
    let started = std::time::Instant::now();
    let rest = idle.closed_within(Duration::from_secs(3)).await;
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    assert!(started.elapsed() >= Duration::from_millis(250));
}
