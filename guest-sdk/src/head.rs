//! Helpers on the WIT records: finding, setting and removing headers by name
//! (ASCII case-insensitively, while keeping the exact spelling a plugin sets,
//! since upgate writes names to the upstream exactly as given), reading
//! comma-separated token lists, and building responses.

use crate::{Header, RequestHead, Response, ResponseHead};

/// The `Content-Type` of the SDK's text responses.
const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

impl Header {
    /// A header named `name`, spelled exactly so on the wire, with `value`.
    pub fn new(name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Header {
            name: name.into(),
            value: value.into(),
        }
    }

    /// Whether this header is named `name`, ignoring ASCII case.
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

/// Trims optional whitespace (spaces and tabs) from both ends of a field value.
pub fn trim_ows(value: &[u8]) -> &[u8] {
    let start = value.iter().position(|b| !matches!(b, b' ' | b'\t'));
    let Some(start) = start else { return &[] };
    let end = value
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |i| i + 1);
    &value[start..end]
}

/// The elements of a comma-separated list value (`Connection`, `Upgrade`, ...),
/// whitespace-trimmed, empty elements skipped.
pub fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

pub(crate) fn find<'a>(headers: &'a [Header], name: &str) -> Option<&'a [u8]> {
    headers.iter().find(|h| h.is(name)).map(|h| &h.value[..])
}

pub(crate) fn values<'a>(headers: &'a [Header], name: &'a str) -> impl Iterator<Item = &'a [u8]> {
    headers
        .iter()
        .filter(move |h| h.is(name))
        .map(|h| &h.value[..])
}

pub(crate) fn has_token(headers: &[Header], name: &str, token: &str) -> bool {
    values(headers, name)
        .flat_map(list_elements)
        .any(|e| e.eq_ignore_ascii_case(token.as_bytes()))
}

/// Replaces every header named `name` (any case) with one `name: value`, spelled
/// as given, at the position of the first one replaced (else at the end).
pub(crate) fn set(headers: &mut Vec<Header>, name: &str, value: Vec<u8>) {
    let header = Header::new(name, value);
    match headers.iter().position(|h| h.is(name)) {
        Some(first) => {
            let mut index = 0;
            headers.retain(|h| {
                let keep = index <= first || !h.is(name);
                index += 1;
                keep
            });
            headers[first] = header;
        }
        None => headers.push(header),
    }
}

pub(crate) fn remove(headers: &mut Vec<Header>, name: &str) -> bool {
    let before = headers.len();
    headers.retain(|h| !h.is(name));
    headers.len() != before
}

/// The same header methods on both heads.
macro_rules! header_methods {
    ($head:ty) => {
        impl $head {
            /// The value of the first header named `name` (ASCII case-insensitive).
            pub fn header(&self, name: &str) -> Option<&[u8]> {
                find(&self.headers, name)
            }

            /// The value of the first header named `name` as text, whitespace-trimmed;
            /// `None` if absent or not UTF-8.
            pub fn header_str(&self, name: &str) -> Option<&str> {
                std::str::from_utf8(trim_ows(self.header(name)?)).ok()
            }

            /// The values of every header named `name`, in order.
            pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> {
                values(&self.headers, name)
            }

            /// Replaces every header named `name` (any case) with a single
            /// `name: value`, spelled exactly as given, where the first one was
            /// (appended if there was none).
            pub fn set_header(&mut self, name: &str, value: impl Into<Vec<u8>>) {
                set(&mut self.headers, name, value.into());
            }

            /// Appends `name: value`, keeping any headers of that name.
            pub fn append_header(&mut self, name: &str, value: impl Into<Vec<u8>>) {
                self.headers.push(Header::new(name, value));
            }

            /// Removes every header named `name` (any case); whether any was.
            pub fn remove_header(&mut self, name: &str) -> bool {
                remove(&mut self.headers, name)
            }

            /// Whether a comma-separated list in the headers named `name` holds
            /// `token` (ASCII case-insensitive), e.g. `has_token("Connection", "upgrade")`.
            pub fn has_token(&self, name: &str, token: &str) -> bool {
                has_token(&self.headers, name, token)
            }
        }
    };
}

header_methods!(RequestHead);
header_methods!(ResponseHead);

