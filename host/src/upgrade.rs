//! One upgrade request, start to finish: the route's plugin decides, the host
//! checks the decision against the invariants ([`crate::invariants`]) and carries
//! it out: answer the client, relay the upstream's answer, or switch protocols and
//! hand both connections to a [`crate::tunnel`].

use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use std::sync::Arc;
use std::time::Instant;
use tracing::{info, warn};

use crate::body::{full, status_response, ProxyBody};
use crate::config::FailurePolicy;
use crate::exchange::Exchange;
use crate::framing::{codings_under_chunked, framing, last_coding, Framing};
use crate::headers::{field_tokens, is_hop_by_hop, websocket_accept};
use crate::invariants::check_switch;
use crate::plugin::{CallFailure, Decision, LoadedPlugin, PeerInfo, PluginRuntime};
use crate::relay_body::relay_body;
use crate::router::Route;
use crate::splice::Mode;
use crate::switch::{Switch, Tunnel};
use crate::tunnel::TunnelLimits;
use crate::tunnels::Tunnels;
use crate::wire::{self, RequestHead, ResponseHead};

/// What an upgrade request gets: an answer (an error, the plugin's response, a
/// relayed upstream answer), or a switch of protocols and its tunnel.
// Returned once per upgrade and matched at once: boxing the switch would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Decided {
    /// An ordinary response: the connection goes on as HTTP.
    Answer(Response<ProxyBody>),
    /// A 101, then a tunnel.
    Switch(Switch),
}

/// Handles an upgrade request on a connection hyper serves: decides, and for a
/// switch hands the connection, once hyper lets go of it, to the tunnel.
pub async fn handle(
    route: Arc<Route>,
    peer: PeerInfo,
    mut req: Request<Incoming>,
    head: RequestHead,
    tunnels: &Arc<Tunnels>,
) -> Response<ProxyBody> {
    match decide(route, peer, head, tunnels).await {
        Decided::Answer(res) => res,
        Decided::Switch(Switch { response, tunnel }) => {
            let on_upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(tunnel.run_after(on_upgrade));
            response
        }
    }
}

