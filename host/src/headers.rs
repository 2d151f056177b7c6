//! Pure header logic shared by the proxy paths: `Connection` token lists, the
//! upgrade test, hop-by-hop removal (RFC 9110 §7.6.1), forwarding headers, and the
//! WebSocket accept key (RFC 6455 §4.2.2).

use base64::Engine as _;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use sha1::{Digest, Sha1};
use std::net::{IpAddr, SocketAddr};
use upgate_header_block::text::push_ip;

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

/// The comma-separated tokens of every `name` field among `fields` (name and
/// value as read off the wire), trimmed, empty ones skipped (case kept).
pub fn field_tokens<'a>(
    fields: impl Iterator<Item = (&'a str, &'a [u8])>,
    name: &'a str,
) -> impl Iterator<Item = &'a [u8]> {
    fields
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .flat_map(|(_, value)| value.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// A hop-by-hop field: on [`HOP_BY_HOP`] or named by `Connection` (`named`:
/// its tokens, [`field_tokens`]).
pub fn is_hop_by_hop(name: &str, named: &[&[u8]]) -> bool {
    HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
        || named
            .iter()
            .any(|t| t.eq_ignore_ascii_case(name.as_bytes()))
}

/// Whether any `name` header holds `token` (ASCII case-insensitive) in its list.
pub fn has_token(headers: &HeaderMap, name: &str, token: &str) -> bool {
    tokens(headers, name).any(|t| t.eq_ignore_ascii_case(token))
}

/// An upgrade request: `Connection` holds the token `upgrade` and `Upgrade` is present.
pub fn is_upgrade_request(headers: &HeaderMap) -> bool {
    headers.contains_key(http::header::UPGRADE) && has_token(headers, "connection", "upgrade")
}

/// [`HOP_BY_HOP`] as header names, built once: removing by `&str` would parse
/// and classify each name again on every request.
static HOP_BY_HOP_NAMES: [HeaderName; 7] = [
    http::header::CONNECTION,
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("keep-alive"),
    http::header::TE,
    http::header::TRANSFER_ENCODING,
    http::header::UPGRADE,
    http::header::TRAILER,
];
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Removes hop-by-hop headers: the fixed list and every header `Connection` names.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(&HOP_BY_HOP_NAMES[0]) {
        let named: Vec<HeaderName> = tokens(headers, "connection")
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP_NAMES {
        headers.remove(name);
    }
}

/// `addr` as `Display` writes it (`1.2.3.4:5`, `[::1]:5`), without `core::fmt`
/// for IPv4: the client address handed to the plugin on every upgrade.
pub fn socket_text(addr: SocketAddr) -> String {
    let mut out = String::with_capacity(24);
    match addr {
        SocketAddr::V4(a) => push_ip(&mut out, IpAddr::V4(*a.ip())),
        SocketAddr::V6(_) => return addr.to_string(),
    }
    out.push(':');
    let port = addr.port();
    let mut digits = [0u8; 5];
    let mut n = 0;
    let mut rest = port;
    loop {
        digits[n] = b'0' + (rest % 10) as u8;
        n += 1;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    for &d in digits[..n].iter().rev() {
        out.push(char::from(d));
    }
    out
}

/// Adds `X-Forwarded-For` (appended), `X-Forwarded-Proto` and `Forwarded` (appended).
pub fn add_forwarding(headers: &mut HeaderMap, client: SocketAddr, proto: &str) {
    let prev = headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok());
    if let Ok(v) = HeaderValue::from_str(&forwarded_for(prev, client)) {
        headers.insert(&X_FORWARDED_FOR, v);
    }
    headers.insert(
        &X_FORWARDED_PROTO,
        HeaderValue::from_static(static_proto(proto)),
    );
    let host = headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok());
    if let Ok(v) = HeaderValue::from_str(&forwarded(client, proto, host)) {
        headers.append(http::header::FORWARDED, v);
    }
}

/// The `X-Forwarded-For` value: the client's address after the list an earlier
/// hop sent (`prev`, the first such header), if any.
pub fn forwarded_for(prev: Option<&str>, client: SocketAddr) -> String {
    let mut xff = String::with_capacity(64);
    if let Some(prev) = prev {
        if !prev.trim().is_empty() {
            xff.push_str(prev);
            xff.push_str(", ");
        }
    }
    push_ip(&mut xff, client.ip());
    xff
}

/// This hop's `Forwarded` element (RFC 7239): `for`, `proto`, and `host` when
/// the request's `Host` is plain enough to quote.
pub fn forwarded(client: SocketAddr, proto: &str, host: Option<&str>) -> String {
    let mut fwd = String::with_capacity(96);
    fwd.push_str("for=");
    match client {
        SocketAddr::V4(a) => push_ip(&mut fwd, IpAddr::V4(*a.ip())),
        SocketAddr::V6(a) => {
            fwd.push_str("\"[");
            push_ip(&mut fwd, IpAddr::V6(*a.ip()));
            fwd.push_str("]\"");
        }
    }
    fwd.push_str(";proto=");
    fwd.push_str(proto);
    if let Some(host) = host {
        if host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        {
            fwd.push_str(";host=\"");
            fwd.push_str(host);
            fwd.push('"');
        }
    }
    fwd
}

/// `proto` as a `'static` value: `https`, else `http`.
pub fn static_proto(proto: &str) -> &'static str {
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
    fn hop_by_hop_names_are_the_list() {
        let names: Vec<&str> = HOP_BY_HOP_NAMES.iter().map(HeaderName::as_str).collect();
        assert_eq!(names, HOP_BY_HOP);
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
    fn socket_text_matches_display() {
        for a in [
            "0.0.0.0:0",
            "127.0.0.1:9",
            "10.20.30.40:65535",
            "[::1]:443",
            "1.2.3.4:1000",
        ] {
            let a: SocketAddr = a.parse().unwrap();
            assert_eq!(socket_text(a), a.to_string());
        }
    }

    #[test]
    fn forwarding_v4_without_earlier_hops() {
        let mut m = map(&[("Host", "bad host")]);
        add_forwarding(&mut m, "10.1.20.255:80".parse().unwrap(), "https");
        assert_eq!(m["x-forwarded-for"], "10.1.20.255");
        assert_eq!(m["x-forwarded-proto"], "https");
        assert_eq!(m["forwarded"], "for=10.1.20.255;proto=https");
    }

    #[test]
    fn accept_matches_rfc_example() {
        assert_eq!(
            websocket_accept(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
