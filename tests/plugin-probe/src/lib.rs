//! `probe`: a test-only plugin that misbehaves on request, so the integration
//! tests can pin how the host treats each outcome, trap and resource limit.
//!
//! # Settings (TOML)
//! `mode = "..."` (default `"passthrough"`), one of:
//! - `passthrough`: the SDK default.
//! - `reject`: respond 403, header `X-Probe: rejected`, body `rejected by probe`.
//! - `rewrite`: pass through, but upstream gets exactly `UPGRADE: websocket`,
//!   `connection: UPGRADE`, `X-Probe-Header: Exact-Case` and `x-lower-case: 1`.
//! - `trap`: panics inside `on_upgrade`.
//! - `always-tunnel`: sends the pass-through request, returns `tunnel` whatever
//!   the status (the host must refuse a non-101).
//! - `relay-101`: returns `relay` even for a 101.
//! - `respond-after-send`: sends upstream, drops the exchange, responds 200 `probe-ok`.
//! - `loop`: never returns. `alloc`: allocates without end.
//! - `recurse`: unbounded recursion.
//! - `bad-key`: sends the client's key, but tunnels with a client head whose
//!   `Sec-WebSocket-Accept` is forged (`AAAAAAAAAAAAAAAAAAAAAAAAAAA=`).
//! - `big-body`: responds 200 with a body of 2 MiB of `x` (over the default
//!   output limit).
//! - `many-exchanges`: calls `upstream::send` up to 12 times, keeping every
//!   exchange alive, then responds 200 `sent N` (all 12 went) or
//!   `sent N, then <error>` (`<error>` is the WIT name: `limit-reached`, ...).
//! - `alloc-4mib`: allocates and touches 4 MiB, then passes through.
//! - `peer`: pass through, with `X-Probe-Scheme` and `X-Probe-Sni` (the
//!   peer's `scheme` and `tls-server-name`, `-` for none) added upstream.
//! - `bad-block`: calls the raw `upstream.send` import with a request whose
//!   header block is malformed, and responds 200 `refused: <reason>` when the
//!   host answers `invalid-request` (500 otherwise).
//! - `fail-load`: `on_load` fails with `load refused`.
//!
//! Any other mode fails `on_load` with `unknown mode`.

use std::hint::black_box;

use serde::Deserialize;
use upgate_sdk::forward::{into_forward_request, outcome_of};
use upgate_sdk::{config, export_plugin, forward_request, passthrough, upstream};
use upgate_sdk::{Outcome, Peer, Plugin, RequestHead, Response, Tunnel, UpstreamError};

/// The modes `mode` may name (besides `fail-load`).
const MODES: [&str; 16] = [
    "passthrough",
    "reject",
    "rewrite",
    "trap",
    "always-tunnel",
    "relay-101",
    "respond-after-send",
    "loop",
    "alloc",
    "recurse",
    "bad-key",
    "big-body",
    "many-exchanges",
    "alloc-4mib",
    "peer",
    "bad-block",
];

/// The body size of `big-body`.
const BIG_BODY: usize = 2 << 20;
/// The `upstream::send` calls `many-exchanges` tries.
const MANY_EXCHANGES: usize = 12;
/// What `alloc-4mib` allocates.
const ALLOC_4MIB: usize = 4 << 20;

/// The forged accept value of `bad-key`.
const FORGED_ACCEPT: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAA=";

/// The probe's settings.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// `mode`: which behaviour to show (default "passthrough").
    #[serde(default = "default_mode")]
    mode: String,
}

fn default_mode() -> String {
    "passthrough".to_owned()
}

fn mode() -> Result<String, String> {
    let mode = config::parse::<Settings>()?.mode;
    match mode.as_str() {
        "fail-load" => Err("load refused".to_owned()),
        m if MODES.contains(&m) => Ok(mode),
        m => Err(format!("unknown mode {m:?}")),
    }
}

/// Recurses without end; the `black_box`es keep it from becoming a loop.
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth; 16]);
    if black_box(depth == u64::MAX) {
        return frame[1];
    }
    recurse(frame[0] + 1).wrapping_add(black_box(frame[15]))
}

/// The WIT name of `err`'s case.
fn error_kind(err: &UpstreamError) -> &'static str {
    match err {
        UpstreamError::UnknownUpstream(_) => "unknown-upstream",
        UpstreamError::ConnectFailed(_) => "connect-failed",
        UpstreamError::Timeout => "timeout",
        UpstreamError::InvalidRequest(_) => "invalid-request",
        UpstreamError::BadResponse(_) => "bad-response",
        UpstreamError::LimitReached => "limit-reached",
    }
}

