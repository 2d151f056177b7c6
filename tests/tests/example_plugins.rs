//! Issue 3's example plugins, each against real origins: `origin-allow`
//! (cross-site WebSocket hijacking), `subprotocol-router` (the upstream picked
//! by `Sec-WebSocket-Protocol`) and `failover` (upstream A, then B, then the
//! last answer).

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use upgate_tests::proxy::{self, route, Route};
use upgate_tests::raw::{self, RawConn, RawResponse};
use upgate_tests::{origin, ws};

/// A route to `origin` deciding with the example plugin `name` and its
/// `settings`. The deadline is generous: these tests pin what each plugin
/// decides, and the 10 ms default counts time the OS preempts the worker.
fn example(prefix: &str, origin: SocketAddr, name: &str, settings: &str) -> Route {
    route(prefix, origin)
        .plugin(name)
        .plugin_config(settings)
        .plugin_deadline("2s")
}

/// An upgrade to `path` with the `extra` header lines, on a fresh connection.
async fn upgrade(addr: SocketAddr, path: &str, extra: &str) -> RawResponse {
    let mut client = RawConn::connect(addr).await;
    client.send(raw::upgrade_request(path, extra)).await;
    client.read_response().await
}

/// A whole scripted answer with `status` and a short body.
fn answer(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

// ---- origin-allow ----

const ORIGINS: &str = r#"{ origins = ["http://app.test", "https://*.example.com"] }"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_allow_tunnels_a_listed_origin() {
    let echo = origin::ws_echo().await;
    let proxy = proxy::start([example("/", echo.addr(), "origin_allow", ORIGINS)]).await;
    for allowed in ["http://app.test", "https://chat.eu.example.com"] {
        let headers = [("Origin", allowed)];
        let (mut client, res) = ws::try_connect(proxy.addr(), "/ws", &headers)
            .await
            .unwrap_or_else(|e| panic!("{allowed}: {}", ws::describe(&e)));
        assert_eq!(res.status(), 101, "{allowed}");
        ws::round_trip(&mut client, allowed).await;
    }
    assert_eq!(echo.connections(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_allow_answers_403_to_other_and_missing_origins() {
    let echo = origin::ws_echo().await;
    let proxy = proxy::start([example("/", echo.addr(), "origin_allow", ORIGINS)]).await;
    for extra in [
        "Origin: http://evil.test\r\n",
        "Origin: http://app.test:8080\r\n",
        "Origin: https://example.com\r\n",
        "Origin: null\r\n",
        "",
    ] {
        let res = upgrade(proxy.addr(), "/ws", extra).await;
        assert_eq!(res.status(), 403, "{extra:?}: {}", res.text());
        assert_eq!(res.text(), "origin not allowed\n", "{extra:?}");
    }
    assert_eq!(
        echo.connections(),
        0,
        "a refused upgrade reached the origin"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_allow_lets_a_missing_origin_through_when_told() {
    let echo = origin::ws_echo().await;
    let settings = r#"{ origins = ["http://app.test"], allow_missing = true }"#;
    let proxy = proxy::start([example("/", echo.addr(), "origin_allow", settings)]).await;
    let mut client = ws::connect(proxy.addr(), "/ws").await;
    ws::round_trip(&mut client, "no Origin, allowed").await;
    let res = upgrade(proxy.addr(), "/ws", "Origin: http://evil.test\r\n").await;
    assert_eq!(res.status(), 403);
}

// ---- subprotocol-router ----

const PROTOCOL_ROUTES: &str = r#"{ routes = { mqtt = "broker", "graphql-ws" = "api" } }"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subprotocol_router_picks_the_upstream_by_the_offered_protocol() {
    let (web, broker, api) = (
        origin::ws_echo().await,
        origin::ws_echo().await,
        origin::ws_echo().await,
    );
    let proxy = proxy::start([
        example("/", web.addr(), "subprotocol_router", PROTOCOL_ROUTES)
            .extra_upstream("broker", broker.addr())
            .extra_upstream("api", api.addr()),
    ])
    .await;
    for (offer, path, to, chosen) in [
        ("mqtt", "/mqtt", &broker, "mqtt"),
        ("graphql-ws", "/graphql", &api, "graphql-ws"),
        // The first offered protocol with a route wins; the origin still picks
        // from all offered (the echo origin takes the first).
        ("chat, graphql-ws, mqtt", "/first-routed", &api, "chat"),
    ] {
        let headers = [("Sec-WebSocket-Protocol", offer)];
        let (mut client, res) = ws::try_connect(proxy.addr(), path, &headers)
            .await
            .unwrap_or_else(|e| panic!("{offer}: {}", ws::describe(&e)));
        let protocol = res.headers().get("sec-websocket-protocol").unwrap();
        assert_eq!(protocol.to_str().unwrap(), chosen, "{offer}");
        ws::round_trip(&mut client, offer).await;
        let head = to
            .head_for(path)
            .unwrap_or_else(|| panic!("{offer}: not at the expected origin"));
        assert!(
            head.contains(&format!("\r\nSec-WebSocket-Protocol: {offer}\r\n")),
            "{head}"
        );
    }
    assert_eq!(web.connections(), 0, "the default upstream was used");
    assert_eq!((broker.connections(), api.connections()), (1, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subprotocol_router_answers_400_without_a_routed_protocol_or_default() {
    let (web, broker, api) = (
        origin::ws_echo().await,
        origin::ws_echo().await,
        origin::ws_echo().await,
    );
    let proxy = proxy::start([
        example("/", web.addr(), "subprotocol_router", PROTOCOL_ROUTES)
            .extra_upstream("broker", broker.addr())
            .extra_upstream("api", api.addr()),
    ])
    .await;
    for extra in [
        "Sec-WebSocket-Protocol: chat\r\n",
        "Sec-WebSocket-Protocol: MQTT\r\n",
        "",
    ] {
        let res = upgrade(proxy.addr(), "/", extra).await;
        assert_eq!(res.status(), 400, "{extra:?}: {}", res.text());
        assert!(
            res.text().contains("no supported subprotocol"),
            "{}",
            res.text()
        );
    }
    let none = web.connections() + broker.connections() + api.connections();
    assert_eq!(none, 0, "an unrouted upgrade reached an origin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subprotocol_router_sends_unrouted_upgrades_to_the_default() {
    let (web, broker) = (origin::ws_echo().await, origin::ws_echo().await);
    let settings = r#"{ default = "web", routes = { mqtt = "broker" } }"#;
    let proxy = proxy::start([example("/", web.addr(), "subprotocol_router", settings)
        .extra_upstream("broker", broker.addr())
        .extra_upstream("web", web.addr())])
    .await;
    let mut client = ws::connect(proxy.addr(), "/plain").await;
    ws::round_trip(&mut client, "to the default").await;
    assert!(web.head_for("/plain").is_some());
    assert_eq!(broker.connections(), 0);
}

// ---- failover ----

/// The route's upstream, then `second`.
const FAILOVER: &str = r#"{ upstreams = ["", "second"] }"#;
/// The route's upstream, then `down`.
const THEN_DOWN: &str = r#"{ upstreams = ["", "down"] }"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_skips_an_upstream_that_cannot_be_reached() {
    let down = origin::closed_port().await;
    let echo = origin::ws_echo().await;
    let proxy = proxy::start([
        example("/", down, "failover", FAILOVER).extra_upstream("second", echo.addr())
    ])
    .await;
    let mut client = ws::connect(proxy.addr(), "/ws").await;
    ws::round_trip(&mut client, "via the second upstream").await;
    assert!(echo.head_for("/ws").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_tunnels_via_the_second_when_the_first_answers_503() {
    let first = origin::scripted(answer("503 Service Unavailable", "first is down\n")).await;
    let echo = origin::ws_echo().await;
    let proxy = proxy::start([
        example("/", first.addr(), "failover", FAILOVER).extra_upstream("second", echo.addr())
    ])
    .await;
    let mut client = ws::connect(proxy.addr(), "/ws").await;
    ws::round_trip(&mut client, "via the second upstream").await;
    assert!(
        first.head(0).await.starts_with("GET /ws HTTP/1.1\r\n"),
        "first never asked"
    );
    assert!(echo.head_for("/ws").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_relays_the_last_answer_when_every_upstream_fails() {
    let first = origin::scripted(answer("503 Service Unavailable", "first is down\n")).await;
    let second = origin::scripted(answer("500 Internal Server Error", "second broke\n")).await;
    let down = origin::closed_port().await;
    let proxy = proxy::start([
        example("/answers/", first.addr(), "failover", FAILOVER)
            .extra_upstream("second", second.addr()),
        // An answer is preferred over a later connect error.
        example("/then-down/", first.addr(), "failover", THEN_DOWN).extra_upstream("down", down),
    ])
    .await;
    let res = upgrade(proxy.addr(), "/answers/ws", "").await;
    assert_eq!((res.status(), res.text().as_str()), (500, "second broke\n"));
    assert_eq!((first.connections(), second.connections()), (1, 1));
    let res = upgrade(proxy.addr(), "/then-down/ws", "").await;
    assert_eq!(
        (res.status(), res.text().as_str()),
        (503, "first is down\n")
    );
}
