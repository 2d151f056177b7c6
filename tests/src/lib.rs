//! `upgate-tests`: upgate's integration tests and the small DSL they are written in.
//!
//! Everything listens on `127.0.0.1:0`, every wait is bounded ([`within`],
//! [`eventually`]), and servers keep their task handles so a panic inside one
//! fails the test that started it.
//!
//! Map of the crate:
//! - [`server`]: the accept loop every test origin runs on, and what it records.
//! - [`origin`]: WebSocket echo, scripted raw-TCP and silent origins.
//! - [`http_origin`]: a hyper origin for plain GET/POST (streaming echo).
//! - [`proxy`]: a builder for upgate configs, started in-process.
//! - [`files`]: a temp folder per test; replacing files by rename or in place;
//!   paths as TOML strings.
//! - [`ws`]: a tokio-tungstenite client through the proxy.
//! - [`raw`]: a byte-level client (exact heads, chunked bodies, frames).
//! - [`frame`]: WebSocket frames, encoded and parsed by hand.
//! - [`python`]: the Python `websockets` peers of the permessage-deflate test.
//! - [`tls`]: a throwaway CA (rcgen), certificate files, TLS clients and wss.
//! - [`traffic`]: background tunnels and upgrades that must survive a disturbance.
//!
//! ```no_run
//! # async fn demo() {
//! use upgate_tests::{origin, proxy, ws};
//! let echo = origin::ws_echo().await;
//! let proxy = proxy::start([proxy::route("/", echo.addr())]).await;
//! let mut client = ws::connect(proxy.addr(), "/").await;
//! ws::round_trip(&mut client, "hi").await;
//! # }
//! ```

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

pub mod files;
pub mod frame;
pub mod http_origin;
pub mod origin;
pub mod proxy;
pub mod python;
pub mod raw;
pub mod server;
pub mod tls;
pub mod traffic;
pub mod ws;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

/// How long any single step of a test may take before it counts as hung.
pub const STEP: Duration = Duration::from_secs(5);

/// The `.wasm` file of a plugin built for the tests: `passthrough`, `hello`,
/// `header_case`, `token_auth`, `origin_allow`, `subprotocol_router`,
/// `failover` or `probe`.
pub fn plugin(name: &str) -> PathBuf {
    let path =
        PathBuf::from(env!("UPGATE_TEST_PLUGINS")).join(format!("upgate_plugin_{name}.wasm"));
    assert!(path.is_file(), "no test plugin at {}", path.display());
    path
}

/// Awaits `fut`, failing the test with `what` if it takes longer than [`STEP`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    within_for(STEP, what, fut).await
}

/// Awaits `fut`, failing the test with `what` if it takes longer than `limit`.
pub async fn within_for<T>(limit: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, fut).await {
        Ok(v) => v,
        Err(_) => panic!("timed out after {limit:?}: {what}"),
    }
}

/// Polls `check` every 5 ms until it returns `Some`, for at most [`STEP`].
pub async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let tries = STEP.as_millis() / 5;
    for _ in 0..tries {
        if let Some(v) = check() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("still not true after {STEP:?}: {what}")
}

/// Whether `haystack` holds `needle` as a contiguous run of bytes.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}
