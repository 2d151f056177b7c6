//! The plugins decide: the probe's reject and rewrite modes, the example
//! plugins (token-auth, header-case, hello), and a plugin refusing its settings
//! at start-up.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use upgate_tests::frame;
use upgate_tests::proxy::{self, route};
use upgate_tests::raw::{self, RawConn};
use upgate_tests::{origin, ws};

/// The token-auth route's settings.
const TOKENS: &str = r#"{ tokens = ["s3cret"] }"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_reject_answers_403_without_touching_the_origin() {
    let echo = origin::ws_echo().await;
    let proxy = proxy::start([route("/", echo.addr()).probe("reject")]).await;
    let mut client = RawConn::connect(proxy.addr()).await;
    client.send(raw::upgrade_request("/", "")).await;
    let res = client.read_response().await;
    assert_eq!(res.status(), 403);
    assert_eq!(res.head.header("x-probe"), Some("rejected"));
    assert_eq!(res.text(), "rejected by probe");
    assert_eq!(echo.connections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_rewrite_reaches_the_origin_spelled_exactly() {
    let echo = origin::ws_echo().await;
    let proxy = proxy::start([route("/", echo.addr()).probe("rewrite")]).await;
    let mut client = ws::connect(proxy.addr(), "/").await;
    ws::round_trip(&mut client, "rewritten, still a tunnel").await;
    let head = echo.head(0).await;
    for line in [
        "\r\nUPGRADE: websocket\r\n",
        "\r\nconnection: UPGRADE\r\n",
        "\r\nX-Probe-Header: Exact-Case\r\n",
        "\r\nx-lower-case: 1\r\n",
    ] {
        assert!(
            head.contains(line),
            "no {line:?} in the origin's head:\n{head}"
        );
    }
    for gone in ["\r\nUpgrade:", "\r\nConnection:"] {
        assert!(
            !head.contains(gone),
            "{gone:?} should have been replaced:\n{head}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_auth_answers_401_without_a_valid_token() {
    let echo = origin::ws_echo().await;
    let proxy = proxy::start([route("/", echo.addr())
        .plugin("token_auth")
        .plugin_config(TOKENS)])
    .await;
    for extra in ["", "Authorization: Bearer wrong\r\n"] {
        let mut client = RawConn::connect(proxy.addr()).await;
        client.send(raw::upgrade_request("/chat", extra)).await;
        let res = client.read_response().await;
        assert_eq!(res.status(), 401, "with {extra:?}");
        assert_eq!(
            res.head.header("www-authenticate"),
            Some("Bearer realm=\"upgate\"")
        );
    }
    let mut client = RawConn::connect(proxy.addr()).await;
    client
        .send(raw::upgrade_request("/chat?access_token=wrong", ""))
        .await;
    assert_eq!(client.read_response().await.status(), 401);
    assert_eq!(echo.connections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_auth_lets_a_header_token_through() {
    let echo = origin::ws_echo().await;
    let proxy = proxy::start([route("/", echo.addr())
        .plugin("token_auth")
        .plugin_config(TOKENS)])
    .await;
    let auth = [("Authorization", "Bearer s3cret")];
    let (mut client, res) = ws::try_connect(proxy.addr(), "/chat", &auth).await.unwrap();
    assert_eq!(res.status(), 101);
    ws::round_trip(&mut client, "authorized").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_auth_lets_a_query_token_through_and_strips_it() {
    let echo = origin::ws_echo().await;
    let proxy = proxy::start([route("/", echo.addr())
        .plugin("token_auth")
        .plugin_config(TOKENS)])
    .await;
    let mut client = ws::connect(proxy.addr(), "/chat?access_token=s3cret&room=1").await;
    ws::round_trip(&mut client, "authorized by query").await;
    let head = echo.head(0).await;
    assert!(
        head.starts_with("GET /chat?room=1 HTTP/1.1\r\n"),
        "the token was not stripped:\n{head}"
    );
    assert!(
        !head.contains("s3cret"),
        "the token reached the origin:\n{head}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_case_spells_names_and_values_as_configured() {
    let echo = origin::ws_echo().await;
    let settings = r#"{ upgrade_value = "WebSocket", header_names = "title", names = { "sec-websocket-key" = "Sec-WebSocket-Key" } }"#;
    let proxy = proxy::start([route("/", echo.addr())
        .plugin("header_case")
        .plugin_config(settings)])
    .await;
    let mut client = RawConn::connect(proxy.addr()).await;
    let request = format!(
        "GET / HTTP/1.1\r\nhost: upgate.test\r\nconnection: upgrade\r\nupgrade: websocket\r\n\
         sec-websocket-version: 13\r\nsec-websocket-key: {}\r\n\r\n",
        raw::KEY
    );
    client.send(request).await;
    assert_eq!(client.read_head().await.status, 101);
    let head = echo.head(0).await;
    for line in [
        "\r\nHost: upgate.test\r\n".to_string(),
        "\r\nConnection: Upgrade\r\n".to_string(),
        "\r\nUpgrade: WebSocket\r\n".to_string(),
        "\r\nSec-Websocket-Version: 13\r\n".to_string(),
        format!("\r\nSec-WebSocket-Key: {}\r\n", raw::KEY),
    ] {
        assert!(
            head.contains(&line),
            "no {line:?} in the origin's head:\n{head}"
        );
    }
    client
        .send(frame::masked(frame::TEXT, true, b"picky backend"))
        .await;
    assert_eq!(client.read_frame().await.text(), "picky backend");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_plugin_tunnels() {
    let echo = origin::ws_echo().await;
    let proxy = proxy::start([route("/", echo.addr()).plugin("hello")]).await;
    let mut client = ws::connect(proxy.addr(), "/hi").await;
    ws::round_trip(&mut client, "hello through a plugin").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_respond_after_send_answers_and_never_tunnels() {
    let echo = origin::ws_echo().await;
    let proxy = proxy::start([route("/", echo.addr()).probe("respond-after-send")]).await;
    let mut client = RawConn::connect(proxy.addr()).await;
    client.send(raw::upgrade_request("/", "")).await;
    let res = client.read_response().await;
    assert_eq!((res.status(), res.text().as_str()), (200, "probe-ok"));
    echo.head(0).await;
    echo.closed(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_refusing_its_settings_stops_the_start() {
    let echo = origin::ws_echo().await;
    let text = proxy::config_text(&[route("/", echo.addr()).probe("fail-load")]);
    let err = match proxy::try_start(&text).await {
        Ok(_) => panic!("upgate started with a plugin that refused its settings"),
        Err(e) => e,
    };
    assert!(err.starts_with("routes[0].plugin: "), "{err}");
    assert!(err.contains("load refused"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_header_block_from_a_plugin_is_an_invalid_request() {
    let echo = origin::ws_echo().await;
    let proxy = proxy::start([route("/", echo.addr()).probe("bad-block")]).await;
    let mut client = RawConn::connect(proxy.addr()).await;
    client.send(raw::upgrade_request("/", "")).await;
    let res = client.read_response().await;
    assert_eq!(res.status(), 200, "{}", res.text());
    assert_eq!(
        res.text(),
        "refused: malformed header block: shorter than its length table"
    );
    assert_eq!(echo.connections(), 0, "nothing may reach the upstream");
}

#[test]
fn one_page_plugins_reset_by_memset_and_larger_ones_by_page_scan() {
    let runtime = upgate::plugin::PluginRuntime::global();
    let load = |name: &str| {
        let bytes = std::fs::read(upgate_tests::plugin(name)).unwrap();
        runtime.load(name, &bytes).unwrap()
    };
    // Built with the workspace's 32 KiB stack: one wasm page.
    assert_eq!(load("passthrough").memory_reset(), "memset");
    // Its data and WASI's allocator need a second page.
    assert_eq!(load("probe").memory_reset(), "page-scan");
}
