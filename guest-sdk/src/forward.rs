//! The default behaviour, in reusable pieces: build the upstream request from
//! the client's ([`forward_request`]), send it to the route's default upstream,
//! and turn the result into an outcome ([`outcome_of`]): a 101 is tunnelled,
//! anything else relayed, a failed exchange answered with 502/504.
//!
//! Hop-by-hop headers follow RFC 9110 §7.6.1; `Forwarded` follows RFC 7239.

use std::net::{IpAddr, SocketAddr};

use crate::head::{list_elements, trim_ows};
use crate::{log, upstream};
use crate::{Exchange, Header, Outcome, Peer, RequestHead, Response, Tunnel, UpstreamError};

/// Headers that apply to one connection only and are never forwarded as sent
/// (RFC 9110 §7.6.1), besides those the `Connection` header names.
pub const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// What upgate does with an upgrade when the route has no plugin: forwards the
/// client's request ([`into_forward_request`]) to the route's default upstream
/// and returns [`outcome_of`] the exchange.
pub fn passthrough(peer: &Peer, req: RequestHead) -> Outcome {
    let forwarded = into_forward_request(peer, req);
    outcome_of(upstream::send(upstream::DEFAULT, &forwarded))
}

/// The request to send upstream for the client's `req`; see [`into_forward_request`].
pub fn forward_request(peer: &Peer, req: &RequestHead) -> RequestHead {
    into_forward_request(peer, req.clone())
}

/// Builds the request to send upstream from the client's `req`, moving its parts:
///
/// - same method and target; headers in the client's order and spelling, except
///   the hop-by-hop ones ([`HOP_BY_HOP`] and any the `Connection` header names);
/// - if the client asked to upgrade (`Connection` holds `upgrade` and there is
///   an `Upgrade` header), `Upgrade` with the client's value and
///   `Connection: Upgrade`, each where and as the client spelled it;
/// - the client's IP appended to `X-Forwarded-For` and, as a
///   `for=...;proto=...` element, to `Forwarded`; `X-Forwarded-Proto` set to
///   [`Peer::scheme`].
pub fn into_forward_request(peer: &Peer, req: RequestHead) -> RequestHead {
    let RequestHead {
        method,
        target,
        headers,
    } = req;
    let mut upgrade = crate::head::has_token(&headers, "connection", "upgrade")
        .then(|| joined_values(&headers, "upgrade"))
        .flatten();
    let is_upgrade = upgrade.is_some();
    let drop: Vec<bool> = {
        let named: Vec<&[u8]> = crate::head::values(&headers, "connection")
            .flat_map(list_elements)
            .collect();
        let hop = |h: &Header| {
            HOP_BY_HOP.iter().any(|n| h.is(n))
                || named
                    .iter()
                    .any(|n| n.eq_ignore_ascii_case(h.name.as_bytes()))
        };
        headers.iter().map(hop).collect()
    };

    let mut out = Vec::with_capacity(headers.len() + 3);
    let mut connection_sent = false;
    let (mut xff, mut forwarded) = (None, None);
    for (header, drop) in headers.into_iter().zip(drop) {
        if header.is("upgrade") {
            if let Some(value) = upgrade.take() {
                out.push(Header::new(header.name, value));
            }
        } else if header.is("connection") {
            if is_upgrade && !connection_sent {
                connection_sent = true;
                out.push(Header::new(header.name, "Upgrade"));
            }
        } else if !drop {
            if header.is("x-forwarded-for") {
                xff = Some(out.len());
            } else if header.is("forwarded") {
                forwarded = Some(out.len());
            }
            out.push(header);
        }
    }

    let ip = client_ip(&peer.client_addr);
    let for_ip = ip.map_or_else(|| "unknown".to_owned(), ip_text);
    append_element(&mut out, xff, "X-Forwarded-For", &for_ip);
    append_element(
        &mut out,
        forwarded,
        "Forwarded",
        &forwarded_element(ip, &peer.scheme),
    );
    let mut req = RequestHead {
        method,
        target,
        headers: out,
    };
    req.set_header("X-Forwarded-Proto", peer.scheme.as_str());
    req
}

