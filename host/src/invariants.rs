//! The checks that stand between a plugin's `tunnel` outcome and a real tunnel
//! (design.md §5): the client asked to upgrade, the upstream answered 101 with a
//! protocol the client offered and the route allows, and for WebSocket its
//! `Sec-WebSocket-Accept` matches the key that was actually sent upstream.

use crate::headers::websocket_accept;
use crate::wire::{self, RequestHead, ResponseHead};

/// Why a 101 can't become a tunnel (answered 502).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The upstream's 101 names no protocol.
    #[error("upstream switched protocols without an Upgrade header")]
    NoProtocol,
    /// The upstream switched to something the client did not offer.
    #[error("upstream switched to `{0}`, which the client did not offer")]
    NotOffered(String),
    /// The route's allow-list does not hold it.
    #[error("upstream switched to `{0}`, which this route does not allow")]
    NotAllowed(String),
    /// WebSocket accept key missing or wrong.
    #[error("upstream's Sec-WebSocket-Accept does not match the key sent")]
    BadAccept,
}

/// Checks a 101 `response` to `request` (as sent upstream). `offered` are the
/// client's `Upgrade` tokens, `allowed` the route's allow-list (both lower case).
/// Returns the protocol switched to.
pub fn check_switch(
    request: &RequestHead,
    response: &ResponseHead,
    offered: &[String],
    allowed: &[String],
) -> Result<String, Refusal> {
    let chosen = wire::tokens(&response.headers, "upgrade");
    let proto = chosen.first().ok_or(Refusal::NoProtocol)?.clone();
    let name = proto.split('/').next().unwrap_or("");
    if !offered
        .iter()
        .any(|o| o == &proto || o.split('/').next() == Some(name) && !proto.contains('/'))
    {
        return Err(Refusal::NotOffered(proto));
    }
    if !allowed.iter().any(|a| a == &proto || a == name) {
        return Err(Refusal::NotAllowed(proto));
    }
    if name == "websocket" {
        let key = wire::find(&request.headers, "sec-websocket-key").ok_or(Refusal::BadAccept)?;
        let accept =
            wire::find(&response.headers, "sec-websocket-accept").ok_or(Refusal::BadAccept)?;
        if accept.trim_ascii() != websocket_accept(key.trim_ascii()).as_bytes() {
            return Err(Refusal::BadAccept);
        }
    }
    Ok(proto)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::Header;

    fn h(n: &str, v: &str) -> Header {
        Header {
            name: n.into(),
            value: v.as_bytes().to_vec(),
        }
    }

    fn req(key: &str) -> RequestHead {
        RequestHead {
            method: "GET".into(),
            target: "/".into(),
            headers: vec![h("Sec-WebSocket-Key", key)],
        }
    }

    fn res(headers: Vec<Header>) -> ResponseHead {
        ResponseHead {
            status: 101,
            reason: String::new(),
            headers,
        }
    }

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    fn ws() -> Vec<String> {
        vec!["websocket".into()]
    }

    #[test]
    fn good_switch() {
        let r = res(vec![
            h("upgrade", "WebSocket"),
            h("Sec-WebSocket-Accept", ACCEPT),
        ]);
        assert_eq!(
            check_switch(&req(KEY), &r, &ws(), &ws()),
            Ok("websocket".into())
        );
    }

    #[test]
    fn refusals() {
        let r = res(vec![
            h("Upgrade", "websocket"),
            h("Sec-WebSocket-Accept", "AAAA"),
        ]);
        assert_eq!(
            check_switch(&req(KEY), &r, &ws(), &ws()),
            Err(Refusal::BadAccept)
        );
        let r = res(vec![h("Upgrade", "h2c")]);
        assert_eq!(
            check_switch(&req(KEY), &r, &ws(), &ws()),
            Err(Refusal::NotOffered("h2c".into()))
        );
        let offered = vec!["h2c".to_string()];
        assert_eq!(
            check_switch(&req(KEY), &r, &offered, &ws()),
            Err(Refusal::NotAllowed("h2c".into()))
        );
        assert_eq!(
            check_switch(&req(KEY), &res(vec![]), &ws(), &ws()),
            Err(Refusal::NoProtocol)
        );
    }
}
