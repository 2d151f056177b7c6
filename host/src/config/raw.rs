//! The config file's TOML schema exactly as written: serde types with
//! `deny_unknown_fields`, before any validation or defaults.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
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
    /// `workers = 2`
    pub workers: Option<i64>,
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

/// `[[listeners]]`: `address = "127.0.0.1:8080"`, and `tls` or `passthrough`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    pub address: String,
    pub tls: Option<RawListenerTls>,
    pub passthrough: Option<RawPassthrough>,
}

/// `[listeners.tls]`: `certs = [{ cert = "a.pem", key = "a.key", names = ["a.example"] }]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListenerTls {
    pub certs: Vec<RawCert>,
}

/// One of `[listeners.tls] certs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCert {
    pub cert: PathBuf,
    pub key: PathBuf,
    #[serde(default)]
    pub names: Vec<String>,
}

/// `[listeners.passthrough]`: `names = { "a.example" = "up-a" }`, `default`, `idle_timeout`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPassthrough {
    #[serde(default)]
    pub names: BTreeMap<String, String>,
    pub default: Option<String>,
    #[serde(default, with = "duration::serde_opt")]
    pub idle_timeout: Option<Duration>,
}

/// `[upstreams.NAME]`: `addresses = ["127.0.0.1:9000"]`, `connect_timeout = "5s"`,
/// `dns_refresh = "5s"`, `tls`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub addresses: Vec<String>,
    #[serde(default, with = "duration::serde_opt")]
    pub connect_timeout: Option<Duration>,
    #[serde(default, with = "duration::serde_opt")]
    pub dns_refresh: Option<Duration>,
    pub tls: Option<RawUpstreamTls>,
}

/// An upstream's `tls`: `true`, `false`, or a table of settings.
#[derive(Debug)]
pub enum RawUpstreamTls {
    /// `tls = false`.
    Off,
    /// `tls = true` (all defaults) or `tls = { ... }`.
    On(RawTlsTable),
}

/// `tls = { server_name = "...", ca = "ca.pem", client_cert = "...", client_key = "..." }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTlsTable {
    pub server_name: Option<String>,
    pub ca: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

impl<'de> Deserialize<'de> for RawUpstreamTls {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawUpstreamTls;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("`true`, `false` or a table")
            }
            fn visit_bool<E: serde::de::Error>(self, on: bool) -> Result<Self::Value, E> {
                Ok(if on {
                    RawUpstreamTls::On(RawTlsTable::default())
                } else {
                    RawUpstreamTls::Off
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                let d = serde::de::value::MapAccessDeserializer::new(map);
                RawTlsTable::deserialize(d).map(RawUpstreamTls::On)
            }
        }
        d.deserialize_any(Visitor)
    }
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
    /// Every certificate, key and CA file the config names (listeners' `tls`,
    /// upstreams' `tls`), relative paths taken from `base`: the files a change
    /// of which reloads the config.
    pub fn tls_files(&self, base: &Path) -> Vec<PathBuf> {
        let listeners = self.listeners.iter().filter_map(|l| l.tls.as_ref());
        let certs = listeners.flat_map(|t| t.certs.iter().flat_map(|c| [&c.cert, &c.key]));
        let upstreams = self.upstreams.values().filter_map(|u| match &u.tls {
            Some(RawUpstreamTls::On(t)) => Some(t),
            _ => None,
        });
        let client =
            upstreams.flat_map(|t| [&t.ca, &t.client_cert, &t.client_key].into_iter().flatten());
        certs.chain(client).map(|p| base.join(p)).collect()
    }

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
                dns_refresh: None,
                tls: None,
            },
        );
        RawConfig {
            request_head_timeout: None,
            drain_timeout: None,
            workers: None,
            listeners: vec![RawListener {
                address: listen.to_string(),
                tls: None,
                passthrough: None,
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