/// The values of every header named `name`, trimmed and joined with ", ";
/// `None` if there are none or all are empty.
fn joined_values(headers: &[Header], name: &str) -> Option<Vec<u8>> {
    let mut joined = Vec::new();
    for value in crate::head::values(headers, name).map(trim_ows) {
        if value.is_empty() {
            continue;
        }
        if !joined.is_empty() {
            joined.extend_from_slice(b", ");
        }
        joined.extend_from_slice(value);
    }
    (!joined.is_empty()).then_some(joined)
}

/// Appends `element` to the list in `headers[at]` (after ", "), or adds a
/// header `name: element` at the end when there is no such header.
fn append_element(headers: &mut Vec<Header>, at: Option<usize>, name: &str, element: &str) {
    match at.and_then(|i| headers.get_mut(i)) {
        Some(header) => {
            let len = header.value.trim_ascii_end().len();
            header.value.truncate(len);
            if header.value.trim_ascii_start().is_empty() {
                header.value.clear();
            } else {
                header.value.extend_from_slice(b", ");
            }
            header.value.extend_from_slice(element.as_bytes());
        }
        None => headers.push(Header::new(name, element)),
    }
}

/// The client's IP from an "ip:port" (or "[ipv6]:port", or bare IP) address;
/// IPv4-mapped IPv6 addresses come back as IPv4. `None` if it does not parse.
pub fn client_ip(client_addr: &str) -> Option<IpAddr> {
    let ip = match client_addr.parse::<SocketAddr>() {
        Ok(addr) => addr.ip(),
        Err(_) => client_addr.parse::<IpAddr>().ok()?,
    };
    Some(ip.to_canonical())
}

/// `ip` as text; IPv4 without the formatting machinery (every forwarded
/// upgrade writes one, and a plugin instance is fresh for each).
fn ip_text(ip: IpAddr) -> String {
    let mut text = String::with_capacity(15);
    upgate_header_block::text::push_ip(&mut text, ip);
    text
}

/// One `Forwarded` element (RFC 7239) for a client at `ip` using `proto`:
/// `for=192.0.2.1;proto=https`, `for="[2001:db8::1]";proto=http`, or
/// `for=unknown` when the address is not known. An empty `proto` is left out.
pub fn forwarded_element(ip: Option<IpAddr>, proto: &str) -> String {
    let mut element = match ip {
        Some(ip @ IpAddr::V4(_)) => "for=".to_owned() + &ip_text(ip),
        Some(IpAddr::V6(ip)) => format!("for=\"[{ip}]\""),
        None => "for=unknown".to_owned(),
    };
    let token = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.');
    if !proto.is_empty() && proto.chars().all(token) {
        element.push_str(";proto=");
        element.push_str(proto);
    }
    element
}

/// The outcome for the result of sending an upgrade request upstream: a 101 is
/// tunnelled (the host still checks it), any other status relayed as an
/// ordinary response, an error answered with [`error_response`] (and logged).
pub fn outcome_of(result: Result<Exchange, UpstreamError>) -> Outcome {
    match result {
        Ok(exchange) if exchange.status() == 101 => Outcome::Tunnel(Tunnel {
            exchange,
            client_head: None,
        }),
        Ok(exchange) => Outcome::Relay(exchange),
        Err(err) => {
            log::warn(format!("upstream exchange failed: {}", describe(&err)));
            Outcome::Respond(error_response(&err))
        }
    }
}