/// `many-exchanges`: sends up to [`MANY_EXCHANGES`] requests, all kept open
/// until the answer is built, and says how far it got.
fn many_exchanges(peer: &Peer, req: &RequestHead) -> Outcome {
    let mut kept = Vec::new();
    let mut stopped_by = None;
    for _ in 0..MANY_EXCHANGES {
        match upstream::send(upstream::DEFAULT, &forward_request(peer, req)) {
            Ok(exchange) => kept.push(exchange),
            Err(e) => {
                stopped_by = Some(error_kind(&e));
                break;
            }
        }
    }
    let body = match stopped_by {
        Some(kind) => format!("sent {}, then {kind}", kept.len()),
        None => format!("sent {}", kept.len()),
    };
    drop(kept);
    Outcome::Respond(Response::text(200, body))
}

/// Sends the pass-through request for `req` to the default upstream.
fn send(peer: &Peer, req: RequestHead) -> Result<upgate_sdk::Exchange, Outcome> {
    let up = into_forward_request(peer, req);
    upstream::send(upstream::DEFAULT, &up).map_err(|e| outcome_of(Err(e)))
}

/// Sends `req`'s method and target with a header block that claims one field
/// but holds no bytes for it, through the raw import (the SDK only builds
/// well-formed blocks).
fn bad_block(req: &RequestHead) -> Outcome {
    use upgate_sdk::bindings::upgate::plugin::{types, upstream as raw};
    let head = types::RequestHead {
        method: req.method.clone(),
        target: req.target.clone(),
        headers: vec![1, 0, 0, 0],
    };
    match raw::send(upstream::DEFAULT, &head) {
        Err(UpstreamError::InvalidRequest(reason)) => {
            Outcome::Respond(Response::text(200, format!("refused: {reason}")))
        }
        Err(e) => Outcome::Respond(Response::text(500, format!("{e:?}"))),
        Ok(_) => Outcome::Respond(Response::text(500, "sent")),
    }
}

struct Probe;

impl Plugin for Probe {
    fn on_load() -> Result<(), String> {
        mode().map(drop)
    }

    fn on_upgrade(peer: Peer, req: RequestHead) -> Outcome {
        let mode = match mode() {
            Ok(mode) => mode,
            Err(e) => return Outcome::Respond(Response::text(500, e)),
        };
        let sent = match mode.as_str() {
            "reject" => {
                let resp =
                    Response::new(403, "rejected by probe").with_header("X-Probe", "rejected");
                return Outcome::Respond(resp);
            }
            "rewrite" => {
                let mut up = into_forward_request(&peer, req);
                up.remove_header("upgrade");
                up.remove_header("connection");
                up.append_header("UPGRADE", "websocket");
                up.append_header("connection", "UPGRADE");
                up.set_header("X-Probe-Header", "Exact-Case");
                up.set_header("x-lower-case", "1");
                return outcome_of(upstream::send(upstream::DEFAULT, &up));
            }
            "peer" => {
                let sni = peer
                    .tls_server_name
                    .clone()
                    .unwrap_or_else(|| "-".to_owned());
                let mut up = into_forward_request(&peer, req);
                up.set_header("X-Probe-Scheme", peer.scheme.as_str());
                up.set_header("X-Probe-Sni", sni.as_str());
                return outcome_of(upstream::send(upstream::DEFAULT, &up));
            }
            "trap" => panic!("probe: trap requested"),
            "loop" => {
                let mut n = 0u64;
                loop {
                    n = black_box(n.wrapping_add(1));
                }
            }
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    black_box(&hoard);
                }
            }
            "recurse" => {
                let depth = recurse(black_box(0));
                return Outcome::Respond(Response::text(
                    500,
                    format!("recursion ended at {depth}"),
                ));
            }
            "big-body" => return Outcome::Respond(Response::new(200, vec![b'x'; BIG_BODY])),
            "many-exchanges" => return many_exchanges(&peer, &req),
            "bad-block" => return bad_block(&req),
            "alloc-4mib" => {
                let hoard = black_box(vec![1u8; ALLOC_4MIB]);
                let touched = hoard
                    .iter()
                    .step_by(4096)
                    .map(|&b| u64::from(b))
                    .sum::<u64>();
                black_box(touched);
                drop(hoard);
                return passthrough(&peer, req);
            }
            "always-tunnel" | "relay-101" | "respond-after-send" | "bad-key" => send(&peer, req),
            _ => return passthrough(&peer, req),
        };
        let exchange = match sent {
            Ok(exchange) => exchange,
            Err(outcome) => return outcome,
        };
        match mode.as_str() {
            "always-tunnel" => Outcome::Tunnel(Tunnel {
                exchange,
                client_head: None,
            }),
            "relay-101" => Outcome::Relay(exchange),
            "respond-after-send" => {
                drop(exchange);
                Outcome::Respond(Response::new(200, "probe-ok"))
            }
            _ => {
                let mut head = exchange.response();
                if head.status != 101 {
                    return Outcome::Relay(exchange);
                }
                head.set_header("Sec-WebSocket-Accept", FORGED_ACCEPT);
                Outcome::Tunnel(Tunnel {
                    exchange,
                    client_head: Some(head),
                })
            }
        }
    }
}

export_plugin!(Probe);
