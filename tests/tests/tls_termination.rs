//! TLS terminated by upgate, with certificates made in each test by a
//! throwaway CA: wss:// clients on a TLS listener (certificate chosen by SNI,
//! the plugin told scheme and server name), plain HTTP refused on it, the
//! certificate rotated by a config reload or by rewriting its files, and TLS tunnels (terminated and
//! passed through) closed by a drain. TLS to upstreams and pass-through
//! routing are in `tls_upstreams.rs`.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;
use upgate_tests::files::toml_path;
use upgate_tests::proxy::start_toml;
use upgate_tests::raw::RawConn;
use upgate_tests::tls::{self, Ca};
use upgate_tests::{eventually, http_origin, origin, plugin, within, ws};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wss_client_through_a_tls_listener_to_a_plain_origin() {
    let ca = Ca::new("wss test CA");
    let leaf = ca.issue(&["chat.test"]);
    let echo = origin::ws_echo().await;
    let proxy = start_toml(&format!(
        r#"
[[listeners]]
address = "127.0.0.1:0"
tls = {{ certs = [{{ cert = {cert}, key = {key}, names = ["chat.test"] }}] }}

[upstreams.echo]
addresses = ["{echo}"]

[[routes]]
upstream = "echo"
plugin = {probe}
plugin_config = {{ mode = "peer" }}
"#,
        cert = toml_path(&leaf.cert_path),
        key = toml_path(&leaf.key_path),
        echo = echo.addr(),
        probe = toml_path(&plugin("probe")),
    ))
    .await;

    let (mut client, served) =
        tls::wss_connect(proxy.addr(), "chat.test", "/chat", ca.client_config()).await;
    assert_eq!(served, leaf.der);
    let alpn = client.get_ref().get_ref().1.alpn_protocol();
    assert_eq!(alpn, Some(&b"http/1.1"[..]));
    for text in ["hello over tls", "", "ünïcødé"] {
        ws::round_trip(&mut client, text).await;
    }
    let head = echo.head(0).await;
    assert!(head.contains("X-Forwarded-Proto: https\r\n"), "{head}");
    assert!(head.contains("X-Probe-Scheme: https\r\n"), "{head}");
    assert!(head.contains("X-Probe-Sni: chat.test\r\n"), "{head}");
    assert!(
        head.contains("Forwarded: for=127.0.0.1;proto=https\r\n"),
        "{head}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_picks_the_certificate_and_plain_requests_say_https() {
    let ca = Ca::new("sni test CA");
    let a = ca.issue(&["a.test", "127.0.0.1"]);
    let b = ca.issue(&["b.test", "x.b.test"]);
    let web = http_origin::http().await;
    let proxy = start_toml(&format!(
        r#"
[[listeners]]
address = "127.0.0.1:0"
[[listeners.tls.certs]]
cert = {a_cert}
key = {a_key}
names = ["a.test"]
[[listeners.tls.certs]]
cert = {b_cert}
key = {b_key}
names = ["b.test", "*.b.test"]

[upstreams.web]
addresses = ["{web}"]

[[routes]]
upstream = "web"
"#,
        a_cert = toml_path(&a.cert_path),
        a_key = toml_path(&a.key_path),
        b_cert = toml_path(&b.cert_path),
        b_key = toml_path(&b.key_path),
        web = web.addr(),
    ))
    .await;
    let config = ca.client_config();
    for (sni, want) in [
        ("a.test", &a.der),
        ("b.test", &b.der),
        ("x.b.test", &b.der),
        ("127.0.0.1", &a.der), // no SNI at all: the first certificate
    ] {
        let conn = tls::connect(proxy.addr(), sni, config.clone())
            .await
            .unwrap();
        assert_eq!(&tls::served_cert(&conn), want, "certificate for {sni}");
    }
    let conn = tls::connect(proxy.addr(), "b.test", config).await.unwrap();
    let answer = tls::get(conn, "b.test", "/page").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("hello from origin\n"), "{answer}");
    let seen = web.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].header("x-forwarded-proto"), Some("https"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_listener_refuses_plain_http_and_keeps_serving() {
    let ca = Ca::new("plain-on-tls CA");
    let leaf = ca.issue(&["a.test"]);
    let echo = origin::ws_echo().await;
    let proxy = start_toml(&format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\ntls = {{ certs = [{{ cert = {}, key = {} }}] }}\n\
         [upstreams.echo]\naddresses = [\"{}\"]\n[[routes]]\nupstream = \"echo\"\n",
        toml_path(&leaf.cert_path),
        toml_path(&leaf.key_path),
        echo.addr()
    ))
    .await;
    let mut plain = RawConn::connect(proxy.addr()).await;
    plain.send("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n").await;
    let got = plain.closed_within(Duration::from_secs(5)).await;
    assert!(!got.starts_with(b"HTTP/"), "plain HTTP got an HTTP answer");
    let (mut client, _) = tls::wss_connect(proxy.addr(), "a.test", "/", ca.client_config()).await;
    ws::round_trip(&mut client, "still serving").await;
}

/// Writes to `path` a config with one TLS listener serving `cert` and `key`
/// in front of the WebSocket echo at `echo`.
fn write_tls_config(path: &Path, cert: &Path, key: &Path, echo: impl std::fmt::Display) {
    let text = format!(
        "[[listeners]]\naddress = \"127.0.0.1:0\"\ntls = {{ certs = [{{ cert = {}, key = {} }}] }}\n\
         [upstreams.echo]\naddresses = [\"{echo}\"]\n[[routes]]\nupstream = \"echo\"\n",
        toml_path(cert),
        toml_path(key),
    );
    std::fs::write(path, text).unwrap();
}

/// Starts upgate from the config file at `path` (so it watches that file and its TLS files).
async fn start_from_file(path: &Path) -> upgate::Proxy {
    let config = upgate::Config::load(path).unwrap();
    within("proxy start", upgate::Proxy::start(config))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_reload_rotates_the_certificate() {
    let ca = Ca::new("rotation CA");
    let (old, new) = (ca.issue(&["a.test"]), ca.issue(&["a.test"]));
    let echo = origin::ws_echo().await;
    let config_path = ca.dir().join("upgate.toml");
    let write_config = |leaf: &tls::Leaf| {
        write_tls_config(&config_path, &leaf.cert_path, &leaf.key_path, echo.addr())
    };
    write_config(&old);
    let proxy = start_from_file(&config_path).await;
    let addr = proxy.local_addrs()[0];
    let (mut before, served) = tls::wss_connect(addr, "a.test", "/", ca.client_config()).await;
    assert_eq!(served, old.der);
    write_config(&new);
    within("reload", proxy.reload()).await.unwrap();
    let (mut after, served) = tls::wss_connect(addr, "a.test", "/", ca.client_config()).await;
    assert_eq!(served, new.der, "a new connection gets the new certificate");
    ws::round_trip(&mut after, "new").await;
    ws::round_trip(&mut before, "the open tunnel is untouched").await;
    within("proxy shutdown", proxy.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewritten_certificate_file_is_served_without_any_reload_command() {
    let ca = Ca::new("renewal CA");
    let (old, new) = (ca.issue(&["a.test"]), ca.issue(&["a.test"]));
    let echo = origin::ws_echo().await;
    // The files the config names, as a renewal tool would rewrite them in place,
    // in a folder of their own (not the config file's, which is watched anyway).
    let live = ca.dir().join("live");
    std::fs::create_dir_all(&live).unwrap();
    let (cert, key) = (live.join("cert.pem"), live.join("key.pem"));
    std::fs::copy(&old.cert_path, &cert).unwrap();
    std::fs::copy(&old.key_path, &key).unwrap();
    let config_path = ca.dir().join("upgate.toml");
    write_tls_config(&config_path, &cert, &key, echo.addr());
    let proxy = start_from_file(&config_path).await;
    let addr = proxy.local_addrs()[0];
    let (mut before, served) = tls::wss_connect(addr, "a.test", "/", ca.client_config()).await;
    assert_eq!(served, old.der);
    let generation = proxy.generation();
    // Certificate first, key a moment later: the renewal must not be half applied.
    std::fs::copy(&new.cert_path, &cert).unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    std::fs::copy(&new.key_path, &key).unwrap();
    let mut served_new = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (mut ws, served) = tls::wss_connect(addr, "a.test", "/", ca.client_config()).await;
        ws::round_trip(&mut ws, "during renewal").await;
        if served == new.der {
            served_new = true;
            break;
        }
        assert_eq!(
            served, old.der,
            "either certificate, never a failed handshake"
        );
    }
    assert!(
        served_new,
        "the new certificate is served within 2 s of the write"
    );
    assert!(proxy.generation() > generation, "a config reload happened");
    ws::round_trip(&mut before, "the open tunnel is untouched").await;
    within("proxy shutdown", proxy.shutdown()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_closes_tls_tunnels_and_passthrough_connections_at_the_deadline() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let ca = Ca::new("drain CA");
    let front = ca.issue(&["front.test"]);
    let echo = origin::ws_echo().await;
    let secure_echo = origin::wss_echo(tls::server_config(&ca.issue(&["back.test"]))).await;
    let text = format!(
        r#"
drain_timeout = "300ms"

[[listeners]]
address = "127.0.0.1:0"
tls = {{ certs = [{{ cert = {cert}, key = {key} }}] }}

[[listeners]]
address = "127.0.0.1:0"
passthrough = {{ default = "secure-echo" }}

[upstreams.echo]
addresses = ["{echo}"]

[upstreams.secure-echo]
addresses = ["{secure}"]

[[routes]]
upstream = "echo"
"#,
        cert = toml_path(&front.cert_path),
        key = toml_path(&front.key_path),
        echo = echo.addr(),
        secure = secure_echo.addr(),
    );
    let config = upgate::Config::parse(&text, "test", Path::new(".")).unwrap();
    let proxy = within("proxy start", upgate::Proxy::start(config))
        .await
        .unwrap();
    let (terminated, passed) = (proxy.local_addrs()[0], proxy.local_addrs()[1]);
    let config = ca.client_config();
    let (mut over_tls, _) = tls::wss_connect(terminated, "front.test", "/", config.clone()).await;
    let (mut passed_through, _) = tls::wss_connect(passed, "back.test", "/", config).await;
    ws::round_trip(&mut over_tls, "before drain").await;
    ws::round_trip(&mut passed_through, "before drain").await;
    eventually("both tunnels counted", || {
        (proxy.open_tunnels() == 2).then_some(())
    })
    .await;
    let started = std::time::Instant::now();
    let drained = tokio::spawn(proxy.drain());
    // The terminated WebSocket tunnel gets 1001 over TLS.
    match within("1001 over TLS", over_tls.next()).await {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1001),
        other => panic!("expected a close frame 1001, got {other:?}"),
    }
    // The passed-through connection is cut (no frame: upgate cannot read it).
    loop {
        match within("pass-through cut", passed_through.next()).await {
            None | Some(Err(_)) => break,
            Some(Ok(Message::Close(_))) => panic!("upgate cannot speak inside a pass-through TLS"),
            Some(Ok(_)) => {}
        }
    }
    assert!(started.elapsed() >= Duration::from_millis(250));
    within("drain to finish", drained).await.unwrap();
}
