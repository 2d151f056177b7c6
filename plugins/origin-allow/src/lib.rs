//! `origin-allow`: refuses cross-site WebSocket hijacking. A browser sends the
//! page's origin in `Origin` on every WebSocket handshake; this plugin lets the
//! upgrade through (as the pass-through plugin would) only when that origin is
//! on the configured list, and otherwise answers `403 origin not allowed`.
//!
//! # Settings (TOML, the route's `plugin_config`)
//! ```toml
//! origins = ["https://app.example.com", "https://*.example.com"]  # required, non-empty
//! allow_missing = false   # let requests without Origin through (non-browser clients)
//! status = 403            # status of the rejection, 400..=599
//! ```
//! Matching is described in the README; the rules live in `origin.rs`.

mod origin;

use serde::Deserialize;
use upgate_sdk::{
    config, export_plugin, log, passthrough, Outcome, Peer, Plugin, RequestHead, Response,
};

use origin::{Origin, Pattern};

/// The plugin's settings, as written in TOML.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// `origins`: the accepted origins, `scheme://host[:port]`, `*.` allowed
    /// before the host (required, non-empty).
    origins: Vec<String>,
    /// `allow_missing`: let a request without `Origin` through (default false).
    #[serde(default)]
    allow_missing: bool,
    /// `status`: the status of a rejection (default 403).
    #[serde(default = "default_status")]
    status: u16,
}

fn default_status() -> u16 {
    403
}

/// Validated settings, ready to check requests.
#[derive(Debug)]
struct Policy {
    /// The parsed `origins`.
    patterns: Vec<Pattern>,
    /// Whether a request without `Origin` passes.
    allow_missing: bool,
    /// The status of a rejection.
    status: u16,
}

impl Settings {
    /// Checks every value; the error names the offending key.
    fn validate(self) -> Result<Policy, String> {
        if self.origins.is_empty() {
            return Err("origins must hold at least one origin".to_owned());
        }
        let patterns = self
            .origins
            .iter()
            .enumerate()
            .map(|(i, o)| Pattern::parse(o).map_err(|why| format!("origins[{i}] {o:?}: {why}")))
            .collect::<Result<_, _>>()?;
        if !(400..=599).contains(&self.status) {
            return Err(format!(
                "status {} is not a client or server error (400..=599)",
                self.status
            ));
        }
        Ok(Policy {
            patterns,
            allow_missing: self.allow_missing,
            status: self.status,
        })
    }
}

impl Policy {
    /// Whether `req` may pass, and why not if it may not (for the log).
    fn check(&self, req: &RequestHead) -> Result<(), String> {
        let mut values = req.header_values("origin");
        let (Some(value), None) = (values.next(), values.next()) else {
            return match req.header("origin") {
                None if self.allow_missing => Ok(()),
                None => Err("no Origin header".to_owned()),
                Some(_) => Err("more than one Origin header".to_owned()),
            };
        };
        let allowed =
            Origin::parse(value).is_some_and(|o| self.patterns.iter().any(|p| p.matches(&o)));
        if allowed {
            Ok(())
        } else {
            Err(format!(
                "origin {:?} not allowed",
                String::from_utf8_lossy(value)
            ))
        }
    }

    /// The answer to a request whose origin is not allowed.
    fn rejection(&self) -> Response {
        Response::text(self.status, "origin not allowed\n")
    }
}

/// Parses and validates the route's settings.
fn policy() -> Result<Policy, String> {
    config::parse::<Settings>()?.validate()
}

struct OriginAllow;

impl Plugin for OriginAllow {
    fn on_load() -> Result<(), String> {
        policy().map(drop)
    }

    fn on_upgrade(peer: Peer, req: RequestHead) -> Outcome {
        let policy = match policy() {
            Ok(policy) => policy,
            Err(e) => {
                log::error(format!("refusing the upgrade: {e}"));
                return Outcome::Respond(Response::text(500, "plugin misconfigured\n"));
            }
        };
        match policy.check(&req) {
            Ok(()) => passthrough(&peer, req),
            Err(why) => {
                log::info(format!("rejected upgrade from {}: {why}", peer.client_addr));
                Outcome::Respond(policy.rejection())
            }
        }
    }
}

export_plugin!(OriginAllow);

#[cfg(test)]
mod tests;
