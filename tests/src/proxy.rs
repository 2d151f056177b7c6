//! upgate, started in-process for a test: a builder for its TOML config (one
//! upstream per route, plus any named extra ones; listener on `127.0.0.1:0`),
//! parsed with [`upgate::Config::parse`] so tests go through the real config
//! path, or loaded from a file with [`start_file`] so it is watched and reloads.
//!
//! ```no_run
//! # async fn demo(origin: std::net::SocketAddr) {
//! use upgate_tests::proxy::{route, start};
//! let proxy = start([route("/", origin).probe("reject").idle_timeout("300ms")]).await;
//! # }
//! ```

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;

/// One `[[routes]]` table and the upstream it points at.
#[derive(Clone, Debug)]
pub struct Route {
    /// `path_prefix`.
    prefix: String,
    /// The route's upstream addresses (`[upstreams.upN] addresses`).
    addresses: Vec<SocketAddr>,
    /// `extra_upstreams`, by name, each written as its own `[upstreams.NAME]`.
    extra: Vec<(String, SocketAddr)>,
    /// Other keys of the route, as `key = <toml value>` lines.
    keys: Vec<String>,
}

/// A route for `prefix` to the upstream at `origin`, pass-through plugin, defaults.
pub fn route(prefix: &str, origin: SocketAddr) -> Route {
    Route {
        prefix: prefix.to_string(),
        addresses: vec![origin],
        extra: Vec::new(),
        keys: Vec::new(),
    }
}

impl Route {
    /// Sets `key` to `value`, written as TOML (`"300ms"`, `["websocket"]`, `{ a = 1 }`).
    pub fn set(mut self, key: &str, toml_value: &str) -> Self {
        self.keys.push(format!("{key} = {toml_value}"));
        self
    }

    /// Uses the test plugin `name` (see [`crate::plugin`]).
    pub fn plugin(self, name: &str) -> Self {
        let path = crate::plugin(name).display().to_string();
        self.set("plugin", &format!("{path:?}"))
    }

    /// `plugin_config`, as an inline TOML table (`{ tokens = ["x"] }`).
    pub fn plugin_config(self, table: &str) -> Self {
        self.set("plugin_config", table)
    }

    /// The probe plugin in `mode`.
    pub fn probe(self, mode: &str) -> Self {
        self.plugin("probe")
            .plugin_config(&format!("{{ mode = {mode:?} }}"))
    }

    /// `idle_timeout`.
    pub fn idle_timeout(self, d: &str) -> Self {
        self.set("idle_timeout", &format!("{d:?}"))
    }

    /// `response_timeout`.
    pub fn response_timeout(self, d: &str) -> Self {
        self.set("response_timeout", &format!("{d:?}"))
    }

    /// `plugin_deadline`.
    pub fn plugin_deadline(self, d: &str) -> Self {
        self.set("plugin_deadline", &format!("{d:?}"))
    }

    /// `plugin_memory` (a size: `"2MiB"`).
    pub fn plugin_memory(self, size: &str) -> Self {
        self.set("plugin_memory", &format!("{size:?}"))
    }

    /// `plugin_exchanges`.
    pub fn plugin_exchanges(self, n: u32) -> Self {
        self.set("plugin_exchanges", &n.to_string())
    }

    /// `plugin_output_limit` (a size: `"4MiB"`).
    pub fn plugin_output_limit(self, size: &str) -> Self {
        self.set("plugin_output_limit", &format!("{size:?}"))
    }

    /// `on_plugin_failure` (`"fail-open"` or `"fail-closed"`).
    pub fn on_plugin_failure(self, policy: &str) -> Self {
        self.set("on_plugin_failure", &format!("{policy:?}"))
    }

    /// Adds upstream `name` at `addr` to the route's `extra_upstreams` (names
    /// are global: use each once per config).
    pub fn extra_upstream(mut self, name: &str, addr: SocketAddr) -> Self {
        self.extra.push((name.to_string(), addr));
        self
    }

    /// `allowed_upgrades`.
    pub fn allowed_upgrades(self, protocols: &[&str]) -> Self {
        self.set("allowed_upgrades", &format!("{protocols:?}"))
    }
}