impl RequestHead {
    /// A request head with no headers.
    pub fn new(method: impl Into<String>, target: impl Into<String>) -> Self {
        RequestHead {
            method: method.into(),
            target: target.into(),
            headers: Vec::new(),
        }
    }
}

impl ResponseHead {
    /// A response head with the standard reason phrase and no headers.
    pub fn new(status: u16) -> Self {
        ResponseHead {
            status,
            reason: String::new(),
            headers: Vec::new(),
        }
    }
}

impl Response {
    /// A response with `status`, no headers and `body`.
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Response {
            head: ResponseHead::new(status),
            body: body.into(),
        }
    }

    /// A `text/plain; charset=utf-8` response with `status` and `body`.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Response::new(status, body.into()).with_header("Content-Type", TEXT_PLAIN)
    }

    /// Sets header `name` (spelled as given, replacing any of that name in any case).
    pub fn with_header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        self.head.set_header(name, value);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(headers: &[(&str, &str)]) -> RequestHead {
        let mut req = RequestHead::new("GET", "/");
        for (n, v) in headers {
            req.append_header(n, *v);
        }
        req
    }

    fn names(req: &RequestHead) -> Vec<&str> {
        req.headers.iter().map(|h| h.name.as_str()).collect()
    }

    #[test]
    fn header_lookup_ignores_case_and_takes_the_first() {
        let req = head(&[("Host", "a"), ("X-A", " 1 "), ("x-a", "2")]);
        assert_eq!(req.header("HOST"), Some(&b"a"[..]));
        assert_eq!(req.header("x-a"), Some(&b" 1 "[..]));
        assert_eq!(req.header_str("X-a"), Some("1"));
        assert_eq!(req.header("missing"), None);
        let all: Vec<_> = req.header_values("X-A").collect();
        assert_eq!(all, [&b" 1 "[..], &b"2"[..]]);
    }

    #[test]
    fn header_str_refuses_non_utf8() {
        let mut req = RequestHead::new("GET", "/");
        req.append_header("X-Bin", vec![0xff, 0xfe]);
        assert_eq!(req.header_str("x-bin"), None);
        assert_eq!(req.header("x-bin"), Some(&[0xff, 0xfe][..]));
    }

    #[test]
    fn set_header_replaces_all_in_place_with_the_given_spelling() {
        let mut req = head(&[("a", "1"), ("UPGRADE", "x"), ("b", "2"), ("upgrade", "y")]);
        req.set_header("Upgrade", "websocket");
        assert_eq!(names(&req), ["a", "Upgrade", "b"]);
        assert_eq!(req.header("upgrade"), Some(&b"websocket"[..]));
        req.set_header("X-New", b"v".to_vec());
        assert_eq!(names(&req), ["a", "Upgrade", "b", "X-New"]);
    }

    #[test]
    fn remove_header_removes_every_spelling() {
        let mut req = head(&[("TE", "trailers"), ("a", "1"), ("te", "x")]);
        assert!(req.remove_header("Te"));
        assert_eq!(names(&req), ["a"]);
        assert!(!req.remove_header("te"));
    }

    #[test]
    fn tokens_are_found_in_lists_across_lines() {
        let req = head(&[
            ("Connection", "keep-alive, ,Upgrade"),
            ("connection", "\tclose "),
        ]);
        assert!(req.has_token("connection", "upgrade"));
        assert!(req.has_token("CONNECTION", "Close"));
        assert!(!req.has_token("connection", "keep"));
        assert!(!req.has_token("upgrade", "websocket"));
    }

    #[test]
    fn ows_trimming_and_list_elements() {
        assert_eq!(trim_ows(b" \t a b\t "), b"a b");
        assert_eq!(trim_ows(b" \t "), b"");
        let elems: Vec<_> = list_elements(b" a ,, b,c ,").collect();
        assert_eq!(elems, [&b"a"[..], b"b", b"c"]);
    }

    #[test]
    fn text_responses_carry_their_type() {
        let resp = Response::text(403, "no").with_header("x-probe", "1");
        assert_eq!(resp.head.status, 403);
        assert_eq!(resp.head.header_str("content-type"), Some(TEXT_PLAIN));
        assert_eq!(resp.head.header("X-Probe"), Some(&b"1"[..]));
        assert_eq!(resp.body, b"no");
        let plain = Response::new(200, "ok");
        assert!(plain.head.headers.is_empty());
    }
}
