//! The configuration file: its TOML schema ([`raw`]), validation into a [`Config`]
//! ([`validate`], listeners in [`listeners`]), and the durations it is written with
//! ([`duration`]). TLS certificates and keys are read during validation.
//!
//! Loading is two steps, `parse` then `validate`, so every error names the key it
//! comes from (`routes[1].upstream: ...`) and nothing is started from a bad file.

pub mod duration;
mod listeners;
mod raw;
pub mod size;
mod validate;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::tls::client::UpstreamTls;
use crate::tls::names::NameMap;

/// Default idle timeout of a tunnel: an hour, not nginx's 60 s.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// Default time to wait for an upstream's response head.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default time to connect to one address of an upstream.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default `upstreams.NAME.dns_refresh` (Envoy's default DNS refresh rate).
pub const DEFAULT_DNS_REFRESH: Duration = Duration::from_secs(5);
/// Default wall-clock budget of one plugin hook call, time waiting on the upstream excluded.
pub const DEFAULT_PLUGIN_DEADLINE: Duration = Duration::from_millis(10);
/// Default memory cap of one plugin instance.
pub const DEFAULT_PLUGIN_MEMORY: usize = 16 << 20;
/// Largest `plugin_memory` accepted (the instance pool's slot size).
pub const MAX_PLUGIN_MEMORY: usize = 64 << 20;
/// Default cap on upstream exchanges one plugin call may open.
pub const DEFAULT_PLUGIN_EXCHANGES: u32 = 8;
/// Default cap on the size of what a plugin returns (response body plus headers).
pub const DEFAULT_PLUGIN_OUTPUT: usize = 1 << 20;
/// Default time a client has to send a request head (slowloris defence): 408 after it.
pub const DEFAULT_REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time tunnels may stay up after a shutdown signal (or after their route is removed).
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time a side has to answer upgate's keepalive ping.
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default size of each of a tunnel's two copy buffers.
pub const DEFAULT_BUFFER_SIZE: usize = 64 * 1024;

/// A configuration error: the file (if any), the key, and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read: {reason}")]
    Read {
        /// The config file.
        file: String,
        /// The OS error.
        reason: String,
    },
    /// The file is not valid TOML for the schema (unknown key, wrong type, ...).
    #[error("{file}: {reason}")]
    Parse {
        /// The config file.
        file: String,
        /// The TOML parser's message, with line and column.
        reason: String,
    },
    /// A value is well-formed but not acceptable.
    #[error("{file}: {key}: {reason}")]
    Invalid {
        /// The config file.
        file: String,
        /// The key, written as a path: `routes[0].upstream`.
        key: String,
        /// Why the value is refused.
        reason: String,
    },
}

/// A validated configuration: every reference resolved, every default applied.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where it was read from (for reload and error messages); `None` when built in code.
    pub source: Option<PathBuf>,
    /// Where to accept connections, and what to speak there.
    pub listeners: Vec<ListenerConfig>,
    /// Time a client has to send a request head (`request_head_timeout`, default 30s); then 408.
    pub request_head_timeout: Duration,
    /// How long tunnels stay up after SIGTERM/SIGINT or their route's removal (`drain_timeout`, default 30s).
    pub drain_timeout: Duration,
    /// Worker threads, each with its own event loop and its own socket on every
    /// listener (`workers`, default one per CPU); changing it needs a restart.
    pub workers: usize,
    /// Upstreams by name.
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// Routes, in config order (the router ranks them per request: host, then longest prefix).
    pub routes: Vec<RouteConfig>,
    /// Certificate, key and CA files read for TLS: a change to one reloads the config.
    pub tls_files: Vec<PathBuf>,
}

/// One upstream: addresses tried in order when a connect fails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// Its name, as routes and plugins refer to it.
    pub name: String,
    /// `host:port` addresses, tried in order.
    pub addresses: Vec<String>,
    /// Time allowed to connect to one address (and, with `tls`, to finish the handshake).
    pub connect_timeout: Duration,
    /// How long what a `name:port` address resolved to is reused (`dns_refresh`).
    pub dns_refresh: Duration,
    /// TLS to the upstream (`tls`), `None` for plain TCP.
    pub tls: Option<UpstreamTls>,
}

/// One `[[listeners]]` entry.
#[derive(Clone, Debug)]
pub struct ListenerConfig {
    /// Address to bind (`address`).
    pub address: SocketAddr,
    /// What the listener speaks.
    pub kind: ListenerKind,
}

/// What a listener speaks.
#[derive(Clone, Debug)]
pub enum ListenerKind {
    /// HTTP/1.1 over plain TCP.
    Http,
    /// HTTP/1.1 over TLS terminated here (`tls`): certificates chosen by SNI.
    Tls(Arc<rustls::ServerConfig>),
    /// TLS passed through untouched to an upstream chosen by SNI (`passthrough`).
    Passthrough(Arc<PassthroughConfig>),
}

impl ListenerKind {
    /// `http`, `tls` or `passthrough`, for logs and for telling kinds apart on reload.
    pub fn name(&self) -> &'static str {
        match self {
            ListenerKind::Http => "http",
            ListenerKind::Tls(_) => "tls",
            ListenerKind::Passthrough(_) => "passthrough",
        }
    }
}

