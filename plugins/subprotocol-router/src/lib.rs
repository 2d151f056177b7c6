//! `subprotocol-router`: picks the upstream of a WebSocket upgrade by the
//! subprotocols the client offers in `Sec-WebSocket-Protocol`. The first offered
//! protocol (in the client's order) with a route wins; the client's request is
//! forwarded as the pass-through plugin would, but to that upstream. With no
//! offered protocol routed, the `default` upstream is used, or the client gets
//! `400 no supported subprotocol`.
//!
//! # Settings (TOML, the route's `plugin_config`)
//! ```toml
//! default = "web"          # optional: upstream for requests with no routed protocol
//!
//! [routes]                 # offered subprotocol (exact, case-sensitive) = upstream
//! "mqtt" = "broker"
//! "graphql-ws" = "api"
//! ```
//! Every upstream named must be in the route's `extra_upstreams` (or be its
//! `upstream`); another name fails with `unknown-upstream`, answered `502`.

use std::collections::BTreeMap;

use serde::Deserialize;
use upgate_sdk::forward::{into_forward_request, outcome_of};
use upgate_sdk::{
    config, export_plugin, list_elements, log, upstream, Outcome, Peer, Plugin, RequestHead,
    Response,
};

/// The plugin's settings, as written in TOML.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// `[routes]`: offered subprotocol → upstream name (default: none).
    #[serde(default)]
    routes: BTreeMap<String, String>,
    /// `default`: the upstream for requests offering no routed protocol
    /// (default: none, such requests get 400).
    default: Option<String>,
}

/// Where a request goes.
#[derive(Debug, PartialEq, Eq)]
enum Choice<'a> {
    /// The offered `protocol` is routed to `upstream`.
    Routed {
        /// The first offered protocol with a route.
        protocol: &'a str,
        /// Its upstream.
        upstream: &'a str,
    },
    /// No offered protocol is routed: the `default` upstream.
    Default(&'a str),
    /// No offered protocol is routed and there is no default.
    Unsupported,
}

/// Whether `s` is an RFC 9110 token, as subprotocol names are (RFC 6455 §4.1);
/// upstream names are held to the same rule.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl Settings {
    /// Checks every name; the error names the offending key.
    fn validate(self) -> Result<Self, String> {
        for (protocol, upstream) in &self.routes {
            if !is_token(protocol) {
                return Err(format!(
                    "routes: {protocol:?} is not a valid subprotocol name (a non-empty token)"
                ));
            }
            if !is_token(upstream) {
                return Err(format!(
                    "routes.{protocol}: {upstream:?} is not a valid upstream name (a non-empty token)"
                ));
            }
        }
        match &self.default {
            Some(d) if !is_token(d) => Err(format!(
                "default: {d:?} is not a valid upstream name (a non-empty token)"
            )),
            None if self.routes.is_empty() => Err(
                "routes is empty and there is no default: every upgrade would be refused"
                    .to_owned(),
            ),
            _ => Ok(self),
        }
    }

    /// The upstream for `req`: the route of the first protocol it offers that
    /// has one (all `Sec-WebSocket-Protocol` lines, in order), else the default.
    fn choose<'a>(&'a self, req: &'a RequestHead) -> Choice<'a> {
        let routed = req
            .header_values("sec-websocket-protocol")
            .flat_map(list_elements)
            .filter_map(|p| std::str::from_utf8(p).ok())
            .find_map(|p| self.routes.get_key_value(p));
        match (routed, &self.default) {
            (Some((protocol, upstream)), _) => Choice::Routed { protocol, upstream },
            (None, Some(default)) => Choice::Default(default),
            (None, None) => Choice::Unsupported,
        }
    }
}

/// Parses and validates the route's settings.
fn settings() -> Result<Settings, String> {
    config::parse::<Settings>()?.validate()
}

/// The answer to a client offering no routed protocol when there is no default.
fn unsupported() -> Response {
    Response::text(400, "no supported subprotocol\n")
}

struct SubprotocolRouter;

impl Plugin for SubprotocolRouter {
    fn on_load() -> Result<(), String> {
        settings().map(drop)
    }

    fn on_upgrade(peer: Peer, req: RequestHead) -> Outcome {
        let settings = match settings() {
            Ok(settings) => settings,
            Err(e) => {
                log::error(format!("refusing the upgrade: {e}"));
                return Outcome::Respond(Response::text(500, "plugin misconfigured\n"));
            }
        };
        let upstream = match settings.choose(&req) {
            Choice::Routed { protocol, upstream } => {
                log::debug(format!("subprotocol {protocol:?} → upstream {upstream:?}"));
                upstream.to_owned()
            }
            Choice::Default(upstream) => {
                log::debug(format!(
                    "no routed subprotocol → default upstream {upstream:?}"
                ));
                upstream.to_owned()
            }
            Choice::Unsupported => {
                log::info(format!(
                    "rejected upgrade from {}: no supported subprotocol offered",
                    peer.client_addr
                ));
                return Outcome::Respond(unsupported());
            }
        };
        let up = into_forward_request(&peer, req);
        outcome_of(upstream::send(&upstream, &up))
    }
}

export_plugin!(SubprotocolRouter);

#[cfg(test)]
mod tests;
