//! How an upstream response's body ends (RFC 9112 §6.3): one rule set for
//! both paths that read a response body themselves, a response a plugin
//! relays ([`crate::relay_body`]) and a plain request served without hyper
//! ([`crate::direct_head`]), so the two cannot disagree on where a body ends.

use crate::headers::field_tokens;

/// How the body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (1xx, 204, 304, or a response to HEAD).
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the upstream closes.
    Eof,
}

/// The last transfer coding the `Transfer-Encoding` fields name, if any.
/// `fields` are a head's header fields as (name, value).
pub fn last_coding<'a>(fields: impl Iterator<Item = (&'a str, &'a [u8])>) -> Option<&'a [u8]> {
    field_tokens(fields, "transfer-encoding").last()
}

/// The codings a body still carries once a final `chunked` is decoded
/// (`gzip, chunked` → `gzip`), as a `Transfer-Encoding` value; empty if none.
/// A proxy that decodes the chunks and frames the body anew must still say
/// these, or the client takes coded bytes for the content.
pub fn codings_under_chunked<'a>(fields: impl Iterator<Item = (&'a str, &'a [u8])>) -> Vec<u8> {
    let mut all: Vec<&[u8]> = field_tokens(fields, "transfer-encoding").collect();
    if all
        .last()
        .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"))
    {
        all.pop();
    }
    all.join(&b", "[..])
}

/// The framing of a response with `status` to a request (`head_method`: a
/// `HEAD` request) whose last transfer coding is `te` ([`last_coding`]).
///
/// A coding wins over `Content-Length`; chunked last means chunked, any other
/// last coding means the body runs until the upstream closes. A
/// `Content-Length` must be digits only, and when it is sent more than once
/// every value must be the same: anything else is refused, since two parties
/// reading it differently is how responses get smuggled.
pub fn framing<'a>(
    status: u16,
    head_method: bool,
    te: Option<&[u8]>,
    fields: impl Iterator<Item = (&'a str, &'a [u8])>,
) -> Result<Framing, String> {
    if head_method || matches!(status, 100..=199 | 204 | 304) {
        return Ok(Framing::Empty);
    }
    if let Some(last) = te {
        return Ok(if last.eq_ignore_ascii_case(b"chunked") {
            Framing::Chunked
        } else {
            Framing::Eof
        });
    }
    let mut length = None;
    for (_, value) in fields.filter(|(name, _)| name.eq_ignore_ascii_case("content-length")) {
        let n = std::str::from_utf8(value.trim_ascii())
            .ok()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or("Content-Length is not a number")?;
        if length.is_some_and(|l| l != n) {
            return Err("two different Content-Length values".into());
        }
        length = Some(n);
    }
    Ok(length.map_or(Framing::Eof, Framing::Length))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(status: u16, head: bool, fields: &[(&str, &str)]) -> Result<Framing, String> {
        let fields = || fields.iter().map(|(n, v)| (*n, v.as_bytes()));
        framing(status, head, last_coding(fields()), fields())
    }

    #[test]
    fn no_body_for_head_1xx_204_304() {
        for status in [101, 204, 304] {
            assert_eq!(
                of(status, false, &[("Content-Length", "5")]),
                Ok(Framing::Empty)
            );
        }
        assert_eq!(
            of(403, true, &[("Content-Length", "5")]),
            Ok(Framing::Empty)
        );
    }

    #[test]
    fn the_last_coding_wins_over_a_length() {
        let chunked = [
            ("Transfer-Encoding", "gzip, chunked"),
            ("Content-Length", "5"),
        ];
        assert_eq!(of(200, false, &chunked), Ok(Framing::Chunked));
        let split = [
            ("Transfer-Encoding", "chunked"),
            ("transfer-encoding", "gzip,"),
        ];
        assert_eq!(of(200, false, &split), Ok(Framing::Eof));
        // An empty list names no coding: the length frames the body.
        let empty = [("Transfer-Encoding", " , "), ("Content-Length", "5")];
        assert_eq!(of(200, false, &empty), Ok(Framing::Length(5)));
        // Beside a coding the length is not looked at, even when it is bad.
        let bad_length = [("Transfer-Encoding", "chunked"), ("Content-Length", "x")];
        assert_eq!(of(200, false, &bad_length), Ok(Framing::Chunked));
    }

    #[test]
    fn codings_left_once_the_chunks_are_decoded() {
        let left = |fields: &[(&str, &str)]| {
            codings_under_chunked(fields.iter().map(|(n, v)| (*n, v.as_bytes())))
        };
        assert_eq!(left(&[("Transfer-Encoding", "gzip, chunked")]), b"gzip");
        let two_fields = [
            ("Transfer-Encoding", "gzip"),
            ("transfer-encoding", "br, CHUNKED"),
        ];
        assert_eq!(left(&two_fields), b"gzip, br");
        assert_eq!(left(&[("Transfer-Encoding", "gzip")]), b"gzip");
        assert_eq!(left(&[("Transfer-Encoding", "chunked")]), b"");
        assert_eq!(left(&[("Content-Length", "5")]), b"");
    }

    #[test]
    fn lengths_are_digits_and_agree() {
        assert_eq!(
            of(200, false, &[("content-length", " 5 ")]),
            Ok(Framing::Length(5))
        );
        let same = [("Content-Length", "5"), ("Content-Length", "5")];
        assert_eq!(of(200, false, &same), Ok(Framing::Length(5)));
        assert_eq!(of(200, false, &[]), Ok(Framing::Eof));
        for bad in [
            &[("Content-Length", "x")][..],
            &[("Content-Length", "+5")],
            &[("Content-Length", "")],
            &[("Content-Length", "5, 5")],
            &[("Content-Length", "5"), ("Content-Length", "6")],
            &[("Content-Length", "99999999999999999999999")],
        ] {
            assert!(of(200, false, bad).is_err(), "{bad:?}");
        }
    }
}
