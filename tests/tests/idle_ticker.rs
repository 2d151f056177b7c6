//! The epoch ticker sleeps while no plugin runs, and wakes for the next call:
//! an idle proxy's epoch thread makes no context switches, and a looping
//! plugin called after a long idle stretch still stops at its deadline. Its
//! own test binary, so no other test's plugin calls keep the ticker awake.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};
use upgate_tests::origin;
use upgate_tests::proxy::{self, route};
use upgate_tests::raw::{self, RawConn};

/// Context switches of this process's thread named `name` (the proxy runs in
/// the test's process); panics if there is no such thread.
fn switches_of(name: &str) -> u64 {
    let (mut total, mut found) = (0, false);
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let dir = task.unwrap().path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim() != name {
            continue;
        }
        found = true;
        let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
        total += status
            .lines()
            .filter(|l| l.contains("ctxt_switches"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum::<u64>();
    }
    assert!(found, "no thread named {name}");
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ticker_sleeps_while_idle_and_wakes_for_a_call() {
    let echo = origin::ws_echo().await;
    let proxy = proxy::start([route("/", echo.addr())
        .probe("loop")
        .plugin_deadline("50ms")])
    .await;
    // Past the 100 idle ticks after start-up's on-load calls.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let before = switches_of("upgate-epoch");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = switches_of("upgate-epoch") - before;
    assert!(
        idle <= 2,
        "the idle epoch thread switched {idle} times in 300 ms"
    );

    let started = Instant::now();
    let mut client = RawConn::connect(proxy.addr()).await;
    client.send(raw::upgrade_request("/", "")).await;
    let res = client.read_response().await;
    assert_eq!(res.status(), 502, "{}", res.text());
    assert!(
        res.text().contains("plugin failed (deadline)"),
        "{}",
        res.text()
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the deadline took {:?}",
        started.elapsed()
    );
}