/// The response to a client whose upgrade could not be sent upstream: 504 for a
/// timeout, 502 otherwise, with a short `text/plain` body naming the reason (the
/// details, which may name internal addresses, go to the log only).
pub fn error_response(err: &UpstreamError) -> Response {
    let (status, reason) = match err {
        UpstreamError::Timeout => (504, "upstream timed out"),
        UpstreamError::UnknownUpstream(_) => (502, "unknown upstream"),
        UpstreamError::ConnectFailed(_) => (502, "could not connect to the upstream"),
        UpstreamError::InvalidRequest(_) => (502, "invalid upstream request"),
        UpstreamError::BadResponse(_) => (502, "bad response from the upstream"),
        UpstreamError::LimitReached => (502, "upstream exchange limit reached"),
    };
    Response::text(status, format!("{reason}\n"))
}

/// A one-line description of `err`, details included, for logs.
pub fn describe(err: &UpstreamError) -> String {
    match err {
        UpstreamError::UnknownUpstream(name) => format!("unknown upstream {name:?}"),
        UpstreamError::ConnectFailed(why) => format!("connect failed: {why}"),
        UpstreamError::Timeout => "timed out".to_owned(),
        UpstreamError::InvalidRequest(why) => format!("invalid request: {why}"),
        UpstreamError::BadResponse(why) => format!("bad response: {why}"),
        UpstreamError::LimitReached => "exchange limit reached".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(addr: &str, scheme: &str) -> Peer {
        Peer {
            client_addr: addr.to_owned(),
            route: "r".to_owned(),
            scheme: scheme.to_owned(),
            tls_server_name: None,
            upstreams: vec!["up".to_owned()],
        }
    }

    fn req(headers: &[(&str, &str)]) -> RequestHead {
        let mut req = RequestHead::new("GET", "/chat?room=1");
        for (n, v) in headers {
            req.append_header(n, *v);
        }
        req
    }

    fn text(value: &[u8]) -> &str {
        std::str::from_utf8(value).expect("utf-8 in tests")
    }

    fn pairs(req: &RequestHead) -> Vec<(&str, &str)> {
        req.headers
            .iter()
            .map(|h| (h.name.as_str(), text(&h.value)))
            .collect()
    }

    #[test]
    fn websocket_upgrade_is_forwarded_with_client_spellings() {
        let client = req(&[
            ("host", "example.com"),
            ("CONNECTION", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Sec-WebSocket-Version", "13"),
        ]);
        let up = forward_request(&peer("192.0.2.7:5000", "http"), &client);
        assert_eq!(up.method, "GET");
        assert_eq!(up.target, "/chat?room=1");
        assert_eq!(
            pairs(&up),
            [
                ("host", "example.com"),
                ("CONNECTION", "Upgrade"),
                ("upgrade", "websocket"),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
                ("Sec-WebSocket-Version", "13"),
                ("X-Forwarded-For", "192.0.2.7"),
                ("Forwarded", "for=192.0.2.7;proto=http"),
                ("X-Forwarded-Proto", "http"),
            ]
        );
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_dropped() {
        let client = req(&[
            ("Connection", "Upgrade, X-Secret"),
            ("connection", "keep-alive"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Transfer-Encoding", "chunked"),
            ("Proxy-Connection", "keep-alive"),
            ("x-secret", "1"),
            ("Upgrade", "websocket"),
            ("upgrade", "h2c"),
            ("X-Kept", "yes"),
        ]);
        let up = into_forward_request(&peer("10.0.0.1:1", "https"), client);
        assert_eq!(
            pairs(&up),
            [
                ("Connection", "Upgrade"),
                ("Upgrade", "websocket, h2c"),
                ("X-Kept", "yes"),
                ("X-Forwarded-For", "10.0.0.1"),
                ("Forwarded", "for=10.0.0.1;proto=https"),
                ("X-Forwarded-Proto", "https"),
            ]
        );
    }

    #[test]
    fn upgrade_without_the_connection_token_is_not_forwarded() {
        let client = req(&[("Connection", "keep-alive"), ("Upgrade", "websocket")]);
        let up = forward_request(&peer("10.0.0.1:1", "http"), &client);
        assert!(up.header("upgrade").is_none());
        assert!(up.header("connection").is_none());
        let client = req(&[("Connection", "upgrade")]);
        let up = forward_request(&peer("10.0.0.1:1", "http"), &client);
        assert!(up.header("connection").is_none());
    }

    #[test]
    fn forwarding_headers_are_appended_to_existing_ones() {
        let client = req(&[
            ("x-forwarded-for", "203.0.113.1 "),
            ("forwarded", "for=203.0.113.1"),
            ("x-forwarded-proto", "gopher"),
            ("X-Forwarded-Proto", "ftp"),
            ("Connection", "upgrade"),
            ("Upgrade", "websocket"),
        ]);
        let up = forward_request(&peer("[2001:db8::1]:443", "https"), &client);
        assert_eq!(
            pairs(&up),
            [
                ("x-forwarded-for", "203.0.113.1, 2001:db8::1"),
                (
                    "forwarded",
                    "for=203.0.113.1, for=\"[2001:db8::1]\";proto=https"
                ),
                ("X-Forwarded-Proto", "https"),
                ("Connection", "Upgrade"),
                ("Upgrade", "websocket"),
            ]
        );
    }

    #[test]
    fn ip_text_writes_every_ipv4_octet_width_as_display_does() {
        for ip in ["0.9.10.99", "100.199.200.255", "255.255.255.255", "0.0.0.0"] {
            let ip: IpAddr = ip.parse().expect("an IPv4 address");
            assert_eq!(ip_text(ip), ip.to_string());
        }
        let v6: IpAddr = "2001:db8::1".parse().expect("an IPv6 address");
        assert_eq!(ip_text(v6), "2001:db8::1");
    }

    #[test]
    fn client_ips_parse_from_socket_addresses() {
        assert_eq!(client_ip("192.0.2.1:80"), "192.0.2.1".parse().ok());
        assert_eq!(client_ip("[::1]:80"), "::1".parse().ok());
        assert_eq!(client_ip("[::ffff:192.0.2.1]:80"), "192.0.2.1".parse().ok());
        assert_eq!(client_ip("2001:db8::2"), "2001:db8::2".parse().ok());
        assert_eq!(client_ip("unix:/tmp/sock"), None);
    }

    #[test]
    fn forwarded_elements_follow_rfc_7239() {
        let v4 = client_ip("192.0.2.1:80");
        let v6 = client_ip("[2001:db8::1]:80");
        assert_eq!(forwarded_element(v4, "https"), "for=192.0.2.1;proto=https");
        assert_eq!(
            forwarded_element(v6, "http"),
            "for=\"[2001:db8::1]\";proto=http"
        );
        assert_eq!(forwarded_element(None, "http"), "for=unknown;proto=http");
        assert_eq!(forwarded_element(v4, ""), "for=192.0.2.1");
        assert_eq!(forwarded_element(v4, "a b"), "for=192.0.2.1");
        let up = forward_request(&peer("somewhere", "http"), &req(&[]));
        assert_eq!(up.header_str("x-forwarded-for"), Some("unknown"));
    }

    #[test]
    fn upstream_errors_become_gateway_responses() {
        let timeout = error_response(&UpstreamError::Timeout);
        assert_eq!(timeout.head.status, 504);
        assert_eq!(timeout.body, b"upstream timed out\n");
        let refused = error_response(&UpstreamError::ConnectFailed("10.1.1.1:80 refused".into()));
        assert_eq!(refused.head.status, 502);
        assert_eq!(
            refused.head.header_str("content-type"),
            Some("text/plain; charset=utf-8")
        );
        assert!(!String::from_utf8_lossy(&refused.body).contains("10.1.1.1"));
        match outcome_of(Err(UpstreamError::LimitReached)) {
            Outcome::Respond(resp) => assert_eq!(resp.head.status, 502),
            other => panic!("expected a response, got {other:?}"),
        }
    }
}
