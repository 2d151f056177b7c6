//! Validates `[[listeners]]`: each address, and what the listener speaks:
//! plain HTTP, HTTP over TLS (`tls`: certificates read here), or TLS
//! pass-through (`passthrough`: server names resolved to upstreams).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use super::raw::{RawListener, RawListenerTls, RawPassthrough};
use super::validate::Checker;
use super::{
    ConfigError, ListenerConfig, ListenerKind, PassthroughConfig, UpstreamConfig,
    DEFAULT_IDLE_TIMEOUT,
};
use crate::tls::names::{check_name, NameMap};
use crate::tls::server::{server_config, CertFiles};

pub(super) fn listeners(
    c: &Checker,
    raw: Vec<RawListener>,
    upstreams: &BTreeMap<String, UpstreamConfig>,
    base: &Path,
) -> Result<Vec<ListenerConfig>, ConfigError> {
    if raw.is_empty() {
        return Err(c.err(
            "listeners",
            "at least one `[[listeners]]` with an `address` is needed",
        ));
    }
    let mut out: Vec<ListenerConfig> = Vec::new();
    for (i, l) in raw.into_iter().enumerate() {
        let address: SocketAddr = l.address.parse().map_err(|_| {
            c.err(
                format!("listeners[{i}].address"),
                format!("`{}` is not an ip:port address", l.address),
            )
        })?;
        if address.port() != 0 && out.iter().any(|o| o.address == address) {
            return Err(c.err(
                format!("listeners[{i}].address"),
                format!("`{address}` is listed twice"),
            ));
        }
        let kind = match (l.tls, l.passthrough) {
            (None, None) => ListenerKind::Http,
            (Some(tls), None) => ListenerKind::Tls(listener_tls(c, i, tls, base)?),
            (None, Some(p)) => ListenerKind::Passthrough(passthrough(c, i, p, upstreams)?),
            (Some(_), Some(_)) => {
                return Err(c.err(
                    format!("listeners[{i}]"),
                    "`tls` and `passthrough` exclude each other: a listener either terminates TLS or passes it through",
                ))
            }
        };
        out.push(ListenerConfig { address, kind });
    }
    Ok(out)
}

fn listener_tls(
    c: &Checker,
    i: usize,
    tls: RawListenerTls,
    base: &Path,
) -> Result<Arc<rustls::ServerConfig>, ConfigError> {
    let files: Vec<CertFiles> = tls
        .certs
        .into_iter()
        .map(|f| CertFiles {
            cert: base.join(f.cert),
            key: base.join(f.key),
            names: f.names,
        })
        .collect();
    server_config(&files).map_err(|e| c.err(format!("listeners[{i}].tls.{}", e.key), e.reason))
}

fn passthrough(
    c: &Checker,
    i: usize,
    p: RawPassthrough,
    upstreams: &BTreeMap<String, UpstreamConfig>,
) -> Result<Arc<PassthroughConfig>, ConfigError> {
    let key = |k: &str| format!("listeners[{i}].passthrough.{k}");
    if p.names.is_empty() && p.default.is_none() {
        return Err(c.err(
            format!("listeners[{i}].passthrough"),
            "needs `names` (server name = upstream) or a `default` upstream",
        ));
    }
    let usable = |k: String, upstream: &str| -> Result<(), ConfigError> {
        match upstreams.get(upstream) {
            None => {
                let known: Vec<&str> = upstreams.keys().map(String::as_str).collect();
                let known = if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                };
                Err(c.err(
                    k,
                    format!("no upstream named `{upstream}` (defined: {known})"),
                ))
            }
            Some(u) if u.tls.is_some() => Err(c.err(
                k,
                format!("upstream `{upstream}` sets `tls`, but pass-through forwards the client's TLS untouched"),
            )),
            Some(_) => Ok(()),
        }
    };
    let mut names = NameMap::default();
    for (name, upstream) in p.names {
        let k = key(&format!("names.{name:?}"));
        check_name(&name).map_err(|why| c.err(k.clone(), why))?;
        usable(k.clone(), &upstream)?;
        if !names.insert(&name, upstream) {
            return Err(c.err(
                k,
                format!("`{name}` is listed twice (names compare without case)"),
            ));
        }
    }
    if let Some(d) = &p.default {
        usable(key("default"), d)?;
    }
    let idle_timeout = match p.idle_timeout {
        Some(d) if d.is_zero() => {
            return Err(c.err(key("idle_timeout"), "must be greater than zero"))
        }
        d => d.unwrap_or(DEFAULT_IDLE_TIMEOUT),
    };
    Ok(Arc::new(PassthroughConfig {
        names,
        default: p.default,
        idle_timeout,
    }))
}
