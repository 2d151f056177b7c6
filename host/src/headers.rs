//! Pure header logic shared by the proxy paths: `Connection` token lists, the
//! upgrade test, hop-by-hop removal (RFC 9110 §7.6.1), forwarding headers, and the
//! WebSocket accept key (RFC 6455 §4.2.2).

use base64::Engine as _;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use sha1::{Digest, Sha1};
use std::net::SocketAddr;

/// Headers that are hop-by-hop whatever `Connection` says (RFC 9110 §7.6.1, plus the
/// legacy `Proxy-Connection` and `Keep-Alive`).
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "proxy-connection",
    "keep-alive",
    "te",
    "transfer-encoding",
    "upgrade",
    "trailer",
];

/// The comma-separated tokens of every `name` header, trimmed (case kept).
pub fn tokens<'a>(headers: &'a HeaderMap, name: &str) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Whether any `name` header holds `token` (ASCII case-insensitive) in its list.
pub fn has_token(headers: &HeaderMap, name: &str, token: &str) -> bool {
    tokens(headers, name).any(|t| t.eq_ignore_ascii_case(token))
}

/// An upgrade request: `Connection` holds the token `upgrade` and `Upgrade` is present.
pub fn is_upgrade_request(headers: &HeaderMap) -> bool {
    headers.contains_key(http::header::UPGRADE) && has_token(headers, "connection", "upgrade")
}

/// The protocol names the `Upgrade` header offers, lower-cased, version suffix kept
/// (`websocket`, `h2c`, `foo/2`).
pub fn offered_protocols(headers: &HeaderMap) -> Vec<String> {
    tokens(headers, "upgrade")
        .map(|t| t.to_ascii_lowercase())
        .collect()
}

/// Removes hop-by-hop headers: the fixed list and every header `Connection` names.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = tokens(headers, "connection")
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}

/// Adds `X-Forwarded-For` (appended), `X-Forwarded-Proto` and `Forwarded` (appended).
pub fn add_forwarding(headers: &mut HeaderMap, client: SocketAddr, proto: &str) {
    let ip = client.ip().to_string();
    let xff = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prev) if !prev.trim().is_empty() => format!("{prev}, {ip}"),
        _ => ip,
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert("x-forwarded-for", v);
    }
    headers.insert(
        "x-forwarded-proto",
        HeaderValue::from_static(static_proto(proto)),
    );
    let node = match client {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("\"[{}]\"", a.ip()),
    };
    let mut fwd = format!("for={node};proto={proto}");
    if let Some(host) = headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
    {
        if host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        {
            fwd.push_str(&format!(";host=\"{host}\""));
        }
    }
    if let Ok(v) = HeaderValue::from_str(&fwd) {
        headers.append(http::header::FORWARDED, v);
    }
}

fn static_proto(proto: &str) -> &'static str {
    if proto == "https" {
        "https"
    } else {
        "http"
    }
}

/// The `Sec-WebSocket-Accept` an upstream must answer to `key` (RFC 6455 §4.2.2).
pub fn websocket_accept(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    #[test]
    fn upgrade_detection_is_token_based() {
        assert!(is_upgrade_request(&map(&[
            ("Connection", "keep-alive, Upgrade"),
            ("Upgrade", "websocket")
        ])));
        assert!(is_upgrade_request(&map(&[
            ("connection", "UPGRADE"),
            ("upgrade", "websocket")
        ])));
        assert!(is_upgrade_request(&map(&[
            ("connection", "close"),
            ("connection", "upgrade"),
            ("upgrade", "x")
        ])));
        assert!(!is_upgrade_request(&map(&[
            ("Connection", "upgraded"),
            ("Upgrade", "websocket")
        ])));
        assert!(!is_upgrade_request(&map(&[("Connection", "upgrade")])));
        assert!(!is_upgrade_request(&map(&[("Upgrade", "websocket")])));
    }

    #[test]
    fn hop_by_hop_includes_connection_named_headers() {
        let mut m = map(&[
            ("Connection", "keep-alive, X-Secret"),
            ("X-Secret", "1"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Host", "a"),
        ]);
        remove_hop_by_hop(&mut m);
        assert_eq!(m.len(), 1);
        assert!(m.contains_key("host"));
    }

    #[test]
    fn forwarding_appends() {
        let mut m = map(&[("X-Forwarded-For", "10.0.0.1"), ("Host", "example.com")]);
        add_forwarding(&mut m, "[::1]:5000".parse().unwrap(), "http");
        assert_eq!(m["x-forwarded-for"], "10.0.0.1, ::1");
        assert_eq!(m["x-forwarded-proto"], "http");
        assert_eq!(
            m["forwarded"],
            "for=\"[::1]\";proto=http;host=\"example.com\""
        );
    }

    #[test]
    fn accept_matches_rfc_example() {
        assert_eq!(
            websocket_accept(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
