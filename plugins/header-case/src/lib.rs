//! `header-case`: forwards the upgrade like the pass-through plugin, but spells
//! the `Upgrade` and `Connection` values and the header names the way a picky
//! backend wants them (upgate writes names upstream exactly as a plugin sets them).
//!
//! # Settings (TOML, the route's `plugin_config`)
//! ```toml
//! upgrade_value = "WebSocket"     # exact Upgrade value sent; default: the client's
//! connection_value = "Upgrade"    # exact Connection value sent; default "Upgrade"
//! header_names = "preserve"       # "preserve" | "title" (Sec-Websocket-Key) | "lower"
//!
//! [names]                         # exact spellings, applied after header_names,
//! "sec-websocket-key" = "Sec-WebSocket-Key"   # matched case-insensitively
//! "upgrade" = "UPGRADE"
//! ```
//! Unknown keys and bad values are refused when the plugin loads.

use std::collections::BTreeMap;

use serde::Deserialize;
use upgate_sdk::forward::{into_forward_request, outcome_of};
use upgate_sdk::{
    config, export_plugin, log, upstream, Outcome, Peer, Plugin, RequestHead, Response,
};

/// How every header name is spelled upstream, before `[names]` applies.
#[derive(Deserialize, Default, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum NameStyle {
    /// As the client (or the pass-through rules) spelled it.
    #[default]
    Preserve,
    /// Each dash-separated word capitalised: `Sec-Websocket-Key`.
    Title,
    /// All lower case: `sec-websocket-key`.
    Lower,
}

/// The plugin's settings, as written in TOML.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// `upgrade_value`: the exact `Upgrade` value sent; `None` keeps the client's.
    upgrade_value: Option<String>,
    /// `connection_value`: the exact `Connection` value sent (default "Upgrade").
    #[serde(default = "default_connection")]
    connection_value: String,
    /// `header_names`: how every header name is spelled (default "preserve").
    #[serde(default)]
    header_names: NameStyle,
    /// `[names]`: exact spellings by name (any case), applied last.
    #[serde(default)]
    names: BTreeMap<String, String>,
}

fn default_connection() -> String {
    "Upgrade".to_owned()
}

/// Validated settings, ready to apply.
#[derive(Debug)]
struct Rules {
    /// The `Upgrade` value to send, if not the client's.
    upgrade_value: Option<String>,
    /// The `Connection` value to send on an upgrade.
    connection_value: String,
    /// The spelling applied to every name first.
    style: NameStyle,
    /// Exact spellings, keyed by the lower-cased name.
    names: BTreeMap<String, String>,
}

/// Whether `name` is a valid field name (an RFC 9110 token).
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Whether `value` is a usable field value: not empty, no control characters.
fn is_field_value(value: &str) -> bool {
    !value.trim().is_empty() && !value.chars().any(|c| c.is_control() && c != '\t')
}

impl Settings {
    /// Checks every value; the error names the offending key.
    fn validate(self) -> Result<Rules, String> {
        if let Some(v) = &self.upgrade_value {
            if !is_field_value(v) {
                return Err(format!("upgrade_value {v:?} is not a valid header value"));
            }
        }
        let conn = &self.connection_value;
        if !is_field_value(conn) {
            return Err(format!(
                "connection_value {conn:?} is not a valid header value"
            ));
        }
        let has_upgrade = conn
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
        if !has_upgrade {
            return Err(format!(
                "connection_value {conn:?} must hold the token \"upgrade\""
            ));
        }
        let mut names = BTreeMap::new();
        for (name, spelling) in self.names {
            if !is_token(&name) || !is_token(&spelling) {
                return Err(format!(
                    "names: {name:?} = {spelling:?} is not a valid header name"
                ));
            }
            if !name.eq_ignore_ascii_case(&spelling) {
                return Err(format!(
                    "names: {name:?} = {spelling:?} names another header; only the case may change"
                ));
            }
            if names.insert(name.to_ascii_lowercase(), spelling).is_some() {
                return Err(format!(
                    "names: {name:?} is given twice (in different cases)"
                ));
            }
        }
        Ok(Rules {
            upgrade_value: self.upgrade_value,
            connection_value: self.connection_value,
            style: self.header_names,
            names,
        })
    }
}

/// Parses and validates the route's settings.
fn rules() -> Result<Rules, String> {
    config::parse::<Settings>()?.validate()
}

/// `name` in title case: `sec-websocket-key` → `Sec-Websocket-Key`.
fn title_case(name: &str) -> String {
    let mut word_start = true;
    name.chars()
        .map(|c| {
            let out = if word_start {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            word_start = c == '-';
            out
        })
        .collect()
}

impl Rules {
    /// Rewrites the upstream request `up` (built by the pass-through rules).
    fn apply(&self, up: &mut RequestHead) {
        let upgrading = up.header("upgrade").is_some();
        for header in &mut up.headers {
            if upgrading && header.is("upgrade") {
                if let Some(value) = &self.upgrade_value {
                    header.value = value.as_bytes().to_vec();
                }
            } else if upgrading && header.is("connection") {
                header.value = self.connection_value.as_bytes().to_vec();
            }
            match self.style {
                NameStyle::Preserve => {}
                NameStyle::Title => header.name = title_case(&header.name),
                NameStyle::Lower => header.name.make_ascii_lowercase(),
            }
            if let Some(spelling) = self.names.get(&header.name.to_ascii_lowercase()) {
                header.name.clone_from(spelling);
            }
        }
    }
}

struct HeaderCase;

impl Plugin for HeaderCase {
    fn on_load() -> Result<(), String> {
        rules().map(drop)
    }

    fn on_upgrade(peer: Peer, req: RequestHead) -> Outcome {
        let rules = match rules() {
            Ok(rules) => rules,
            Err(e) => {
                log::error(format!("refusing the upgrade: {e}"));
                return Outcome::Respond(Response::text(500, "plugin misconfigured\n"));
            }
        };
        let mut up = into_forward_request(&peer, req);
        rules.apply(&mut up);
        outcome_of(upstream::send(upstream::DEFAULT, &up))
    }
}

export_plugin!(HeaderCase);

#[cfg(test)]
mod tests;
