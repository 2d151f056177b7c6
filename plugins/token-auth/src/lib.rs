//! `token-auth`: lets an upgrade through (as the pass-through plugin would) only
//! when the client presents one of the configured tokens; otherwise answers
//! `401` with `WWW-Authenticate: Bearer realm="upgate"`.
//!
//! # Settings (TOML, the route's `plugin_config`)
//! ```toml
//! tokens = ["s3cret", "other"]   # required, non-empty; no empty tokens, no whitespace
//! header = "Authorization"       # header holding "Bearer <token>" or the bare token;
//!                                # default "Authorization", "" to not look at headers
//! query = "access_token"         # query parameter holding the (percent-encoded) token;
//!                                # default "access_token", "" to not look at the query
//! strip_query = true             # remove that parameter from the target sent
//!                                # upstream (default true)
//! ```
//! Tokens are compared in constant time for a given length. `+` in the query is
//! taken literally (only `%XX` escapes are decoded).

mod token;

use serde::Deserialize;
use upgate_sdk::Response;
use upgate_sdk::{config, export_plugin, log, passthrough, Outcome, Peer, Plugin, RequestHead};

/// The plugin's settings, as written in TOML.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// `tokens`: the accepted tokens (required, non-empty).
    tokens: Vec<String>,
    /// `header`: the header carrying the token ("" for none).
    #[serde(default = "default_header")]
    header: String,
    /// `query`: the query parameter carrying the token ("" for none).
    #[serde(default = "default_query")]
    query: String,
    /// `strip_query`: remove the query parameter before forwarding.
    #[serde(default = "default_strip")]
    strip_query: bool,
}

fn default_header() -> String {
    "Authorization".to_owned()
}

fn default_query() -> String {
    "access_token".to_owned()
}

fn default_strip() -> bool {
    true
}

impl Settings {
    /// Checks the values serde cannot; the error names the offending key.
    fn validate(self) -> Result<Self, String> {
        if self.tokens.is_empty() {
            return Err("tokens must hold at least one token".to_owned());
        }
        for (i, token) in self.tokens.iter().enumerate() {
            if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(format!("tokens[{i}] is empty or holds whitespace"));
            }
        }
        if self.header.is_empty() && self.query.is_empty() {
            return Err(
                "header and query are both empty: a client could not present a token".to_owned(),
            );
        }
        let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if !self.header.bytes().all(tchar) {
            return Err(format!(
                "header {:?} is not a valid header name",
                self.header
            ));
        }
        Ok(self)
    }

    /// Whether `req` carries an accepted token, and why not if it does not.
    fn check(&self, req: &RequestHead) -> Result<(), &'static str> {
        let mut presented = false;
        let mut valid = false;
        if !self.header.is_empty() {
            for value in req.header_values(&self.header) {
                presented = true;
                valid |= token::accepted(token::from_header(value), &self.tokens);
            }
        }
        if !self.query.is_empty() {
            for value in token::query_values(&req.target, &self.query) {
                presented = true;
                valid |= token::accepted(&value, &self.tokens);
            }
        }
        match (valid, presented) {
            (true, _) => Ok(()),
            (false, true) => Err("invalid token"),
            (false, false) => Err("no token"),
        }
    }
}

/// Parses and validates the route's settings.
fn settings() -> Result<Settings, String> {
    config::parse::<Settings>()?.validate()
}

/// The answer to a client without an accepted token.
fn unauthorized() -> Response {
    Response::text(401, "missing or invalid token\n")
        .with_header("WWW-Authenticate", "Bearer realm=\"upgate\"")
}

struct TokenAuth;

impl Plugin for TokenAuth {
    fn on_load() -> Result<(), String> {
        settings().map(drop)
    }

    fn on_upgrade(peer: Peer, mut req: RequestHead) -> Outcome {
        let settings = match settings() {
            Ok(settings) => settings,
            Err(e) => {
                log::error(format!("refusing the upgrade: {e}"));
                return Outcome::Respond(Response::text(500, "plugin misconfigured\n"));
            }
        };
        if let Err(why) = settings.check(&req) {
            log::info(format!("rejected upgrade from {}: {why}", peer.client_addr));
            return Outcome::Respond(unauthorized());
        }
        if settings.strip_query && !settings.query.is_empty() {
            req.target = token::strip_query(&req.target, &settings.query);
        }
        passthrough(&peer, req)
    }
}

export_plugin!(TokenAuth);

#[cfg(test)]
mod tests;
