//! The config file's TOML schema exactly as written: serde types with
//! `deny_unknown_fields`, before any validation or defaults.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{duration, size, FailurePolicy};

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// `request_head_timeout = "30s"`
    #[serde(default, with = "duration::serde_opt")]
    pub request_head_timeout: Option<Duration>,
    /// `drain_timeout = "30s"`
    #[serde(default, with = "duration::serde_opt")]
    pub drain_timeout: Option<Duration>,
    /// `[[listeners]]`
    #[serde(default)]
    pub listeners: Vec<RawListener>,
    /// `[upstreams.NAME]`
    #[serde(default)]
    pub upstreams: BTreeMap<String, RawUpstream>,
    /// `[[routes]]`
    #[serde(default)]
    pub routes: Vec<RawRoute>,
}

/// `[[listeners]]`: `address = "127.0.0.1:8080"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    pub address: String,
}

/// `[upstreams.NAME]`: `addresses = ["127.0.0.1:9000"]`, `connect_timeout = "5s"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub addresses: Vec<String>,
    #[serde(default, with = "duration::serde_opt")]
    pub connect_timeout: Option<Duration>,
}

/// `[[routes]]`; see [`super::RouteConfig`] for what each key means.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: Option<String>,
    pub host: Option<String>,
    pub path_prefix: Option<String>,
    pub upstream: Option<String>,
    #[serde(default)]
    pub extra_upstreams: Vec<String>,
    pub plugin: Option<PathBuf>,
    pub plugin_config: Option<toml::Value>,
    pub allowed_upgrades: Option<Vec<String>>,
    #[serde(default, with = "duration::serde_opt")]
    pub idle_timeout: Option<Duration>,
    #[serde(default, with = "duration::serde_opt")]
    pub response_timeout: Option<Duration>,
    #[serde(default, with = "duration::serde_opt")]
    pub plugin_deadline: Option<Duration>,
    #[serde(default, with = "size::serde_opt")]
    pub plugin_memory: Option<usize>,
    pub plugin_exchanges: Option<u32>,
    #[serde(default, with = "size::serde_opt")]
    pub plugin_output_limit: Option<usize>,
    pub on_plugin_failure: Option<FailurePolicy>,
    #[serde(default, with = "size::serde_opt")]
    pub buffer_size: Option<usize>,
    #[serde(default, with = "duration::serde_opt")]
    pub max_lifetime: Option<Duration>,
    #[serde(default, with = "duration::serde_opt")]
    pub keepalive_interval: Option<Duration>,
    #[serde(default, with = "duration::serde_opt")]
    pub keepalive_timeout: Option<Duration>,
}

impl RawConfig {
    /// What quick mode (`--listen`, `--upstream`, `--plugin`) stands for.
    pub fn quick(
        listen: SocketAddr,
        upstream: &str,
        plugin: Option<PathBuf>,
        plugin_config: Option<String>,
    ) -> RawConfig {
        let mut upstreams = BTreeMap::new();
        upstreams.insert(
            "upstream".to_string(),
            RawUpstream {
                addresses: vec![upstream.to_string()],
                connect_timeout: None,
            },
        );
        RawConfig {
            request_head_timeout: None,
            drain_timeout: None,
            listeners: vec![RawListener {
                address: listen.to_string(),
            }],
            upstreams,
            routes: vec![RawRoute {
                name: Some("default".to_string()),
                upstream: Some("upstream".to_string()),
                plugin,
                plugin_config: plugin_config.map(toml::Value::String),
                ..RawRoute::default()
            }],
        }
    }
}
