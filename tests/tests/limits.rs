//! Issue 3, limits and failure policy: a plugin that loops, hoards memory or
//! recurses is stopped at its limit (502, counted by kind) while a tunnel on
//! another route keeps its echo latency; `plugin_output_limit`,
//! `plugin_exchanges` and `plugin_memory` are enforced as configured (and not
//! below); `on_plugin_failure = "fail-open"` serves the pass-through plugin.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use upgate::plugin::PluginRuntime;
use upgate_tests::proxy::{self, route};
use upgate_tests::raw::{self, RawConn, RawResponse};
use upgate_tests::{origin, ws};

/// The looping plugin's `plugin_deadline`: long, so that a plugin holding its
/// worker for a whole call shows in the echo latency.
const LOOP_DEADLINE: Duration = Duration::from_millis(100);
/// The memory bomb's and the recursion's: far from what stops them, so that
/// their kind is not `deadline` even on a loaded machine.
const OTHER_DEADLINE: Duration = Duration::from_millis(1000);
/// What a failure answer may take beyond the deadline (a noisy 2-core machine).
const MARGIN: Duration = Duration::from_millis(470);
/// Round trips per latency sample, and the pause between them.
const SAMPLES: usize = 20;
const GAP: Duration = Duration::from_millis(3);
/// Echo p50 while plugins fail may be this many times the p50 before...
const SLOWDOWN: u32 = 5;
/// ...or up to this much, whichever is larger. With every worker running a
/// looping plugin that yields at each 1 ms epoch tick, each of the ~4 task hops
/// of a round trip may wait for a slice: ~4 ms (up to ~8 on this noisy
/// machine). A plugin that holds its worker shows its whole deadline instead.
const FLOOR: Duration = Duration::from_millis(12);
/// Clients sending bad requests at once: as many as the proxy has workers, so
/// a plugin holding its worker would stall every other task.
const BAD_CLIENTS: usize = 2;
/// Most bad requests one client sends.
const MAX_BAD: usize = 100;

/// `plugin_deadline` of the routes whose test is about another limit: the
/// deadline counts wall time inside polls, so a call copying out 2 MiB, or one
/// whose thread the OS preempts, can pass the 10 ms default on a loaded machine.
const NOT_THE_DEADLINE: &str = "2s";

/// The latency tests measure time: one at a time, so they don't load each other.
static LATENCY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Failures of `kind` counted so far, process-wide.
fn failures(kind: &str) -> u64 {
    PluginRuntime::global().failures.get(kind)
}

/// Sends an upgrade for `path` on a fresh connection; returns the answer and how long it took.
async fn upgrade(addr: SocketAddr, path: &str) -> (RawResponse, Duration) {
    let started = Instant::now();
    let mut client = RawConn::connect(addr).await;
    client.send(raw::upgrade_request(path, "")).await;
    let res = client.read_response().await;
    (res, started.elapsed())
}

/// The median of [`SAMPLES`] echo round trips on `client`.
async fn echo_p50(client: &mut ws::Ws) -> Duration {
    let mut times = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        let t = Instant::now();
        ws::round_trip(client, &format!("sample {i}")).await;
        times.push(t.elapsed());
        tokio::time::sleep(GAP).await;
    }
    times.sort();
    times[SAMPLES / 2]
}

