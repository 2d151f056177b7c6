//! Origins (`scheme://host[:port]`, RFC 6454 §6.1) and the patterns of the
//! `origins` setting: parsing both into one normal form (scheme and host
//! lower-cased, the scheme's default port left out) and matching one against
//! the other. Pure logic, tested natively.

/// An origin as a browser sends it in the `Origin` header, normalised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    /// Lower-cased scheme, e.g. `https`.
    scheme: String,
    /// Lower-cased host name, or an IPv6 literal in brackets.
    host: String,
    /// The port, `None` when absent or the scheme's default.
    port: Option<u16>,
}

/// Which hosts a pattern accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    /// Exactly this (lower-cased) host.
    Exact(String),
    /// Any subdomain of this (lower-cased) domain, at any depth, but not the
    /// domain itself: `*.example.com` holds `Subdomains("example.com")`.
    Subdomains(String),
}

/// One entry of `origins`, e.g. `https://*.example.com:8443`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    /// Lower-cased scheme the origin must have.
    scheme: String,
    /// The hosts accepted.
    host: HostPattern,
    /// The port the origin must have (`None`: the scheme's default).
    port: Option<u16>,
}

/// The port browsers leave out of an origin for `scheme`.
fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" | "ws" => Some(80),
        "https" | "wss" => Some(443),
        _ => None,
    }
}

/// Whether `s` is a URI scheme (RFC 3986 §3.1).
fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// Whether `host` (lower-cased) is a DNS-style name or an IPv4 address: dot-
/// separated non-empty labels of letters, digits, `-` and `_`.
fn is_host_name(host: &str) -> bool {
    host.split('.').all(|label| {
        !label.is_empty()
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
    })
}

/// Whether `host` is an IPv6 literal in brackets, e.g. `[::1]`.
fn is_ipv6_literal(host: &str) -> bool {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .is_some_and(|inner| {
            inner.contains(':')
                && inner
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'))
        })
}

/// Splits `scheme://host[:port]` into its lower-cased scheme, lower-cased (not
/// yet checked) host and normalised port; the error says what is wrong.
fn split(s: &str) -> Result<(String, String, Option<u16>), String> {
    let (scheme, authority) = s
        .split_once("://")
        .ok_or_else(|| "expected scheme://host[:port]".to_owned())?;
    if !is_scheme(scheme) {
        return Err(format!("{scheme:?} is not a scheme"));
    }
    if authority.contains(['/', '?', '#']) {
        return Err("an origin has no path, query or fragment (no trailing `/`)".to_owned());
    }
    if authority.contains('@') {
        return Err("an origin has no user info".to_owned());
    }
    let (host, port) = match authority.rfind(':') {
        // A colon inside an IPv6 literal is not a port separator.
        Some(i) if !authority[i..].contains(']') => (&authority[..i], Some(&authority[i + 1..])),
        _ => (authority, None),
    };
    if host.is_empty() {
        return Err("the host is empty".to_owned());
    }
    let scheme = scheme.to_ascii_lowercase();
    let port = match port {
        None => None,
        Some(p) => {
            let valid = !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
            let n = p.parse::<u16>().ok().filter(|&n| valid && n != 0);
            let n = n.ok_or_else(|| format!("port {p:?} is not a number from 1 to 65535"))?;
            (default_port(&scheme) != Some(n)).then_some(n)
        }
    };
    Ok((scheme, host.to_ascii_lowercase(), port))
}

impl Origin {
    /// The origin in an `Origin` header value (whitespace-trimmed); `None` for
    /// `null`, anything that is not `scheme://host[:port]`, or a wildcard.
    pub(crate) fn parse(value: &[u8]) -> Option<Origin> {
        let text = std::str::from_utf8(upgate_sdk::trim_ows(value)).ok()?;
        let (scheme, host, port) = split(text).ok()?;
        (is_host_name(&host) || is_ipv6_literal(&host)).then_some(Origin { scheme, host, port })
    }
}

impl Pattern {
    /// Parses one entry of `origins`; the error says what is wrong with it.
    pub(crate) fn parse(s: &str) -> Result<Pattern, String> {
        let (scheme, host, port) = split(s)?;
        let host = match host.strip_prefix("*.") {
            Some(domain) if is_host_name(domain) => HostPattern::Subdomains(domain.to_owned()),
            _ if host.contains('*') => {
                return Err("a wildcard may only open the host, as in `*.example.com`".to_owned())
            }
            _ if is_host_name(&host) || is_ipv6_literal(&host) => HostPattern::Exact(host),
            _ => return Err(format!("{host:?} is not a host name or IP address")),
        };
        Ok(Pattern { scheme, host, port })
    }

    /// Whether `origin` is one this pattern accepts: same scheme and port, and
    /// the same host or (for `*.domain`) a host ending in `.domain`.
    pub(crate) fn matches(&self, origin: &Origin) -> bool {
        let host = match &self.host {
            HostPattern::Exact(host) => *host == origin.host,
            HostPattern::Subdomains(domain) => origin
                .host
                .strip_suffix(domain.as_str())
                .and_then(|sub| sub.strip_suffix('.'))
                .is_some_and(|sub| !sub.is_empty()),
        };
        host && self.scheme == origin.scheme && self.port == origin.port
    }
}
