//! WebSocket traffic through upgate with the default (pass-through) plugin:
//! messages of each kind and size, fragmentation, control frames, close codes
//! both ways, and the handshake headers (subprotocol, permessage-deflate) that
//! must reach each side unchanged.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::time::Duration;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use upgate_tests::proxy::{self, route, Running};
use upgate_tests::raw::{self, RawConn};
use upgate_tests::server::Server;
use upgate_tests::{eventually, frame, origin, python, ws};

/// A WebSocket echo origin behind upgate (pass-through plugin).
async fn echo_behind_proxy() -> (Server, Running) {
    let echo = origin::ws_echo().await;
    let proxy = proxy::start([route("/", echo.addr())]).await;
    (echo, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_messages_are_echoed() {
    let (_echo, proxy) = echo_behind_proxy().await;
    let mut client = ws::connect(proxy.addr(), "/chat").await;
    for text in [
        "hello",
        "ünïcødé ✓",
        "",
        "a second message on the same tunnel",
    ] {
        ws::round_trip(&mut client, text).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_messages_are_echoed() {
    let (_echo, proxy) = echo_behind_proxy().await;
    let mut client = ws::connect(proxy.addr(), "/").await;
    let data = vec![0u8, 1, 2, 0xff, 0xfe, 0, 0x80];
    ws::send(&mut client, Message::binary(data.clone())).await;
    assert_eq!(ws::recv(&mut client).await, Message::binary(data));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_four_mib_message_is_echoed_intact() {
    let (_echo, proxy) = echo_behind_proxy().await;
    let mut client = ws::connect(proxy.addr(), "/").await;
    let data: Vec<u8> = (0..4usize << 20).map(|i| (i * 31 % 251) as u8).collect();
    ws::send(&mut client, Message::binary(data.clone())).await;
    match ws::recv(&mut client).await {
        Message::Binary(got) => {
            assert_eq!(got.len(), data.len());
            assert!(got == data, "the 4 MiB echo differs from what was sent");
        }
        other => panic!("expected the binary echo, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragments_with_an_interleaved_ping_pass_through() {
    let (_echo, proxy) = echo_behind_proxy().await;
    let mut client = RawConn::connect(proxy.addr()).await;
    client.send(raw::upgrade_request("/", "")).await;
    assert_eq!(client.read_head().await.status, 101);
    // Each fragment in its own write, a ping between two of them (RFC 6455 §5.4).
    let parts = [
        frame::masked(frame::TEXT, false, b"hel"),
        frame::masked(frame::CONTINUATION, false, b"lo "),
        frame::masked(frame::PING, true, b"mid"),
        frame::masked(frame::CONTINUATION, true, b"world"),
    ];
    for part in parts {
        client.send(part).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pong = client.read_frame().await;
    assert_eq!((pong.opcode, pong.text().as_str()), (frame::PONG, "mid"));
    let echo = client.read_frame().await;
    assert_eq!((echo.opcode, echo.fin), (frame::TEXT, true));
    assert_eq!(echo.text(), "hello world");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ping_is_answered_with_its_pong() {
    let (_echo, proxy) = echo_behind_proxy().await;
    let mut client = ws::connect(proxy.addr(), "/").await;
    ws::send(&mut client, Message::Ping("are you there".into())).await;
    assert_eq!(
        ws::recv(&mut client).await,
        Message::Pong("are you there".into())
    );
    ws::round_trip(&mut client, "still echoing").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clients_close_code_reaches_the_origin() {
    let (echo, proxy) = echo_behind_proxy().await;
    let mut client = ws::connect(proxy.addr(), "/").await;
    ws::round_trip(&mut client, "before closing").await;
    let frame = CloseFrame {
        code: CloseCode::from(4001),
        reason: "client bye".into(),
    };
    upgate_tests::within("client close", client.close(Some(frame)))
        .await
        .unwrap();
    let seen = eventually("the origin sees the close frame", || echo.conn(0).ws_close).await;
    assert_eq!(seen, Some((4001, "client bye".to_string())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_origins_close_code_reaches_the_client() {
    let (_echo, proxy) = echo_behind_proxy().await;
    let mut client = ws::connect(proxy.addr(), "/").await;
    ws::send(&mut client, Message::text("close 4002")).await;
    match ws::recv(&mut client).await {
        Message::Close(Some(f)) => {
            assert_eq!(u16::from(f.code), 4002);
            assert_eq!(f.reason.as_str(), "bye");
        }
        other => panic!("expected a close frame with code 4002, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subprotocol_negotiation_passes_through() {
    let (echo, proxy) = echo_behind_proxy().await;
    let offer = [("Sec-WebSocket-Protocol", "chat.v2, chat.v1")];
    let (mut client, res) = ws::try_connect(proxy.addr(), "/", &offer).await.unwrap();
    assert_eq!(res.headers()["sec-websocket-protocol"], "chat.v2");
    let head = echo.head(0).await;
    assert!(
        head.contains("\r\nSec-WebSocket-Protocol: chat.v2, chat.v1\r\n"),
        "the origin did not get the client's offer as sent:\n{head}"
    );
    ws::round_trip(&mut client, "with a subprotocol").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permessage_deflate_offer_and_answer_pass_through_exactly() {
    let answer = "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n";
    let origin = origin::scripted(origin::switching("websocket", raw::KEY, answer, b"")).await;
    let proxy = proxy::start([route("/", origin.addr())]).await;
    let mut client = RawConn::connect(proxy.addr()).await;
    let offer = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";
    client.send(raw::upgrade_request("/", offer)).await;
    let head = client.read_head().await;
    assert_eq!(head.status, 101);
    assert_eq!(
        head.header("sec-websocket-extensions"),
        Some("permessage-deflate; server_no_context_takeover")
    );
    let seen = origin.head(0).await;
    assert!(
        seen.contains(&format!("\r\n{offer}")),
        "the origin did not get the offer as sent:\n{seen}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_frames_pass_through_between_python_peers() {
    let (_origin, port) = python::deflate_origin().await;
    let upstream = format!("127.0.0.1:{port}").parse().unwrap();
    let proxy = proxy::start([route("/", upstream)]).await;
    let out = python::deflate_client(&format!("ws://{}/deflate", proxy.addr())).await;
    assert!(out.lines().any(|l| l == "ok"), "client output: {out}");
}
