//! HTTP/1.1 heads as bytes on the wire, with header names spelled exactly: the
//! types the plugin contract carries, writing a request head a plugin built (after
//! checking it cannot smuggle a second request), and parsing a response head.

use bytes::{BufMut, BytesMut};

/// Largest response head the host reads from an upstream.
pub const MAX_HEAD: usize = 64 * 1024;
/// Most header fields accepted in one head.
pub const MAX_HEADERS: usize = 128;

/// Room for the header fields of one head, left uninitialised: httparse
/// fills what it parses (initialising all [`MAX_HEADERS`] slots first would
/// write 4 KiB before every parse).
pub type HeaderSlots<'b> = [std::mem::MaybeUninit<httparse::Header<'b>>; MAX_HEADERS];

/// Fresh [`HeaderSlots`].
pub fn header_slots<'b>() -> HeaderSlots<'b> {
    [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS]
}

/// One header field, name spelled as on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Exact spelling.
    pub name: String,
    /// Raw value bytes.
    pub value: Vec<u8>,
}

/// A request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    /// Method token.
    pub method: String,
    /// Request target.
    pub target: String,
    /// Header fields in order.
    pub headers: Vec<Header>,
}

/// A response head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    /// Status code.
    pub status: u16,
    /// Reason phrase as sent (may be empty).
    pub reason: String,
    /// Header fields in order.
    pub headers: Vec<Header>,
}

/// Finds the first header named `name` (ASCII case-insensitive).
pub fn find<'a>(headers: &'a [Header], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_slice())
}

/// The comma-separated tokens of every header named `name` whose value is
/// UTF-8, lower-cased (split by [`crate::headers::field_tokens`]).
pub fn tokens(headers: &[Header], name: &str) -> Vec<String> {
    let fields = headers
        .iter()
        .filter(|h| std::str::from_utf8(&h.value).is_ok())
        .map(|h| (h.name.as_str(), h.value.as_slice()));
    crate::headers::field_tokens(fields, name)
        // Whole UTF-8 values split at ASCII commas: every token is UTF-8.
        .filter_map(|t| std::str::from_utf8(t).ok())
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// Serializes `head` exactly as given, refusing anything that would not be one
/// well-formed HTTP/1.1 request head (a CR/LF in a value, a space in the target...).
pub fn write_request(head: &RequestHead) -> Result<BytesMut, String> {
    if !is_token(&head.method) {
        return Err(format!("method `{}` is not a token", head.method));
    }
    let target_ok = !head.target.is_empty()
        && head
            .target
            .bytes()
            .all(|b| b.is_ascii_graphic() || b >= 0x80);
    if !target_ok {
        return Err(format!(
            "target `{}` is empty or holds spaces or control characters",
            head.target.escape_debug()
        ));
    }
    let mut out = BytesMut::with_capacity(256 + head.headers.len() * 48);
    out.put_slice(head.method.as_bytes());
    out.put_u8(b' ');
    out.put_slice(head.target.as_bytes());
    out.put_slice(b" HTTP/1.1\r\n");
    for h in &head.headers {
        if !is_token(&h.name) {
            return Err(format!(
                "header name `{}` is not a token",
                h.name.escape_debug()
            ));
        }
        if h.value.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(format!(
                "header `{}` has CR, LF or NUL in its value",
                h.name
            ));
        }
        out.put_slice(h.name.as_bytes());
        out.put_slice(b": ");
        out.put_slice(&h.value);
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"\r\n");
    Ok(out)
}

/// Outcome of trying to parse a response head from the bytes read so far.
#[derive(Debug)]
pub enum Parsed {
    /// A complete head, and how many bytes of the buffer it used.
    Complete(ResponseHead, usize),
    /// More bytes are needed.
    Partial,
}

