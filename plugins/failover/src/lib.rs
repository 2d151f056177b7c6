//! `failover`: the plugin as the client of the upstream upgrade, trying the
//! configured upstreams in order. The client's request is forwarded as the
//! pass-through plugin would; the first upstream to answer `101` is tunnelled.
//! A connect error (or timeout, or bad answer) or a failing status sends the
//! request on to the next; when all fail, the last failing answer is relayed,
//! or, if none answered at all, the last error is answered (502, or 504 for a
//! timeout). The rules live in `attempt.rs`.
//!
//! # Settings (TOML, the route's `plugin_config`)
//! ```toml
//! upstreams = ["a", "b"]      # required, at least one; tried in order; "" = the route's default
//! retry_on = [502, 503, 504]  # optional: the statuses that count as failure;
//!                             # default: every status but 101
//! ```

mod attempt;

use serde::Deserialize;
use upgate_sdk::forward::{error_response, into_forward_request};
use upgate_sdk::{
    config, export_plugin, log, upstream, Outcome, Peer, Plugin, RequestHead, Response, Tunnel,
};

use attempt::{Policy, Verdict};

/// The plugin's settings, as written in TOML.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// `upstreams`: the upstream names, in the order tried (required, non-empty;
    /// `""` is the route's default).
    upstreams: Vec<String>,
    /// `retry_on`: the statuses that count as failure (default: all but 101).
    retry_on: Option<Vec<u16>>,
}

/// Whether `s` is an RFC 9110 token; upstream names other than `""` must be.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

impl Settings {
    /// Checks every value; the error names the offending key.
    fn validate(self) -> Result<Policy, String> {
        if self.upstreams.is_empty() {
            return Err("upstreams must name at least one upstream".to_owned());
        }
        for (i, name) in self.upstreams.iter().enumerate() {
            if !name.is_empty() && !is_token(name) {
                return Err(format!(
                    "upstreams[{i}]: {name:?} is not a valid upstream name (a token, or \"\" for the route's default)"
                ));
            }
        }
        for (i, &status) in self.retry_on.iter().flatten().enumerate() {
            if status == 101 {
                return Err(format!(
                    "retry_on[{i}]: 101 is success, it cannot count as failure"
                ));
            }
            if !(100..=599).contains(&status) {
                return Err(format!("retry_on[{i}]: {status} is not an HTTP status"));
            }
        }
        Ok(Policy {
            upstreams: self.upstreams,
            retry_on: self.retry_on,
        })
    }
}

/// Parses and validates the route's settings.
fn policy() -> Result<Policy, String> {
    config::parse::<Settings>()?.validate()
}

struct Failover;

impl Plugin for Failover {
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
        let up = into_forward_request(&peer, req);
        let verdict = policy.run(
            |name| upstream::send(name, &up),
            |exchange| exchange.status(),
        );
        match verdict {
            Verdict::Tunnel(exchange) => Outcome::Tunnel(Tunnel {
                exchange,
                client_head: None,
            }),
            Verdict::Relay(exchange) => Outcome::Relay(exchange),
            Verdict::Fail(err) => Outcome::Respond(error_response(&err)),
        }
    }
}

export_plugin!(Failover);

#[cfg(test)]
mod tests;
