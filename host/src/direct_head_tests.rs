// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use super::*;

fn with_request<T>(raw: &str, f: impl FnOnce(&httparse::Request) -> T) -> T {
    let mut slots = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut slots);
    assert!(req.parse(raw.as_bytes()).unwrap().is_complete());
    f(&req)
}

fn with_response<T>(raw: &str, f: impl FnOnce(&httparse::Response) -> T) -> T {
    let mut slots = [httparse::EMPTY_HEADER; 32];
    let mut res = httparse::Response::new(&mut slots);
    assert!(res.parse(raw.as_bytes()).unwrap().is_complete());
    f(&res)
}

fn client() -> SocketAddr {
    "192.0.2.7:5555".parse().unwrap()
}

#[test]
fn only_bodyless_http11_requests_qualify() {
    let ok = |raw: &str| with_request(raw, |r| Shape::of(r).direct(r));
    assert!(ok("GET /a?b HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert!(ok(
        "DELETE /a HTTP/1.1\r\nhost: x\r\nContent-Length: 0\r\n\r\n"
    ));
    assert!(!ok("GET /a HTTP/1.0\r\nHost: x\r\n\r\n"), "HTTP/1.0");
    assert!(!ok("GET /a HTTP/1.1\r\n\r\n"), "no Host");
    assert!(
        !ok("GET /a HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n"),
        "two Hosts"
    );
    assert!(
        !ok("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n"),
        "a body"
    );
    assert!(!ok(
        "POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    ));
    assert!(
        !ok("GET /a HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\n\r\n"),
        "Upgrade"
    );
    assert!(!ok(
        "GET /a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n"
    ));
    assert!(!ok("CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert!(
        !ok("GET http://x/a HTTP/1.1\r\nHost: x\r\n\r\n"),
        "absolute form"
    );
}

#[test]
fn the_upstream_head_keeps_spelling_and_drops_hop_by_hop() {
    let raw = "GET /p?q=1 HTTP/1.1\r\nHost: app.test\r\nX-Custom: A b\r\n\
               Connection: keep-alive, X-Hop\r\nX-Hop: secret\r\nKeep-Alive: 5\r\n\
               TE: trailers\r\nX-Forwarded-For: 203.0.113.9\r\nX-Forwarded-For: 10.0.0.1\r\n\
               X-Forwarded-Proto: https\r\nForwarded: for=203.0.113.9\r\n\r\n";
    let req = with_request(raw, |r| plain_request(r, client(), "http"));
    let text = String::from_utf8(req.upstream_head).unwrap();
    assert_eq!(
        text,
        "GET /p?q=1 HTTP/1.1\r\nHost: app.test\r\nX-Custom: A b\r\n\
         Forwarded: for=203.0.113.9\r\n\
         X-Forwarded-For: 203.0.113.9, 192.0.2.7\r\nX-Forwarded-Proto: http\r\n\
         Forwarded: for=192.0.2.7;proto=http;host=\"app.test\"\r\n\r\n"
    );
    assert!(req.idempotent && !req.head_method && !req.close);
    let req = with_request(
        "HEAD / HTTP/1.1\r\nHost: x\r\nconnection: Close\r\n\r\n",
        |r| plain_request(r, client(), "https"),
    );
    assert!(req.head_method && req.close);
    let text = String::from_utf8(req.upstream_head).unwrap();
    assert!(!text.to_ascii_lowercase().contains("connection"), "{text}");
    assert!(text.contains("X-Forwarded-Proto: https\r\n"), "{text}");
    let post = with_request("POST / HTTP/1.1\r\nHost: x\r\n\r\n", |r| {
        plain_request(r, client(), "http")
    });
    assert!(!post.idempotent, "POST is not sent twice");
}

#[test]
fn the_client_head_keeps_framing_and_drops_hop_by_hop() {
    let raw = "HTTP/1.1 200 Fine\r\nContent-Type: text/plain\r\nConnection: X-Up\r\n\
               X-Up: 1\r\nKeep-Alive: timeout=5\r\nContent-Length: 5\r\n\r\n";
    let head = with_response(raw, |r| client_head(r, false, false)).unwrap();
    assert_eq!(
        String::from_utf8(head.bytes).unwrap(),
        "HTTP/1.1 200 Fine\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n"
    );
    assert_eq!(head.framing, Framing::Length(5));
    assert!(head.reusable && !head.close);

    let chunked = "HTTP/1.1 200 \r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n";
    let head = with_response(chunked, |r| client_head(r, false, true)).unwrap();
    assert_eq!(head.framing, Framing::Chunked);
    assert!(head.close, "the client asked to close");
    assert!(
        !head.reusable,
        "a coding beside a length: not trusted again"
    );
    assert_eq!(
        String::from_utf8(head.bytes).unwrap(),
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        "Content-Length dropped beside Transfer-Encoding; the reason filled in"
    );
}

#[test]
fn framing_follows_rfc_9112() {
    let framing = |raw: &str, head: bool| {
        with_response(raw, |r| {
            client_head(r, head, false).map(|h| (h.framing, h.reusable, h.close))
        })
    };
    assert_eq!(
        framing("HTTP/1.1 200 OK\r\n\r\n", false),
        Ok((Framing::Eof, false, false)),
        "no length: until the upstream closes, re-chunked for the client, who stays"
    );
    assert_eq!(
        framing("HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n", true),
        Ok((Framing::Empty, true, false)),
        "a response to HEAD"
    );
    for status in ["204 No Content", "304 Not Modified"] {
        let raw = format!("HTTP/1.1 {status}\r\nContent-Length: 7\r\n\r\n");
        assert_eq!(framing(&raw, false).unwrap().0, Framing::Empty);
    }
    assert_eq!(
        framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false),
        Ok((Framing::Eof, false, true)),
        "a coding other than chunked last: until close, for the client too"
    );
    assert_eq!(
        framing(
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\n",
            false
        ),
        Ok((Framing::Length(3), false, false)),
        "the upstream closes: its connection is not reused"
    );
    let http10 = framing("HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n", false).unwrap();
    assert!(!http10.1, "an HTTP/1.0 upstream's connection is not reused");
    assert!(framing(
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        false
    )
    .is_err());
    assert!(framing("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", false).is_err());
    assert_eq!(
        framing(
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
            false
        )
        .unwrap()
        .0,
        Framing::Length(3)
    );
}

#[test]
fn a_body_until_close_is_rechunked_and_odd_framing_is_not_trusted() {
    let head = with_response("HTTP/1.1 200 OK\r\nX: y\r\n\r\n", |r| {
        client_head(r, false, false)
    })
    .unwrap();
    assert!(head.rechunk && !head.close && !head.reusable);
    assert_eq!(
        String::from_utf8(head.bytes).unwrap(),
        "HTTP/1.1 200 OK\r\nX: y\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    // A coding beside a length: the coding frames it, the connection is not reused.
    let both = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
    let head = with_response(both, |r| client_head(r, false, false)).unwrap();
    assert_eq!(head.framing, Framing::Chunked);
    assert!(!head.reusable);
    // A `Transfer-Encoding` naming nothing: the length frames it, and the
    // client gets the length, not the empty header.
    let empty = "HTTP/1.1 200 OK\r\nTransfer-Encoding: ,\r\nContent-Length: 2\r\n\r\n";
    let head = with_response(empty, |r| client_head(r, false, false)).unwrap();
    assert_eq!(head.framing, Framing::Length(2));
    assert_eq!(
        String::from_utf8(head.bytes).unwrap(),
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
    );
}

#[test]
fn plain_upgrades_are_bodyless_gets_asking_to_upgrade() {
    let up = |raw: &str| with_request(raw, |r| Shape::of(r).plain_upgrade(r));
    let ws = "Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n";
    assert!(up(&format!("GET /ws HTTP/1.1\r\nHost: x\r\n{ws}\r\n")));
    assert!(up(&format!(
        "GET /ws HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n{ws}\r\n"
    )));
    assert!(
        !up(&format!("POST /ws HTTP/1.1\r\nHost: x\r\n{ws}\r\n")),
        "POST"
    );
    assert!(
        !up(&format!(
            "GET /ws HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 0\r\n{ws}\r\n"
        )),
        "two lengths"
    );
    assert!(
        !up("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n"),
        "Connection does not name upgrade"
    );
    assert!(
        !up("GET /ws HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\n\r\n"),
        "no Upgrade"
    );
    let direct = |raw: &str| with_request(raw, |r| Shape::of(r).direct(r));
    assert!(!direct(&format!("GET /ws HTTP/1.1\r\nHost: x\r\n{ws}\r\n")));
    assert!(direct(
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n"
    ));
}
