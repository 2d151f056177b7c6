//! The heads of a plain request served without hyper ([`crate::direct_http`]):
//! which requests qualify, the head written upstream (hop-by-hop headers
//! dropped, forwarding headers added, every other header spelled as the client
//! spelled it), and the head written back to the client with how its body is
//! framed. Where a chunked body ends is [`crate::chunk_scan`]'s job.

use std::net::SocketAddr;

use crate::framing::{framing, last_coding, Framing};
use crate::headers::{field_tokens, forwarded, forwarded_for, is_hop_by_hop, static_proto};

/// What the direct path needs of a request, taken from its parsed head.
#[derive(Debug)]
pub struct PlainRequest {
    /// The head to write upstream.
    pub upstream_head: Vec<u8>,
    /// A `HEAD` request: its response has no body whatever its headers say.
    pub head_method: bool,
    /// Safe to send again on a fresh connection when a pooled one turns out
    /// closed before answering (RFC 9110 §9.2.2).
    pub idempotent: bool,
    /// The client asked to close the connection after this response.
    pub close: bool,
}

/// The head the client gets, and what follows it.
#[derive(Debug)]
pub struct ClientHead {
    /// Status line and headers, ending with the empty line.
    pub bytes: Vec<u8>,
    /// How the upstream framed the body that follows (forwarded as it comes,
    /// chunks included).
    pub framing: Framing,
    /// The body ends when the upstream closes and goes to the client in chunks
    /// (so the client connection stays open, and a body cut short shows).
    pub rechunk: bool,
    /// The upstream connection may serve another request once the body is read.
    pub reusable: bool,
    /// The client connection closes after this response (the client asked, or
    /// the body ends only when the upstream closes and cannot be re-chunked).
    pub close: bool,
}

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn trim(v: &[u8]) -> &[u8] {
    v.trim_ascii()
}

/// What deciding where a request goes needs of its head, from one pass over
/// its fields.
#[derive(Debug, Default)]
pub struct Shape<'h> {
    /// The value of its one `Host`, when it has exactly one.
    pub host: Option<&'h [u8]>,
    hosts: usize,
    lengths: usize,
    /// A `Content-Length` other than 0.
    body_length: bool,
    transfer_encoding: bool,
    upgrade: bool,
    expect: bool,
    /// `Connection` names `upgrade`.
    connection_upgrade: bool,
}

impl<'h> Shape<'h> {
    /// Looks at every field of `req` once.
    pub fn of(req: &httparse::Request<'h, '_>) -> Shape<'h> {
        let mut shape = Shape::default();
        for h in req.headers.iter() {
            if eq(h.name, "host") {
                shape.hosts += 1;
                shape.host = Some(h.value);
            } else if eq(h.name, "content-length") {
                shape.lengths += 1;
                shape.body_length |= trim(h.value) != b"0";
            } else if eq(h.name, "transfer-encoding") {
                shape.transfer_encoding = true;
            } else if eq(h.name, "upgrade") {
                shape.upgrade = true;
            } else if eq(h.name, "expect") {
                shape.expect = true;
            } else if eq(h.name, "connection") {
                shape.connection_upgrade |=
                    field_tokens(std::iter::once((h.name, h.value)), "connection")
                        .any(|t| t.eq_ignore_ascii_case(b"upgrade"));
            }
        }
        if shape.hosts != 1 {
            shape.host = None;
        }
        shape
    }

    /// HTTP/1.1, an origin-form target, one `Host`, no body.
    fn bodyless_origin_form(&self, req: &httparse::Request) -> bool {
        req.version == Some(1)
            && req.path.is_some_and(|p| p.starts_with('/'))
            && self.hosts == 1
            && !self.body_length
            && !self.transfer_encoding
    }

    /// A request upgate can decide without hyper: a GET of an origin-form
    /// target over HTTP/1.1 with one `Host`, asking to upgrade, with no body
    /// (at most one `Content-Length: 0`). Anything else goes to hyper, which
    /// checks it as for any request.
    pub fn plain_upgrade(&self, req: &httparse::Request) -> bool {
        self.bodyless_origin_form(req)
            && req.method == Some("GET")
            && self.lengths <= 1
            && self.upgrade
            && self.connection_upgrade
    }

    /// A request served directly: bodyless, origin-form, HTTP/1.1, one `Host`,
    /// not asking to upgrade, no `Expect`, not `CONNECT`. Anything else goes
    /// to hyper.
    pub fn direct(&self, req: &httparse::Request) -> bool {
        self.bodyless_origin_form(req)
            && req.method.is_some_and(|m| m != "CONNECT")
            && !self.upgrade
            && !self.expect
    }
}