/// Two routes: `/bad` with the probe in `mode` (and `deadline`), `/echo` with
/// the pass-through plugin. [`BAD_CLIENTS`] clients keep sending `/bad`
/// upgrades while a tunnel on `/echo` samples its latency: each bad upgrade is
/// a 502 naming `kind` within the deadline plus a margin, counted under
/// `kind`, and the echo p50 stays within [`SLOWDOWN`] times (or [`FLOOR`]) of
/// the p50 measured before.
///
/// `workers`: `None` serves on the test's runtime (two threads); `Some(n)` on
/// `n` worker threads of upgate's own, as the binary runs (one event loop each,
/// so with one worker the tunnel and every looping plugin share a thread).
async fn stopped_at_its_limit(mode: &str, kind: &str, deadline: Duration, workers: Option<usize>) {
    let _one_at_a_time = LATENCY.lock().await;
    let echo = origin::ws_echo().await;
    let routes = [
        route("/bad", echo.addr())
            .probe(mode)
            .plugin_deadline(&format!("{}ms", deadline.as_millis())),
        route("/echo", echo.addr()).plugin_deadline(NOT_THE_DEADLINE),
    ];
    let proxy = match workers {
        None => proxy::start(routes).await,
        Some(n) => proxy::start_on_workers(routes, n).await,
    };
    let mut client = ws::connect(proxy.addr(), "/echo").await;
    for _ in 0..5 {
        ws::round_trip(&mut client, "warm up").await;
    }
    let before = echo_p50(&mut client).await;
    let counted_before = failures(kind);

    let stop = Arc::new(AtomicBool::new(false));
    let addr = proxy.addr();
    let bad: Vec<_> = (0..BAD_CLIENTS)
        .map(|_| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut answers = Vec::new();
                loop {
                    answers.push(upgrade(addr, "/bad").await);
                    if stop.load(Ordering::Relaxed) || answers.len() >= MAX_BAD {
                        return answers;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let during = echo_p50(&mut client).await;
    stop.store(true, Ordering::Relaxed);
    let mut answered = 0u64;
    for task in bad {
        for (res, took) in task.await.unwrap() {
            answered += 1;
            assert_eq!(res.status(), 502, "{mode}: {}", res.text());
            let why = format!("plugin failed ({kind})");
            assert!(
                res.text().contains(&why),
                "{mode}: {:?} lacks {why:?}",
                res.text()
            );
            assert!(
                took < deadline + MARGIN,
                "{mode}: answered after {took:?}, deadline {deadline:?}"
            );
            if kind == "deadline" {
                assert!(took >= deadline, "{mode}: stopped after only {took:?}");
            }
        }
    }
    let counted = failures(kind) - counted_before;
    assert!(
        counted >= answered,
        "{mode}: {answered} failures answered, {counted} counted as {kind:?}"
    );
    let limit = (before * SLOWDOWN).max(FLOOR);
    assert!(
        during <= limit,
        "{mode}: echo p50 {during:?} while plugins failed, {before:?} before (limit {limit:?})"
    );
    ws::round_trip(&mut client, "after").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_loop_stops_at_the_deadline_without_slowing_a_tunnel() {
    stopped_at_its_limit("loop", "deadline", LOOP_DEADLINE, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_loop_on_the_tunnels_own_worker_yields_to_it() {
    stopped_at_its_limit("loop", "deadline", LOOP_DEADLINE, Some(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_stops_at_the_memory_cap_without_slowing_a_tunnel() {
    stopped_at_its_limit("alloc", "memory", OTHER_DEADLINE, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_recursion_traps_without_slowing_a_tunnel() {
    stopped_at_its_limit("recurse", "trap", OTHER_DEADLINE, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_output_limit_is_502_explicit_or_default() {
    let echo = origin::ws_echo().await;
    let proxy = proxy::start([
        route("/explicit", echo.addr())
            .probe("big-body")
            .plugin_output_limit("1MiB")
            .plugin_deadline(NOT_THE_DEADLINE),
        route("/default", echo.addr())
            .probe("big-body")
            .plugin_deadline(NOT_THE_DEADLINE),
    ])
    .await;
    let counted_before = failures("bad-outcome");
    for path in ["/explicit", "/default"] {
        let (res, _) = upgrade(proxy.addr(), path).await;
        assert_eq!(res.status(), 502, "{path}: {}", res.text());
        assert!(
            res.text().contains("plugin failed (bad-outcome)"),
            "{path}: {}",
            res.text()
        );
    }
    assert!(failures("bad-outcome") - counted_before >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_within_a_raised_output_limit_is_answered() {
    let echo = origin::ws_echo().await;
    let proxy = proxy::start([route("/", echo.addr())
        .probe("big-body")
        .plugin_output_limit("4MiB")
        .plugin_deadline(NOT_THE_DEADLINE)])
    .await;
    let (res, _) = upgrade(proxy.addr(), "/").await;
    assert_eq!(
        res.status(),
        200,
        "{}",
        String::from_utf8_lossy(&res.body[..200.min(res.body.len())])
    );
    assert_eq!(res.body.len(), 2 << 20);
    assert!(res.body.iter().all(|&b| b == b'x'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exchange_cap_stops_upstream_sends_as_configured() {
    let (three, default, none) = (
        origin::ws_echo().await,
        origin::ws_echo().await,
        origin::ws_echo().await,
    );
    let proxy = proxy::start([
        route("/three", three.addr())
            .probe("many-exchanges")
            .plugin_exchanges(3)
            .plugin_deadline(NOT_THE_DEADLINE),
        route("/default", default.addr())
            .probe("many-exchanges")
            .plugin_deadline(NOT_THE_DEADLINE),
        route("/none", none.addr())
            .probe("many-exchanges")
            .plugin_exchanges(0)
            .plugin_deadline(NOT_THE_DEADLINE),
    ])
    .await;
    for (path, origin, sent) in [
        ("/three", &three, 3),
        ("/default", &default, 8),
        ("/none", &none, 0),
    ] {
        let (res, _) = upgrade(proxy.addr(), path).await;
        assert_eq!(res.status(), 200, "{path}: {}", res.text());
        assert_eq!(
            res.text(),
            format!("sent {sent}, then limit-reached"),
            "{path}"
        );
        assert_eq!(origin.connections(), sent, "{path}: origin connections");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_cap_below_what_the_plugin_needs_fails_with_memory() {
    let echo = origin::ws_echo().await;
    let proxy = proxy::start([
        route("/capped", echo.addr())
            .probe("alloc-4mib")
            .plugin_memory("2MiB")
            .plugin_deadline(NOT_THE_DEADLINE),
        route("/small", echo.addr())
            .probe("passthrough")
            .plugin_memory("2MiB")
            .plugin_deadline(NOT_THE_DEADLINE),
        route("/default", echo.addr())
            .probe("alloc-4mib")
            .plugin_deadline(NOT_THE_DEADLINE),
    ])
    .await;
    let counted_before = failures("memory");
    let (res, _) = upgate_tests::within("capped upgrade", upgrade(proxy.addr(), "/capped")).await;
    assert_eq!(res.status(), 502, "{}", res.text());
    assert!(
        res.text().contains("plugin failed (memory)"),
        "{}",
        res.text()
    );
    assert!(failures("memory") > counted_before);
    // The cap is not simply too small to run a plugin at all...
    let mut small = ws::connect(proxy.addr(), "/small").await;
    ws::round_trip(&mut small, "2 MiB is enough to pass through").await;
    // ...and 4 MiB fits the default 16 MiB.
    let mut default = ws::connect(proxy.addr(), "/default").await;
    ws::round_trip(&mut default, "4 MiB fits the default cap").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_passes_through_and_fail_closed_is_502() {
    let echo = origin::ws_echo().await;
    let proxy = proxy::start([
        route("/open", echo.addr())
            .probe("trap")
            .on_plugin_failure("fail-open")
            .plugin_deadline(NOT_THE_DEADLINE),
        route("/closed", echo.addr()).probe("trap"),
    ])
    .await;
    let counted_before = failures("trap");
    let mut open = ws::connect(proxy.addr(), "/open").await;
    ws::round_trip(&mut open, "served by the pass-through plugin").await;
    assert!(
        echo.head_for("/open").is_some(),
        "the origin never saw /open"
    );
    let (res, _) = upgrade(proxy.addr(), "/closed").await;
    assert_eq!(res.status(), 502, "{}", res.text());
    assert!(
        res.text().contains("plugin failed (trap)"),
        "{}",
        res.text()
    );
    assert!(
        echo.head_for("/closed").is_none(),
        "/closed reached the origin"
    );
    assert!(
        failures("trap") - counted_before >= 2,
        "both traps (fail-open too) are counted"
    );
}