/// Decides an upgrade request on `route`. `head` is the request as the client
/// spelled it (names exact when the host read it off the wire, else lower case).
pub async fn decide(
    route: Arc<Route>,
    peer: PeerInfo,
    head: RequestHead,
    tunnels: &Arc<Tunnels>,
) -> Decided {
    let started = Instant::now();
    let offered = wire::tokens(&head.headers, "upgrade");
    let client_key = wire::find(&head.headers, "sec-websocket-key").map(<[u8]>::to_vec);
    let runtime = PluginRuntime::global();
    let fail_open = route.config.on_plugin_failure == FailurePolicy::FailOpen;
    let fallback_head = fail_open.then(|| head.clone());
    let mut decision = runtime
        .on_upgrade(&route.plugin, route.clone(), &peer, head)
        .await;
    let log = Log {
        route: &route,
        peer: &peer,
        started,
    };
    let mut ran = route.plugin.clone();
    if let (Err(failure), Some(head)) = (&decision, fallback_head) {
        log.plugin_failed(&ran, failure, "fail-open: pass-through");
        decision = match runtime.passthrough() {
            Ok(pt) => {
                ran = pt;
                runtime.on_upgrade(&ran, route.clone(), &peer, head).await
            }
            Err(e) => Err(CallFailure::Instantiate(e)),
        };
    }
    let answer = match decision {
        Err(failure) => {
            log.plugin_failed(&ran, &failure, "502");
            status_response(
                StatusCode::BAD_GATEWAY,
                &format!("plugin failed ({})", failure.kind()),
            )
        }
        Ok(Decision::Respond(head, body)) => respond(&log, head, body),
        Ok(Decision::Relay(ex)) if ex.response.status == 101 => {
            log.line(
                "plugin-error",
                Some(&ex),
                502,
                "plugin asked to relay a 101",
            );
            status_response(
                StatusCode::BAD_GATEWAY,
                "the plugin relayed a 101 without a tunnel",
            )
        }
        Ok(Decision::Relay(ex)) => relay(&log, ex, "relay"),
        Ok(Decision::Tunnel { exchange, .. }) if exchange.response.status != 101 => {
            // Invariant 3: a non-101 answer is an ordinary response, never a tunnel.
            relay(&log, exchange, "relay")
        }
        Ok(Decision::Tunnel {
            exchange,
            client_head,
        }) => {
            let allowed = &route.config.allowed_upgrades;
            let proto = match check_switch(&exchange.request, &exchange.response, &offered, allowed)
            {
                Ok(p) => p,
                Err(refusal) => {
                    log.line("refused-switch", Some(&exchange), 502, &refusal.to_string());
                    return Decided::Answer(status_response(
                        StatusCode::BAD_GATEWAY,
                        &refusal.to_string(),
                    ));
                }
            };
            let response = switch_response(
                &exchange.response,
                client_head,
                &proto,
                client_key.as_deref(),
            );
            log.line("tunnel", Some(&exchange), 101, &proto);
            let route_name = route.config.name.clone();
            let ticket = tunnels.open(&route_name);
            // Keep only what the tunnel needs: the heads (and the read buffer's
            // spare capacity) would otherwise live as long as the tunnel.
            let Exchange {
                stream,
                leftover,
                upstream,
                ..
            } = exchange;
            let tunnel = Tunnel {
                upstream_end: stream,
                upstream_first: leftover.to_vec(),
                upstream,
                limits: TunnelLimits {
                    idle_timeout: route.config.idle_timeout,
                    buffer_size: route.config.buffer_size,
                    max_lifetime: route.config.max_lifetime,
                },
                mode: Mode {
                    frames: proto == "websocket",
                    keepalive: route.config.keepalive.map(|k| (k.interval, k.timeout)),
                },
                ticket,
                route: route_name,
                client: peer.client_addr,
            };
            // The 101s of one scheduler turn go out together, as the
            // upstream connects do (crate::exchange::send): the client is
            // woken once, not once per plugin call.
            tokio::task::yield_now().await;
            return Decided::Switch(Switch { response, tunnel });
        }
    };
    Decided::Answer(answer)
}

struct Log<'a> {
    route: &'a Route,
    peer: &'a PeerInfo,
    started: Instant,
}

impl Log<'_> {
    fn line(&self, outcome: &str, ex: Option<&Exchange>, status: u16, detail: &str) {
        info!(
            route = %self.route.config.name,
            client = %self.peer.client_addr,
            outcome,
            upstream = ex.map_or("-", |e| e.upstream.as_str()),
            status,
            plugin = %self.route.plugin.name,
            elapsed_us = self.started.elapsed().as_micros() as u64,
            detail,
            "upgrade"
        );
    }

    /// Logs and counts a plugin failure with what the route does about it.
    fn plugin_failed(&self, plugin: &LoadedPlugin, failure: &CallFailure, action: &str) {
        let total = PluginRuntime::global().failures.count(failure);
        warn!(
            route = %self.route.config.name,
            client = %self.peer.client_addr,
            outcome = "plugin-error",
            plugin = %plugin.name,
            version = %plugin.hash,
            kind = failure.kind(),
            failures_of_kind = total,
            action,
            error = %failure,
            "upgrade"
        );
    }
}

/// Copies wire headers into `res`, skipping hop-by-hop ones and those hyper frames itself.
fn copy_headers(res: &mut Response<ProxyBody>, headers: Vec<wire::Header>, skip_length: bool) {
    let fields = || {
        headers
            .iter()
            .map(|h| (h.name.as_str(), h.value.as_slice()))
    };
    let named: Vec<&[u8]> = field_tokens(fields(), "connection").collect();
    for h in &headers {
        if is_hop_by_hop(&h.name, &named)
            || (skip_length && h.name.eq_ignore_ascii_case("content-length"))
        {
            continue;
        }
        match (
            HeaderName::from_bytes(h.name.as_bytes()),
            HeaderValue::from_bytes(&h.value),
        ) {
            (Ok(n), Ok(v)) => {
                res.headers_mut().append(n, v);
            }
            _ => warn!(header = %h.name, "dropped an invalid header"),
        }
    }
}