/// Where a pass-through listener sends each connection.
#[derive(Clone, Debug)]
pub struct PassthroughConfig {
    /// Upstream names by server name (`names`): exact, or `*.` wildcards.
    pub names: NameMap<String>,
    /// Upstream for a hello with no SNI or an unlisted one (`default`); none: close.
    pub default: Option<String>,
    /// Close after this long without a byte either way (`idle_timeout`, default 1h).
    pub idle_timeout: Duration,
}

impl PassthroughConfig {
    /// The upstream name for a hello asking for `sni`.
    pub fn upstream_for(&self, sni: Option<&str>) -> Option<&str> {
        sni.and_then(|n| self.names.get(n))
            .or(self.default.as_ref())
            .map(String::as_str)
    }
}

/// Where a route's plugin comes from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PluginSource {
    /// The pass-through plugin built into the binary.
    Embedded,
    /// A `.wasm` component file.
    File(PathBuf),
}

/// What a route does when its plugin fails (trap, deadline, memory cap, bad outcome).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailurePolicy {
    /// Answer 502 with a short reason (the default).
    FailClosed,
    /// Run the built-in pass-through plugin instead.
    FailOpen,
}

/// Proxy keepalive settings of a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keepalive {
    /// Ping a side after this long without a byte from it.
    pub interval: Duration,
    /// Close the tunnel when the pong takes longer than this.
    pub timeout: Duration,
}

/// Limits of one plugin call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PluginLimits {
    /// Budget of one call, upstream waits excluded (`plugin_deadline`, default 10ms).
    pub deadline: Duration,
    /// Memory an instance may grow to (`plugin_memory`, default 16MiB, at most 64MiB).
    pub memory: usize,
    /// Upstream exchanges one call may open (`plugin_exchanges`, default 8).
    pub exchanges: u32,
    /// Size cap of a `respond` outcome: body plus header bytes (`plugin_output_limit`, default 1MiB).
    pub output: usize,
}

/// One route: what it matches, where it goes, and which plugin decides its upgrades.
#[derive(Clone, Debug)]
pub struct RouteConfig {
    /// Name used in logs and given to the plugin (`name`, default `route-N`).
    pub name: String,
    /// Host to match (`host`), lower case, no port; `*.example.com` matches subdomains; `None` = any.
    pub host: Option<String>,
    /// Path prefix to match (`path_prefix`, default `/`).
    pub path_prefix: String,
    /// The default upstream (`upstream`), then any others the plugin may use (`extra_upstreams`).
    pub upstreams: Vec<String>,
    /// The plugin (`plugin`, a path relative to the config file; default: pass-through).
    pub plugin: PluginSource,
    /// Settings handed to the plugin (`plugin_config`: a string, or a table passed as TOML text).
    pub plugin_config: String,
    /// Upgrade protocols a tunnel may switch to (`allowed_upgrades`, default `["websocket"]`), lower case.
    pub allowed_upgrades: Vec<String>,
    /// Close a tunnel after this long without a byte either way (`idle_timeout`, default 1h).
    pub idle_timeout: Duration,
    /// Time allowed for an upstream's response head (`response_timeout`, default 60s).
    pub response_timeout: Duration,
    /// Limits of each plugin call.
    pub limits: PluginLimits,
    /// What a plugin failure answers (`on_plugin_failure`, default `fail-closed`).
    pub on_plugin_failure: FailurePolicy,
    /// Size of each tunnel copy buffer in bytes (`buffer_size`, default 65536).
    pub buffer_size: usize,
    /// Close a tunnel after this long whatever its traffic (`max_lifetime`, default none).
    pub max_lifetime: Option<Duration>,
    /// Proxy keepalive for WebSocket tunnels: ping a side silent for `interval`
    /// (`keepalive_interval`, default off), close with 1001 if no pong within
    /// `timeout` (`keepalive_timeout`, default 10s).
    pub keepalive: Option<Keepalive>,
}

impl Config {
    /// Reads and validates a config file. Relative plugin paths resolve against its folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            file: file.clone(),
            reason: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut config = Config::parse(&text, &file, base)?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parses and validates config text; `file` names it in errors, `base` anchors relative paths.
    pub fn parse(text: &str, file: &str, base: &Path) -> Result<Config, ConfigError> {
        let raw: raw::RawConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: file.to_string(),
            reason: e.to_string().trim_end().replace('\n', "\n    "),
        })?;
        validate::validate(raw, file, base)
    }

    /// The one-route config of quick mode: `listen` → `upstream` for every path.
    pub fn quick(
        listen: SocketAddr,
        upstream: &str,
        plugin: Option<PathBuf>,
        plugin_config: Option<String>,
    ) -> Result<Config, ConfigError> {
        let raw = raw::RawConfig::quick(listen, upstream, plugin, plugin_config);
        validate::validate(raw, "command line", Path::new("."))
    }

    /// Each listener's address and kind: what a reload cannot change.
    pub fn listener_shape(&self) -> Vec<(SocketAddr, &'static str)> {
        self.listeners
            .iter()
            .map(|l| (l.address, l.kind.name()))
            .collect()
    }

    /// The route named `name`, if any.
    pub fn route(&self, name: &str) -> Option<&RouteConfig> {
        self.routes.iter().find(|r| r.name == name)
    }
}
