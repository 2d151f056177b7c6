//! Finding a presented token (in a header value or the query string) and
//! comparing it to the accepted ones without an early exit.

use upgate_sdk::trim_ows;

/// The token in a header value: after `Bearer ` (scheme in any case), else the
/// whole value; whitespace-trimmed.
pub(crate) fn from_header(value: &[u8]) -> &[u8] {
    let value = trim_ows(value);
    match value.get(..7) {
        Some(scheme)
            if scheme[..6].eq_ignore_ascii_case(b"bearer") && matches!(scheme[6], b' ' | b'\t') =>
        {
            trim_ows(&value[7..])
        }
        _ => value,
    }
}

/// Whether `a` equals `b`, looking at every byte of the longer one.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

/// Whether `presented` is one of `tokens`; every token is compared, so the time
/// taken does not say which one matched or how much of it.
pub(crate) fn accepted(presented: &[u8], tokens: &[String]) -> bool {
    tokens.iter().fold(false, |ok, token| {
        ok | constant_time_eq(presented, token.as_bytes())
    })
}

/// `%XX`-decodes `s`; a `%` not followed by two hex digits stays as it is.
fn percent_decode(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let escaped = match s.get(i..i + 3) {
            Some([b'%', h, l]) => hex(*h).zip(hex(*l)),
            _ => None,
        };
        match escaped {
            Some((h, l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            None => {
                out.push(s[i]);
                i += 1;
            }
        }
    }
    out
}

/// The query string of a request target (after the first `?`), if any.
fn split_query(target: &str) -> (&str, Option<&str>) {
    match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    }
}

/// Whether the query pair `pair` (`name=value` or `name`) is named `name`.
fn pair_named(pair: &str, name: &str) -> bool {
    let raw_name = pair.split_once('=').map_or(pair, |(n, _)| n);
    percent_decode(raw_name.as_bytes()) == name.as_bytes()
}

/// The decoded values of every query parameter named `name` in `target`.
pub(crate) fn query_values<'a>(
    target: &'a str,
    name: &'a str,
) -> impl Iterator<Item = Vec<u8>> + 'a {
    let query = split_query(target).1.unwrap_or("");
    query
        .split('&')
        .filter(move |pair| !pair.is_empty() && pair_named(pair, name))
        .map(|pair| percent_decode(pair.split_once('=').map_or("", |(_, v)| v).as_bytes()))
}

/// `target` without the query parameters named `name` (others kept as sent; the
/// `?` dropped when nothing is left).
pub(crate) fn strip_query(target: &str, name: &str) -> String {
    let (path, Some(query)) = split_query(target) else {
        return target.to_owned();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair_named(pair, name))
        .collect();
    if kept.iter().all(|pair| pair.is_empty()) {
        path.to_owned()
    } else {
        format!("{path}?{}", kept.join("&"))
    }
}