fn respond(log: &Log, head: ResponseHead, body: Vec<u8>) -> Response<ProxyBody> {
    let Ok(status) = StatusCode::from_u16(head.status) else {
        log.line("plugin-error", None, 502, "invalid status");
        return status_response(
            StatusCode::BAD_GATEWAY,
            "the plugin answered an invalid status",
        );
    };
    if status.is_informational() {
        log.line("plugin-error", None, 502, "1xx response");
        return status_response(
            StatusCode::BAD_GATEWAY,
            "the plugin answered a 1xx status without an upstream",
        );
    }
    let outcome = if status.is_client_error() {
        "rejected"
    } else {
        "respond"
    };
    log.line(outcome, None, head.status, "");
    let mut res = Response::new(full(body));
    *res.status_mut() = status;
    copy_headers(&mut res, head.headers, true);
    res
}

fn relay(log: &Log, ex: Exchange, outcome: &str) -> Response<ProxyBody> {
    let fields = || {
        ex.response
            .headers
            .iter()
            .map(|h| (h.name.as_str(), h.value.as_slice()))
    };
    let head_method = ex.request.method.eq_ignore_ascii_case("HEAD");
    let te = last_coding(fields());
    // The body is relayed with its chunks decoded and framed anew by hyper,
    // which adds `chunked` to a `Transfer-Encoding` it is given: the codings
    // under the chunks must be given, or coded bytes pass for the content.
    let codings = codings_under_chunked(fields());
    let framing = match framing(ex.response.status, head_method, te, fields()) {
        Ok(f) => f,
        Err(e) => {
            log.line("bad-response", Some(&ex), 502, &e);
            return status_response(StatusCode::BAD_GATEWAY, &format!("upstream sent {e}"));
        }
    };
    let Ok(status) = StatusCode::from_u16(ex.response.status) else {
        log.line("bad-response", Some(&ex), 502, "invalid status");
        return status_response(
            StatusCode::BAD_GATEWAY,
            "upstream answered an invalid status",
        );
    };
    log.line(outcome, Some(&ex), ex.response.status, "");
    let Exchange {
        stream,
        leftover,
        response,
        ..
    } = ex;
    let mut res = Response::new(relay_body(stream, leftover, framing));
    *res.status_mut() = status;
    copy_headers(
        &mut res,
        response.headers,
        framing != Framing::Length(0) && !matches!(framing, Framing::Length(_)),
    );
    if !codings.is_empty() {
        match HeaderValue::from_bytes(&codings) {
            Ok(v) => {
                res.headers_mut().insert(http::header::TRANSFER_ENCODING, v);
            }
            Err(_) => warn!("dropped an invalid Transfer-Encoding"),
        }
    }
    res
}

/// The 101 the client gets: the plugin's head or the upstream's, hop-by-hop
/// headers rebuilt, and for WebSocket the accept key computed from the client's key.
fn switch_response(
    upstream: &ResponseHead,
    plugin_head: Option<ResponseHead>,
    proto: &str,
    client_key: Option<&[u8]>,
) -> Response<ProxyBody> {
    let source = plugin_head.unwrap_or_else(|| upstream.clone());
    let spelled = wire::find(&upstream.headers, "upgrade")
        .unwrap_or(proto.as_bytes())
        .to_vec();
    let mut res = Response::new(full(""));
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = source
        .headers
        .into_iter()
        .filter(|h| !h.name.eq_ignore_ascii_case("sec-websocket-accept"))
        .collect();
    copy_headers(&mut res, headers, true);
    let hs = res.headers_mut();
    if let Ok(v) = HeaderValue::from_bytes(&spelled) {
        hs.insert(http::header::UPGRADE, v);
    }
    hs.insert(
        http::header::CONNECTION,
        HeaderValue::from_static("upgrade"),
    );
    if proto == "websocket" {
        if let Some(Ok(v)) =
            client_key.map(|k| HeaderValue::from_str(&websocket_accept(k.trim_ascii())))
        {
            hs.insert("sec-websocket-accept", v);
        }
    }
    res
}
