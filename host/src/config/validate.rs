//! Turns a [`RawConfig`] into a [`Config`]: checks every value and reference,
//! applies defaults, and names the offending key in every error.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::raw::{RawConfig, RawRoute, RawUpstream, RawUpstreamTls};
use super::{
    Config, ConfigError, FailurePolicy, Keepalive, PluginLimits, PluginSource, RouteConfig,
    UpstreamConfig, DEFAULT_BUFFER_SIZE, DEFAULT_CONNECT_TIMEOUT, DEFAULT_DNS_REFRESH,
    DEFAULT_DRAIN_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_KEEPALIVE_TIMEOUT,
    DEFAULT_PLUGIN_DEADLINE, DEFAULT_PLUGIN_EXCHANGES, DEFAULT_PLUGIN_MEMORY,
    DEFAULT_PLUGIN_OUTPUT, DEFAULT_REQUEST_HEAD_TIMEOUT, DEFAULT_RESPONSE_TIMEOUT,
    MAX_PLUGIN_MEMORY,
};

use crate::tls::client::{ClientFiles, UpstreamTls};
use crate::workers::MAX_WORKERS;

/// Smallest and largest accepted `buffer_size`.
const BUFFER_RANGE: (usize, usize) = (1024, 16 * 1024 * 1024);

pub(super) struct Checker<'a> {
    file: &'a str,
}

impl Checker<'_> {
    pub(super) fn err(&self, key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_string(),
            key: key.into(),
            reason: reason.into(),
        }
    }
}

pub fn validate(raw: RawConfig, file: &str, base: &Path) -> Result<Config, ConfigError> {
    let c = Checker { file };
    let tls_files = raw.tls_files(base);
    let mut upstreams = BTreeMap::new();
    for (name, u) in raw.upstreams {
        let up = upstream(&c, &name, u, base)?;
        upstreams.insert(name, up);
    }
    let listeners = super::listeners::listeners(&c, raw.listeners, &upstreams, base)?;
    let serves_http = listeners
        .iter()
        .any(|l| !matches!(l.kind, super::ListenerKind::Passthrough(_)));
    if raw.routes.is_empty() && serves_http {
        return Err(c.err("routes", "at least one `[[routes]]` is needed"));
    }
    let mut routes: Vec<RouteConfig> = Vec::new();
    for (i, r) in raw.routes.into_iter().enumerate() {
        let route = route(&c, i, r, &upstreams, base)?;
        if routes.iter().any(|o| o.name == route.name) {
            return Err(c.err(
                format!("routes[{i}].name"),
                format!("`{}` is used by another route", route.name),
            ));
        }
        routes.push(route);
    }
    let nonzero = |k: &str, d: Option<Duration>, def: Duration| match d {
        Some(d) if d.is_zero() => Err(c.err(k, "must be greater than zero")),
        Some(d) => Ok(d),
        None => Ok(def),
    };
    Ok(Config {
        source: None,
        request_head_timeout: nonzero(
            "request_head_timeout",
            raw.request_head_timeout,
            DEFAULT_REQUEST_HEAD_TIMEOUT,
        )?,
        drain_timeout: raw.drain_timeout.unwrap_or(DEFAULT_DRAIN_TIMEOUT),
        workers: match raw.workers {
            None => crate::workers::default_count(),
            Some(n) if (1..=MAX_WORKERS as i64).contains(&n) => n as usize,
            Some(_) => {
                return Err(c.err(
                    "workers",
                    format!("must be between 1 and {MAX_WORKERS} (worker threads)"),
                ))
            }
        },
        listeners,
        upstreams,
        routes,
        tls_files,
    })
}

