//! TLS between upgate and its upstreams, with certificates made in each test
//! by a throwaway CA: plain clients to `tls` upstreams (verified against a
//! configured CA, connections pooled, a certificate from another CA refused
//! with 502), and pass-through listeners that route the client's own TLS by
//! SNI to an upstream without terminating it. TLS terminated by upgate is in
//! `tls_termination.rs`.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Error as WsError;
use upgate_tests::files::toml_path;
use upgate_tests::proxy::start_toml;
use upgate_tests::raw::RawConn;
use upgate_tests::tls::{self, Ca};
use upgate_tests::{eventually, http_origin, origin, within, ws};

/// upgate config with one plain listener and routes `/named` and `/ip` to
/// `tls` upstreams trusting `ca_path`: one by `server_name`, one by IP.
fn wss_upstreams_config(ca_path: &Path, named: &str, by_ip: &str) -> String {
    format!(
        r#"
[[listeners]]
address = "127.0.0.1:0"

[upstreams.named]
addresses = ["{named}"]
tls = {{ server_name = "origin.test", ca = {ca} }}

[upstreams.by-ip]
addresses = ["{by_ip}"]
tls = {{ ca = {ca} }}

[[routes]]
path_prefix = "/named"
upstream = "named"

[[routes]]
path_prefix = "/ip"
upstream = "by-ip"
"#,
        ca = toml_path(ca_path),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_client_to_wss_upstreams() {
    let ca = Ca::new("upstream CA");
    let named = origin::wss_echo(tls::server_config(&ca.issue(&["origin.test"]))).await;
    let by_ip = origin::wss_echo(tls::server_config(&ca.issue(&["127.0.0.1"]))).await;
    let config = wss_upstreams_config(
        &ca.ca_path(),
        &named.addr().to_string(),
        &by_ip.addr().to_string(),
    );
    let proxy = start_toml(&config).await;
    let mut client = ws::connect(proxy.addr(), "/named").await;
    ws::round_trip(&mut client, "to a wss upstream by name").await;
    let mut client = ws::connect(proxy.addr(), "/ip/x").await;
    ws::round_trip(&mut client, "to a wss upstream by address").await;
    assert!(named.head(0).await.starts_with("GET /named HTTP/1.1\r\n"));
    assert!(by_ip.head(0).await.starts_with("GET /ip/x HTTP/1.1\r\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_requests_reuse_pooled_tls_upstream_connections() {
    let ca = Ca::new("https upstream CA");
    let web = http_origin::https(tls::server_config(&ca.issue(&["origin.test"]))).await;
    let config = wss_upstreams_config(&ca.ca_path(), &web.addr().to_string(), "127.0.0.1:9");
    let proxy = start_toml(&config).await;
    let mut client = RawConn::connect(proxy.addr()).await;
    for path in ["/named/1", "/named/2"] {
        client
            .send(format!("GET {path} HTTP/1.1\r\nHost: upgate.test\r\n\r\n"))
            .await;
        let res = client.read_response().await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.text(), "hello from origin\n");
    }
    let seen = web.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        (seen[0].conn, seen[1].conn),
        (0, 0),
        "one pooled TLS connection"
    );
    assert_eq!(web.connections(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_certificate_from_another_ca_is_refused_with_502() {
    let trusted = Ca::new("the CA upgate trusts");
    let other = Ca::new("some other CA");
    let echo = origin::wss_echo(tls::server_config(&other.issue(&["origin.test"]))).await;
    let web = http_origin::https(tls::server_config(&other.issue(&["origin.test"]))).await;
    let config = wss_upstreams_config(
        &trusted.ca_path(),
        &echo.addr().to_string(),
        &web.addr().to_string(),
    );
    let proxy = start_toml(&config).await;
    match ws::try_connect(proxy.addr(), "/named", &[]).await {
        Err(WsError::Http(res)) => assert_eq!(res.status(), 502),
        Err(e) => panic!("expected a 502, got {e}"),
        Ok(_) => panic!("a tunnel opened to an upstream with an untrusted certificate"),
    }
    let mut client = RawConn::connect(proxy.addr()).await;
    client
        .send("GET /ip HTTP/1.1\r\nHost: upgate.test\r\n\r\n")
        .await;
    assert_eq!(client.read_response().await.status(), 502);
    // The origins saw handshakes, but never a request.
    eventually("both origins saw a connection", || {
        (echo.connections() >= 1 && web.connections() >= 1).then_some(())
    })
    .await;
    assert!(echo.conn(0).head.is_empty());
    assert!(web.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_routes_by_sni_without_terminating() {
    let ca = Ca::new("pass-through CA");
    let a = ca.issue(&["a.test"]);
    let b = ca.issue(&["b.test", "127.0.0.1"]);
    let origin_a = origin::wss_echo(tls::server_config(&a)).await;
    let origin_b = origin::wss_echo(tls::server_config(&b)).await;
    // No certificate anywhere in upgate's config: it cannot terminate.
    let proxy = start_toml(&format!(
        r#"
[[listeners]]
address = "127.0.0.1:0"
passthrough = {{ names = {{ "a.test" = "a", "*.b.test" = "b", "b.test" = "b" }} }}

[[listeners]]
address = "127.0.0.1:0"
passthrough = {{ default = "b", idle_timeout = "5s" }}

[upstreams.a]
addresses = ["{a}"]

[upstreams.b]
addresses = ["{b}"]
"#,
        a = origin_a.addr(),
        b = origin_b.addr(),
    ))
    .await;
    let config = ca.client_config();
    let (by_name, by_default) = (proxy.listener(0), proxy.listener(1));

    let (mut ws_a, served) = tls::wss_connect(by_name, "a.test", "/a", config.clone()).await;
    assert_eq!(served, a.der, "the handshake was with origin a itself");
    ws::round_trip(&mut ws_a, "to a").await;
    let (mut ws_b, served) = tls::wss_connect(by_name, "b.test", "/b", config.clone()).await;
    assert_eq!(served, b.der, "the handshake was with origin b itself");
    ws::round_trip(&mut ws_b, "to b").await;
    assert!(origin_a.head(0).await.starts_with("GET /a HTTP/1.1\r\n"));
    assert!(origin_b.head(0).await.starts_with("GET /b HTTP/1.1\r\n"));
    assert_eq!((origin_a.connections(), origin_b.connections()), (1, 1));

    // A name with no upstream and no default: refused during the handshake.
    assert!(tls::connect(by_name, "c.test", config.clone())
        .await
        .is_err());
    // No SNI on the listener with a default.
    let (mut ws_d, served) = tls::wss_connect(by_default, "127.0.0.1", "/d", config).await;
    assert_eq!(served, b.der);
    ws::round_trip(&mut ws_d, "by default").await;
    assert_eq!((origin_a.connections(), origin_b.connections()), (1, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_closes_on_anything_but_a_client_hello() {
    let echo = origin::ws_echo().await;
    let proxy = start_toml(&format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\npassthrough = {{ default = \"echo\" }}\n\
         [upstreams.echo]\naddresses = [\"{}\"]\n",
        echo.addr()
    ))
    .await;
    let mut plain = RawConn::connect(proxy.addr()).await;
    plain.send("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n").await;
    assert!(plain.closed_within(Duration::from_secs(5)).await.is_empty());
    // A handshake record header claiming a 1 MiB hello.
    let mut big = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    big.write_all(&[22, 3, 1, 0, 4, 1, 0x10, 0, 0])
        .await
        .unwrap();
    let mut rest = Vec::new();
    within("close after an oversized hello", big.read_to_end(&mut rest))
        .await
        .unwrap();
    assert!(rest.is_empty());
    assert_eq!(echo.connections(), 0, "nothing reached the upstream");
}
