//! Issue 3, hot reload: a plugin file replaced 20 times (by rename and in
//! place) and once with garbage while tunnels echo and a client keeps opening
//! upgrades; config reloads that add a route and change a setting, refuse an
//! invalid file, and leave the listeners alone, all without dropping a tunnel.
//!
//! Every proxy here starts from a file in its own temp folder
//! ([`proxy::start_file`]), so upgate's watcher sees the changes; the
//! background traffic is [`upgate_tests::traffic::Load`].

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use upgate_tests::files::{self, TempDir};
use upgate_tests::proxy::{self, route, Route, Running};
use upgate_tests::raw::{self, RawConn};
use upgate_tests::server::Server;
use upgate_tests::traffic::Load;
use upgate_tests::{origin, within, ws};

/// How soon after a write the new behaviour must be seen.
const SWITCH_WITHIN: Duration = Duration::from_secs(1);
/// How long a refused file is given to (wrongly) take effect.
const REFUSAL_WAIT: Duration = Duration::from_millis(600);
/// The line the probe's `rewrite` mode adds to the upstream request.
const PROBE_LINE: &str = "\r\nX-Probe-Header: Exact-Case\r\n";

/// Every plugin call's deadline here. Generous: these tests pin reloads, and
/// the deadline counts wall time inside polls, OS preemption included, so on
/// an overloaded machine the 10 ms default fails a few ordinary calls.
const CALL_DEADLINE: &str = "1s";

/// A route for `prefix` to `origin`, with [`CALL_DEADLINE`].
fn at(prefix: &str, origin: SocketAddr) -> Route {
    route(prefix, origin).plugin_deadline(CALL_DEADLINE)
}

/// The bytes of a test plugin.
fn wasm(name: &str) -> Vec<u8> {
    std::fs::read(upgate_tests::plugin(name)).unwrap()
}

/// Opens a fresh upgrade to `/probe-<n>` and tells whether the origin's head
/// for it carries the probe's line: whether the probe plugin is active.
async fn probe_active(proxy: &Running, origin: &Server, n: &mut usize) -> bool {
    *n += 1;
    let path = format!("/probe-{n}");
    let mut client = ws::connect(proxy.addr(), &path).await;
    let head = origin
        .head_for(&path)
        .unwrap_or_else(|| panic!("the origin has no head for {path}"));
    let _ = client.close(None).await;
    head.contains(PROBE_LINE)
}