fn upstream(
    c: &Checker,
    name: &str,
    u: RawUpstream,
    base: &Path,
) -> Result<UpstreamConfig, ConfigError> {
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !name_ok {
        return Err(c.err(
            format!("upstreams.{name}"),
            "an upstream name uses only letters, digits, `-`, `_` and `.`",
        ));
    }
    if u.connect_timeout.is_some_and(|d| d.is_zero()) {
        return Err(c.err(
            format!("upstreams.{name}.connect_timeout"),
            "must be greater than zero",
        ));
    }
    if u.addresses.is_empty() {
        return Err(c.err(
            format!("upstreams.{name}.addresses"),
            "needs at least one host:port",
        ));
    }
    for (i, a) in u.addresses.iter().enumerate() {
        check_host_port(a).map_err(|why| c.err(format!("upstreams.{name}.addresses[{i}]"), why))?;
    }
    let tls = match u.tls {
        None | Some(RawUpstreamTls::Off) => None,
        Some(RawUpstreamTls::On(t)) => {
            let files = ClientFiles {
                server_name: t.server_name,
                ca: t.ca.map(|p| base.join(p)),
                client_cert: t.client_cert.map(|p| base.join(p)),
                client_key: t.client_key.map(|p| base.join(p)),
            };
            let tls = UpstreamTls::load(&files)
                .map_err(|e| c.err(format!("upstreams.{name}.tls.{}", e.key), e.reason))?;
            for (i, a) in u.addresses.iter().enumerate() {
                tls.name_for(a)
                    .map_err(|why| c.err(format!("upstreams.{name}.addresses[{i}]"), why))?;
            }
            Some(tls)
        }
    };
    Ok(UpstreamConfig {
        name: name.to_string(),
        addresses: u.addresses,
        connect_timeout: u.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT),
        dns_refresh: u.dns_refresh.unwrap_or(DEFAULT_DNS_REFRESH),
        tls,
    })
}

/// Accepts `ip:port`, `[v6]:port` and `name:port` (names resolve when connecting, see `crate::resolve`).
fn check_host_port(a: &str) -> Result<(), String> {
    if a.parse::<SocketAddr>().is_ok() {
        return Ok(());
    }
    let (host, port) = a
        .rsplit_once(':')
        .ok_or_else(|| format!("`{a}` is not a host:port address (no port)"))?;
    port.parse::<u16>()
        .map_err(|_| format!("`{a}` is not a host:port address (bad port `{port}`)"))?;
    let valid_name = !host.is_empty()
        && host
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '.');
    if !valid_name {
        return Err(format!(
            "`{a}` is not a host:port address (bad host `{host}`)"
        ));
    }
    Ok(())
}