/// The tokens of every `Connection` header, trimmed.
fn connection_tokens<'a>(headers: &'a [httparse::Header<'a>]) -> Vec<&'a [u8]> {
    field_tokens(headers.iter().map(|h| (h.name, h.value)), "connection").collect()
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The request as the upstream gets it (from a head [`Shape::direct`] took).
pub fn plain_request(req: &httparse::Request, client: SocketAddr, proto: &str) -> PlainRequest {
    let method = req.method.unwrap_or("GET");
    let path = req.path.unwrap_or("/");
    let named = connection_tokens(req.headers);
    let size: usize = req
        .headers
        .iter()
        .map(|h| h.name.len() + h.value.len() + 4)
        .sum();
    let mut out = Vec::with_capacity(method.len() + path.len() + size + 192);
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut prev_for = None;
    let mut host = None;
    for h in req.headers.iter() {
        if is_hop_by_hop(h.name, &named) || eq(h.name, "x-forwarded-proto") {
            continue;
        }
        if eq(h.name, "x-forwarded-for") {
            // The first list an earlier hop sent goes on, with this client after it.
            prev_for = prev_for.or_else(|| std::str::from_utf8(h.value).ok());
            continue;
        }
        if eq(h.name, "host") {
            host = std::str::from_utf8(h.value).ok();
        }
        push_header(&mut out, h.name, h.value);
    }
    push_header(
        &mut out,
        "X-Forwarded-For",
        forwarded_for(prev_for, client).as_bytes(),
    );
    push_header(
        &mut out,
        "X-Forwarded-Proto",
        static_proto(proto).as_bytes(),
    );
    push_header(
        &mut out,
        "Forwarded",
        forwarded(client, proto, host).as_bytes(),
    );
    out.extend_from_slice(b"\r\n");
    PlainRequest {
        upstream_head: out,
        head_method: method == "HEAD",
        idempotent: matches!(
            method,
            "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
        ),
        close: named.iter().any(|t| t.eq_ignore_ascii_case(b"close")),
    }
}

/// The head the client gets for an upstream's final response `res` (not 1xx):
/// hop-by-hop headers dropped except a `Transfer-Encoding` that names a coding
/// (the body goes out framed as it came), `Content-Length` dropped beside such
/// a `Transfer-Encoding`, `Transfer-Encoding: chunked` added to a body that
/// ends with the upstream's connection, and `Connection: close` when the client
/// connection closes after it.
pub fn client_head(
    res: &httparse::Response,
    head_method: bool,
    client_close: bool,
) -> Result<ClientHead, String> {
    let code = res.code.unwrap_or(0);
    // The codes hyper accepts (100 to 999), so both paths refuse the same.
    let status = http::StatusCode::from_u16(code)
        .map_err(|_| format!("status {code:03} is not an HTTP status code"))?;
    let fields = || res.headers.iter().map(|h| (h.name, h.value));
    let te = last_coding(fields());
    let framing = framing(code, head_method, te, fields())?;
    let named = connection_tokens(res.headers);
    let length = res.headers.iter().any(|h| eq(h.name, "content-length"));
    // Both a coding and a length: a smuggling signal (RFC 9112 §6.3); the
    // coding wins, and the connection is not trusted with another request.
    let upstream_keeps = res.version == Some(1)
        && !named.iter().any(|t| t.eq_ignore_ascii_case(b"close"))
        && !(te.is_some() && length);
    let rechunk = framing == Framing::Eof && te.is_none();
    let close = client_close || (framing == Framing::Eof && !rechunk);
    let coded = te.is_some();
    let size: usize = res
        .headers
        .iter()
        .map(|h| h.name.len() + h.value.len() + 4)
        .sum();
    let mut out = Vec::with_capacity(size + 64);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    match res.reason.filter(|r| !r.is_empty()) {
        Some(reason) => out.extend_from_slice(reason.as_bytes()),
        None => out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes()),
    }
    out.extend_from_slice(b"\r\n");
    for h in res.headers.iter() {
        let keep = if eq(h.name, "transfer-encoding") {
            coded
        } else if eq(h.name, "content-length") {
            !coded
        } else {
            !is_hop_by_hop(h.name, &named)
        };
        if keep {
            push_header(&mut out, h.name, h.value);
        }
    }
    if rechunk {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(ClientHead {
        bytes: out,
        framing,
        rechunk,
        reusable: upstream_keeps && framing != Framing::Eof,
        close,
    })
}

#[cfg(test)]
#[path = "direct_head_tests.rs"]
mod tests;