/// Polls until the probe's activity is `active`; fails past [`SWITCH_WITHIN`]
/// after `written`. Returns the time since `written`.
async fn switched(
    proxy: &Running,
    origin: &Server,
    n: &mut usize,
    active: bool,
    written: Instant,
    what: &str,
) -> Duration {
    for _ in 0..500 {
        if probe_active(proxy, origin, n).await == active {
            return written.elapsed();
        }
        assert!(
            written.elapsed() <= SWITCH_WITHIN,
            "{what}: the probe is still {} {:?} after the write",
            if active { "inactive" } else { "active" },
            written.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}: no switch after 500 polls")
}

/// A component preamble followed by junk: passes the magic check, fails to compile.
fn garbage() -> Vec<u8> {
    let mut bytes = b"\0asm\x0d\0\x01\0".to_vec();
    bytes.extend((0..4096u32).map(|i| (i * 7 + 3) as u8));
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_replaced_20_times_under_load_switches_within_1s_and_drops_nothing() {
    let dir = TempDir::new();
    let (passthrough, probe) = (wasm("passthrough"), wasm("probe"));
    let plugin = dir.join("p.wasm");
    std::fs::write(&plugin, &passthrough).unwrap();
    let echo = origin::ws_echo().await;
    let config = dir.join("upgate.toml");
    let routes = [at("/", echo.addr())
        .set("plugin", "\"p.wasm\"")
        .plugin_config("{ mode = \"rewrite\" }")];
    std::fs::write(&config, proxy::config_text(&routes)).unwrap();
    let proxy = proxy::start_file(&config).await;
    let mut n = 0;
    assert!(
        !probe_active(&proxy, &echo, &mut n).await,
        "started on the probe"
    );

    let load = Load::start(proxy.addr(), "/", 5, true).await;
    let mut slowest = Duration::ZERO;
    for i in 0..20 {
        let to_probe = i % 2 == 0;
        let bytes = if to_probe { &probe } else { &passthrough };
        // Each plugin arrives both ways: writes 0, 1 by rename, 2, 3 in place...
        let by_rename = (i / 2) % 2 == 0;
        let generation = proxy.proxy().generation();
        if by_rename {
            files::replace_by_rename(&plugin, bytes);
        } else {
            files::overwrite(&plugin, bytes);
        }
        let written = Instant::now();
        let how = if by_rename { "rename" } else { "in place" };
        let what = format!("write {i} ({how}, probe {to_probe})");
        let took = switched(&proxy, &echo, &mut n, to_probe, written, &what).await;
        slowest = slowest.max(took);
        assert!(
            proxy.proxy().generation() > generation,
            "{what}: switched without a new generation"
        );
        if i == 9 {
            garbage_is_refused(&proxy, &echo, &mut n, &plugin).await;
        }
    }
    load.finish().await;
    assert_eq!(
        proxy.proxy().generation(),
        20,
        "one swap per good write, none for the garbage"
    );
    assert!(slowest <= SWITCH_WITHIN, "slowest switch {slowest:?}");
}

/// Writes garbage over `plugin` (passthrough running): the running version
/// keeps serving, the generation stays, and a direct reload says why.
async fn garbage_is_refused(proxy: &Running, origin: &Server, n: &mut usize, plugin: &Path) {
    let generation = proxy.proxy().generation();
    files::overwrite(plugin, &garbage());
    let written = Instant::now();
    while written.elapsed() < REFUSAL_WAIT {
        assert!(
            !probe_active(proxy, origin, n).await,
            "garbage: the behaviour changed"
        );
        let mut client = ws::connect(proxy.addr(), "/after-garbage").await;
        ws::round_trip(&mut client, "still served").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        proxy.proxy().generation(),
        generation,
        "garbage was swapped in"
    );
    let refused = within(
        "reload of garbage",
        proxy.proxy().reloader().reload_plugin(plugin),
    )
    .await;
    match refused {
        Err(reason) => assert!(reason.contains("is not a valid upgate plugin"), "{reason}"),
        Ok(g) => panic!("garbage reloaded as generation {g}"),
    }
    assert_eq!(proxy.proxy().generation(), generation);
}

/// Writes `text` to `config` by rename and waits (bounded) for a new generation.
async fn rewrite_config(proxy: &Running, config: &Path, text: &str) -> Duration {
    let generation = proxy.proxy().generation();
    files::replace_by_rename(config, text.as_bytes());
    let written = Instant::now();
    while proxy.proxy().generation() == generation {
        assert!(
            written.elapsed() <= SWITCH_WITHIN,
            "config not reloaded {:?} after the write",
            written.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    written.elapsed()
}

/// An upgrade on `path` on a fresh connection: its status and body.
async fn upgrade_status(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut client = RawConn::connect(addr).await;
    client.send(raw::upgrade_request(path, "")).await;
    let res = client.read_response().await;
    (res.status(), res.text())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_reload_adds_a_route_and_changes_a_setting_without_dropping_a_tunnel() {
    let dir = TempDir::new();
    let (first, second) = (origin::ws_echo().await, origin::ws_echo().await);
    let config = dir.join("upgate.toml");
    let before = proxy::config_text(&[at("/", first.addr()).probe("rewrite")]);
    std::fs::write(&config, &before).unwrap();
    let proxy = proxy::start_file(&config).await;
    let load = Load::start(proxy.addr(), "/kept/", 1, false).await;
    let mut n = 0;
    assert!(probe_active(&proxy, &first, &mut n).await);

    let after = proxy::config_text(&[
        at("/", first.addr()).probe("reject"),
        at("/second/", second.addr()),
    ]);
    rewrite_config(&proxy, &config, &after).await;
    let mut client = ws::connect(proxy.addr(), "/second/new").await;
    ws::round_trip(&mut client, "on the new route").await;
    assert!(
        second.head_for("/second/new").is_some(),
        "not served by the second origin"
    );
    let (status, body) = upgrade_status(proxy.addr(), "/first").await;
    assert_eq!((status, body.as_str()), (403, "rejected by probe"));
    assert!(
        first.head_for("/first").is_none(),
        "a rejected upgrade reached the origin"
    );
    load.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_config_is_refused_and_the_running_one_keeps_serving() {
    let dir = TempDir::new();
    let echo = origin::ws_echo().await;
    let config = dir.join("upgate.toml");
    let kept = at("/kept/", echo.addr());
    let good = proxy::config_text(&[at("/", echo.addr()).probe("reject"), kept.clone()]);
    std::fs::write(&config, &good).unwrap();
    let proxy = proxy::start_file(&config).await;
    let load = Load::start(proxy.addr(), "/kept/", 1, false).await;
    assert_eq!(upgrade_status(proxy.addr(), "/x").await.0, 403);

    // Would switch the probe to rewrite, but for the misspelt key.
    let bad = proxy::config_text(&[
        at("/", echo.addr())
            .probe("rewrite")
            .set("plugin_deadlin", "\"5ms\""),
        kept.clone(),
    ]);
    let generation = proxy.proxy().generation();
    files::replace_by_rename(&config, bad.as_bytes());
    tokio::time::sleep(REFUSAL_WAIT).await;
    assert_eq!(
        proxy.proxy().generation(),
        generation,
        "the invalid config was swapped in"
    );
    assert_eq!(upgrade_status(proxy.addr(), "/y").await.0, 403);
    match within("reload of a bad config", proxy.proxy().reload()).await {
        Err(reason) => assert!(
            reason.contains("unknown field `plugin_deadlin`"),
            "the reason does not name the key: {reason}"
        ),
        Ok(g) => panic!("the invalid config loaded as generation {g}"),
    }
    assert_eq!(proxy.proxy().generation(), generation);

    // What SIGHUP does, on a good file: the new generation, in effect at once.
    let fixed = proxy::config_text(&[at("/", echo.addr()).probe("rewrite"), kept]);
    files::overwrite(&config, fixed.as_bytes());
    let reloaded = within("reload of a good config", proxy.proxy().reload()).await;
    let new = reloaded.unwrap_or_else(|e| panic!("good config refused: {e}"));
    assert!(new > generation && proxy.proxy().generation() >= new);
    let mut n = 0;
    assert!(
        probe_active(&proxy, &echo, &mut n).await,
        "the fixed config is not in effect"
    );
    load.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_change_on_reload_keeps_serving_on_the_running_listener() {
    let dir = TempDir::new();
    let echo = origin::ws_echo().await;
    let config = dir.join("upgate.toml");
    let text = proxy::config_text(&[at("/", echo.addr())]);
    std::fs::write(&config, &text).unwrap();
    let proxy = proxy::start_file(&config).await;
    let load = Load::start(proxy.addr(), "/kept/", 1, false).await;

    let elsewhere = origin::closed_port().await;
    let moved = text.replace("127.0.0.1:0", &elsewhere.to_string());
    assert_ne!(moved, text);
    files::overwrite(&config, moved.as_bytes());
    let generation = within("reload with a new listener", proxy.proxy().reload())
        .await
        .unwrap_or_else(|e| panic!("refused: {e}"));
    assert!(proxy.proxy().generation() >= generation);
    let mut client = ws::connect(proxy.addr(), "/same-listener").await;
    ws::round_trip(&mut client, "still listening here").await;
    load.finish().await;
}