fn route(
    c: &Checker,
    i: usize,
    r: RawRoute,
    upstreams: &BTreeMap<String, UpstreamConfig>,
    base: &Path,
) -> Result<RouteConfig, ConfigError> {
    let key = |k: &str| format!("routes[{i}].{k}");
    let name = r.name.unwrap_or_else(|| format!("route-{i}"));
    let default = r
        .upstream
        .ok_or_else(|| c.err(key("upstream"), "missing: every route names an upstream"))?;
    let mut names = vec![default];
    names.extend(r.extra_upstreams);
    for (j, n) in names.iter().enumerate() {
        if !upstreams.contains_key(n) {
            let k = if j == 0 {
                key("upstream")
            } else {
                key(&format!("extra_upstreams[{}]", j - 1))
            };
            let known: Vec<&str> = upstreams.keys().map(String::as_str).collect();
            let known = if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            };
            return Err(c.err(k, format!("no upstream named `{n}` (defined: {known})")));
        }
    }
    let path_prefix = r.path_prefix.unwrap_or_else(|| "/".to_string());
    if !path_prefix.starts_with('/') {
        return Err(c.err(
            key("path_prefix"),
            format!("`{path_prefix}` must start with `/`"),
        ));
    }
    let host = r.host.map(|h| h.to_ascii_lowercase());
    if let Some(h) = &host {
        if h.is_empty() || h.contains(':') || h.contains('/') {
            return Err(c.err(
                key("host"),
                format!("`{h}` is not a host name (no port, no path)"),
            ));
        }
    }
    let plugin = match r.plugin {
        None => PluginSource::Embedded,
        Some(p) if p.is_absolute() => PluginSource::File(p),
        Some(p) => PluginSource::File(base.join(p)),
    };
    let plugin_config = match r.plugin_config {
        None => String::new(),
        Some(toml::Value::String(s)) => s,
        Some(toml::Value::Table(t)) => {
            toml::to_string(&t).map_err(|e| c.err(key("plugin_config"), e.to_string()))?
        }
        Some(other) => {
            return Err(c.err(
                key("plugin_config"),
                format!("expected a string or a table, found {}", other.type_str()),
            ))
        }
    };
    let allowed_upgrades: Vec<String> = r
        .allowed_upgrades
        .unwrap_or_else(|| vec!["websocket".to_string()])
        .into_iter()
        .map(|p| p.to_ascii_lowercase())
        .collect();
    if allowed_upgrades.is_empty() {
        return Err(c.err(key("allowed_upgrades"), "is empty, so no upgrade could ever open a tunnel (leave it out for the default `[\"websocket\"]`)"));
    }
    for (j, p) in allowed_upgrades.iter().enumerate() {
        let token = !p.is_empty() && p.bytes().all(|b| b.is_ascii_graphic() && b != b',');
        if !token {
            return Err(c.err(
                key(&format!("allowed_upgrades[{j}]")),
                format!("`{p}` is not a protocol token"),
            ));
        }
    }
    let buffer_size = in_range(
        c,
        key("buffer_size"),
        r.buffer_size,
        DEFAULT_BUFFER_SIZE,
        BUFFER_RANGE.0,
        BUFFER_RANGE.1,
    )?;
    let positive = |k: &str, d: Option<std::time::Duration>, def| match d {
        Some(d) if d.is_zero() => Err(c.err(key(k), "must be greater than zero")),
        Some(d) => Ok(d),
        None => Ok(def),
    };
    Ok(RouteConfig {
        name,
        host,
        path_prefix,
        upstreams: names,
        plugin,
        plugin_config,
        allowed_upgrades,
        idle_timeout: positive("idle_timeout", r.idle_timeout, DEFAULT_IDLE_TIMEOUT)?,
        response_timeout: positive(
            "response_timeout",
            r.response_timeout,
            DEFAULT_RESPONSE_TIMEOUT,
        )?,
        limits: PluginLimits {
            deadline: positive(
                "plugin_deadline",
                r.plugin_deadline,
                DEFAULT_PLUGIN_DEADLINE,
            )?,
            memory: in_range(
                c,
                key("plugin_memory"),
                r.plugin_memory,
                DEFAULT_PLUGIN_MEMORY,
                1 << 20,
                MAX_PLUGIN_MEMORY,
            )?,
            exchanges: r.plugin_exchanges.unwrap_or(DEFAULT_PLUGIN_EXCHANGES),
            output: in_range(
                c,
                key("plugin_output_limit"),
                r.plugin_output_limit,
                DEFAULT_PLUGIN_OUTPUT,
                1024,
                64 << 20,
            )?,
        },
        on_plugin_failure: r.on_plugin_failure.unwrap_or(FailurePolicy::FailClosed),
        buffer_size,
        max_lifetime: match r.max_lifetime {
            Some(d) if d.is_zero() => {
                return Err(c.err(
                    key("max_lifetime"),
                    "must be greater than zero (leave it out for no limit)",
                ))
            }
            other => other,
        },
        keepalive: match (r.keepalive_interval, r.keepalive_timeout) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(c.err(key("keepalive_timeout"), "needs `keepalive_interval` too"))
            }
            (Some(i), _) if i.is_zero() => {
                return Err(c.err(key("keepalive_interval"), "must be greater than zero"))
            }
            (Some(_), Some(t)) if t.is_zero() => {
                return Err(c.err(key("keepalive_timeout"), "must be greater than zero"))
            }
            (Some(interval), t) => Some(Keepalive {
                interval,
                timeout: t.unwrap_or(DEFAULT_KEEPALIVE_TIMEOUT),
            }),
        },
    })
}

/// `value` (or `default`) if within `min..=max`, else an error naming `key`.
fn in_range(
    c: &Checker,
    key: String,
    value: Option<usize>,
    default: usize,
    min: usize,
    max: usize,
) -> Result<usize, ConfigError> {
    let v = value.unwrap_or(default);
    if (min..=max).contains(&v) {
        Ok(v)
    } else {
        Err(c.err(key, format!("{v} bytes is outside {min}..={max}")))
    }
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