/// Parses a response head from the start of `buf`.
pub fn parse_response(buf: &[u8]) -> Result<Parsed, String> {
    let mut slots = header_slots();
    let mut res = httparse::Response::new(&mut []);
    match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut res, buf, &mut slots)
    {
        Ok(httparse::Status::Complete(used)) => {
            if res.version != Some(1) {
                return Err("upstream did not answer HTTP/1.1".into());
            }
            let headers = res
                .headers
                .iter()
                .map(|h| Header {
                    name: h.name.to_string(),
                    value: h.value.to_vec(),
                })
                .collect();
            let head = ResponseHead {
                status: res.code.unwrap_or(0),
                reason: res.reason.unwrap_or("").to_string(),
                headers,
            };
            Ok(Parsed::Complete(head, used))
        }
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            Err(format!("response head larger than {MAX_HEAD} bytes"))
        }
        Ok(httparse::Status::Partial) => Ok(Parsed::Partial),
        Err(e) => Err(format!("malformed response head: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &str, value: &str) -> Header {
        Header {
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn writes_exact_spelling() {
        let head = RequestHead {
            method: "GET".into(),
            target: "/chat?x=1".into(),
            headers: vec![h("UPGRADE", "websocket"), h("connection", "Upgrade")],
        };
        let bytes = write_request(&head).unwrap();
        assert_eq!(
            &bytes[..],
            b"GET /chat?x=1 HTTP/1.1\r\nUPGRADE: websocket\r\nconnection: Upgrade\r\n\r\n"
        );
    }

    #[test]
    fn refuses_smuggling() {
        let mut head = RequestHead {
            method: "GET".into(),
            target: "/".into(),
            headers: vec![h("X", "a\r\nHost: evil")],
        };
        assert!(write_request(&head).unwrap_err().contains("CR, LF"));
        head.headers = vec![h("X Y", "a")];
        assert!(write_request(&head).is_err());
        head.headers.clear();
        head.target = "/ HTTP/1.1\r\n".into();
        assert!(write_request(&head).is_err());
        head.target = "/".into();
        head.method = "GE T".into();
        assert!(write_request(&head).is_err());
    }

    #[test]
    fn parses_partial_then_complete() {
        assert!(matches!(
            parse_response(b"HTTP/1.1 101 Switching"),
            Ok(Parsed::Partial)
        ));
        let raw = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\nEXTRA";
        match parse_response(raw).unwrap() {
            Parsed::Complete(head, used) => {
                assert_eq!(head.status, 101);
                assert_eq!(head.headers[0].name, "Upgrade");
                assert_eq!(&raw[used..], b"EXTRA");
            }
            Parsed::Partial => panic!("complete head reported partial"),
        }
        assert!(parse_response(b"HTTP/1.1 abc\r\n\r\n").is_err());
    }

    #[test]
    fn a_head_may_hold_max_headers_fields_and_no_more() {
        let head = |n: usize| {
            let mut text = String::from("HTTP/1.1 200 OK\r\n");
            for i in 0..n {
                text.push_str(&format!("X-{i}: v{i}\r\n"));
            }
            text + "\r\n"
        };
        match parse_response(head(MAX_HEADERS).as_bytes()) {
            Ok(Parsed::Complete(h, _)) => {
                assert_eq!(h.headers.len(), MAX_HEADERS);
                assert_eq!(h.headers[MAX_HEADERS - 1].value, b"v127");
            }
            _ => panic!("{MAX_HEADERS} fields refused"),
        }
        assert!(parse_response(head(MAX_HEADERS + 1).as_bytes()).is_err());
    }

    #[test]
    fn tokens_are_lowercased_lists() {
        let hs = vec![h("Upgrade", "WebSocket, foo/2"), h("upgrade", "bar")];
        assert_eq!(tokens(&hs, "UPGRADE"), vec!["websocket", "foo/2", "bar"]);
        // A value that is not UTF-8 is skipped whole; any whitespace is trimmed.
        let mut odd = vec![h("Upgrade", " ,\u{a0},\u{a0}h2c\u{a0}")];
        odd.push(Header {
            name: "Upgrade".into(),
            value: b"websocket, \xff".to_vec(),
        });
        assert_eq!(tokens(&odd, "upgrade"), vec!["h2c"]);
    }
}