/// The config text for `routes`.
pub fn config_text(routes: &[Route]) -> String {
    let mut text = String::from("[[listeners]]\naddress = \"127.0.0.1:0\"\n");
    for (i, r) in routes.iter().enumerate() {
        let addrs: Vec<String> = r.addresses.iter().map(ToString::to_string).collect();
        let _ = write!(
            text,
            "\n[upstreams.up{i}]\naddresses = {addrs:?}\nconnect_timeout = \"2s\"\n"
        );
        for (name, addr) in &r.extra {
            let _ = write!(
                text,
                "\n[upstreams.{name}]\naddresses = [\"{addr}\"]\nconnect_timeout = \"2s\"\n"
            );
        }
    }
    for (i, r) in routes.iter().enumerate() {
        let _ = write!(
            text,
            "\n[[routes]]\nname = \"r{i}\"\npath_prefix = {:?}\nupstream = \"up{i}\"\n",
            r.prefix
        );
        if !r.extra.is_empty() {
            let names: Vec<&str> = r.extra.iter().map(|(n, _)| n.as_str()).collect();
            let _ = writeln!(text, "extra_upstreams = {names:?}");
        }
        for k in &r.keys {
            let _ = writeln!(text, "{k}");
        }
    }
    text
}

/// A running upgate.
pub struct Running {
    /// Every listener's address, in config order.
    addrs: Vec<SocketAddr>,
    /// The proxy; `None` once shut down.
    proxy: Option<upgate::Proxy>,
}

impl Running {
    /// Where clients connect (the first listener).
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// Listener `i`'s address (config order).
    pub fn listener(&self, i: usize) -> SocketAddr {
        self.addrs[i]
    }

    /// The proxy itself (for `reload()` and `generation()`).
    pub fn proxy(&self) -> &upgate::Proxy {
        self.proxy.as_ref().expect("the proxy is running")
    }

    /// Stops accepting (bounded).
    pub async fn shutdown(mut self) {
        if let Some(p) = self.proxy.take() {
            crate::within("proxy shutdown", p.shutdown()).await;
        }
    }
}

/// Starts upgate with `routes` (bounded; panics with the error if it cannot start).
pub async fn start(routes: impl IntoIterator<Item = Route>) -> Running {
    let routes: Vec<Route> = routes.into_iter().collect();
    start_toml(&config_text(&routes)).await
}

/// Starts upgate from config text.
pub async fn start_toml(text: &str) -> Running {
    match try_start(text).await {
        Ok(r) => r,
        Err(e) => panic!("upgate did not start: {e}\nconfig:\n{text}"),
    }
}

/// Starts upgate from the config file at `path` with [`upgate::Config::load`],
/// so the file (and its plugins) are watched and reload.
pub async fn start_file(path: &Path) -> Running {
    let config = match upgate::Config::load(path) {
        Ok(c) => c,
        Err(e) => panic!("bad config file {}: {e}", path.display()),
    };
    match run(config).await {
        Ok(r) => r,
        Err(e) => panic!("upgate did not start from {}: {e}", path.display()),
    }
}

/// Starts upgate from config text, returning the config or start error as text.
pub async fn try_start(text: &str) -> Result<Running, String> {
    let config =
        upgate::Config::parse(text, "test.toml", Path::new("/")).map_err(|e| e.to_string())?;
    run(config).await
}

/// Starts upgate with `routes` as the binary does with `workers = n`: `n` worker
/// threads of its own (none of them the test's runtime), each accepting on its
/// own socket of every listener.
pub async fn start_on_workers(routes: impl IntoIterator<Item = Route>, n: usize) -> Running {
    let routes: Vec<Route> = routes.into_iter().collect();
    let text = config_text(&routes);
    let config = upgate::Config::parse(&text, "test.toml", Path::new("/"))
        .unwrap_or_else(|e| panic!("bad config: {e}\n{text}"));
    let workers = upgate::workers::spawn(n).expect("worker threads");
    match start_with(upgate::Proxy::start_on(config, &workers)).await {
        Ok(r) => r,
        Err(e) => panic!("upgate did not start: {e}\nconfig:\n{text}"),
    }
}

async fn run(config: upgate::Config) -> Result<Running, String> {
    start_with(upgate::Proxy::start(config)).await
}

/// Waits (bounded) for a proxy `starting`.
async fn start_with(
    starting: impl std::future::Future<Output = Result<upgate::Proxy, upgate::StartError>>,
) -> Result<Running, String> {
    let proxy = crate::within_for(std::time::Duration::from_secs(30), "proxy start", starting)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Running {
        addrs: proxy.local_addrs().to_vec(),
        proxy: Some(proxy),
    })
}
