//! The response body type every proxy path returns, and the short text answers
//! the proxy gives on its own (502, 504, 400...), each saying why.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};

/// Any error a body may yield while streaming.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every response upgate sends.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

/// A complete body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A short `text/plain` answer from the proxy itself: `"<code> <reason>: <why>\n"`.
pub fn status_response(status: StatusCode, why: &str) -> Response<ProxyBody> {
    let mut res = Response::new(full(status_text(status, why)));
    *res.status_mut() = status;
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(TEXT_PLAIN),
    );
    res
}

const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

fn status_text(status: StatusCode, why: &str) -> String {
    format!(
        "{} {}: {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        why
    )
}

/// The same answer as [`status_response`], as bytes on the wire (for the paths
/// that write responses without hyper); `close` adds `Connection: close`, and
/// an answer to `HEAD` (`head_only`) has no body.
pub fn status_bytes(status: StatusCode, why: &str, close: bool, head_only: bool) -> Vec<u8> {
    let text = status_text(status, why);
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {TEXT_PLAIN}\r\ncontent-length: {}\r\n{}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        text.len(),
        if close { "connection: close\r\n" } else { "" },
    );
    if !head_only {
        out.push_str(&text);
    }
    out.into_bytes()
}
