//! The heads, responses and outcomes plugins work with, owned by the SDK, and
//! their conversions to and from the WIT records, whose header fields cross
//! the boundary as one `header-block` (encoded and decoded with
//! `upgate-header-block`). [`Exchange`] wraps the host's `exchange` resource
//! so its heads come back as these types.

use crate::bindings::upgate::plugin::decision as wit_decision;
use crate::bindings::upgate::plugin::types as wit;
use crate::bindings::upgate::plugin::upstream as wit_upstream;

/// One header field. `name` is spelled exactly as on the wire (case kept);
/// `value` is the raw bytes of the field value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The name, spelled as it is (or will be) on the wire.
    pub name: String,
    /// The raw value bytes.
    pub value: Vec<u8>,
}

/// An HTTP/1.1 request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    /// Method, e.g. "GET".
    pub method: String,
    /// Request target as sent on the request line, e.g. "/chat?room=1".
    pub target: String,
    /// Header fields in order.
    pub headers: Vec<Header>,
}

/// An HTTP/1.1 response head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    /// Status code.
    pub status: u16,
    /// Reason phrase; empty means the standard one for `status`.
    pub reason: String,
    /// Header fields in order.
    pub headers: Vec<Header>,
}

/// A complete response, built by the plugin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Status line and headers.
    pub head: ResponseHead,
    /// The body (its length is framed by the host).
    pub body: Vec<u8>,
}

/// Switch protocols: the host checks the exchange (a 101 to a protocol the
/// client offered and the route allows, a matching `Sec-WebSocket-Accept`),
/// answers the client, then splices bytes both ways.
#[derive(Debug)]
pub struct Tunnel {
    /// The exchange whose upstream connection becomes the tunnel.
    pub exchange: Exchange,
    /// The 101 head to send the client; `None` means the upstream's, with
    /// hop-by-hop headers rebuilt by the host.
    pub client_head: Option<ResponseHead>,
}

/// What the plugin decided for one upgrade request.
#[derive(Debug)]
pub enum Outcome {
    /// Open the tunnel.
    Tunnel(Tunnel),
    /// Relay the upstream's (non-101) response, body included, as an ordinary
    /// response; the client connection is never tunnelled.
    Relay(Exchange),
    /// Answer the client with this response; no tunnel.
    Respond(Response),
}

/// A request head sent upstream and the upstream's response head read back.
/// The connection stays open inside the host; returning the exchange in an
/// [`Outcome`] tells the host what to do with it. Dropping it closes it.
#[derive(Debug)]
pub struct Exchange(wit_upstream::Exchange);

impl Exchange {
    pub(crate) fn new(inner: wit_upstream::Exchange) -> Self {
        Exchange(inner)
    }

    /// The upstream's response status (cheaper than [`Exchange::response`]
    /// when that is all you need).
    pub fn status(&self) -> u16 {
        self.0.status()
    }

    /// The upstream's response head, names spelled as the upstream sent them.
    pub fn response(&self) -> ResponseHead {
        ResponseHead::from_wit(self.0.response())
    }

    /// The request head exactly as it was written upstream.
    pub fn request(&self) -> RequestHead {
        RequestHead::from_wit(self.0.request())
    }
}

fn encode(headers: &[Header]) -> Vec<u8> {
    upgate_header_block::encode(
        headers
            .iter()
            .map(|h| (h.name.as_bytes(), h.value.as_slice())),
    )
}

/// The fields of a block the host built. The host only sends well-formed
/// blocks with UTF-8 names; anything else is a host bug, and the call traps.
fn decode(block: &[u8]) -> Vec<Header> {
    let fields = match upgate_header_block::decode(block) {
        Ok(fields) => fields,
        Err(e) => panic!("upgate sent a bad head: {e}"),
    };
    fields
        .map(|(name, value)| Header {
            name: String::from_utf8(name.to_vec())
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            value: value.to_vec(),
        })
        .collect()
}

impl RequestHead {
    pub(crate) fn from_wit(r: wit::RequestHead) -> Self {
        RequestHead {
            method: r.method,
            target: r.target,
            headers: decode(&r.headers),
        }
    }

    pub(crate) fn to_wit(&self) -> wit::RequestHead {
        wit::RequestHead {
            method: self.method.clone(),
            target: self.target.clone(),
            headers: encode(&self.headers),
        }
    }
}

impl ResponseHead {
    pub(crate) fn from_wit(r: wit::ResponseHead) -> Self {
        ResponseHead {
            status: r.status,
            reason: r.reason,
            headers: decode(&r.headers),
        }
    }

    pub(crate) fn into_wit(self) -> wit::ResponseHead {
        wit::ResponseHead {
            status: self.status,
            headers: encode(&self.headers),
            reason: self.reason,
        }
    }
}

impl Outcome {
    pub(crate) fn into_wit(self) -> wit_decision::Outcome {
        match self {
            Outcome::Tunnel(t) => wit_decision::Outcome::Tunnel(wit_decision::Tunnel {
                exchange: t.exchange.0,
                client_head: t.client_head.map(ResponseHead::into_wit),
            }),
            Outcome::Relay(ex) => wit_decision::Outcome::Relay(ex.0),
            Outcome::Respond(r) => wit_decision::Outcome::Respond(wit::Response {
                head: r.head.into_wit(),
                body: r.body,
            }),
        }
    }
}

#[doc(hidden)]
/// What `export_plugin!`'s `on-upgrade` export runs: the WIT request in, the
/// plugin's outcome out.
pub fn on_upgrade<P: crate::Plugin>(
    peer: wit::Peer,
    req: wit::RequestHead,
) -> wit_decision::Outcome {
    P::on_upgrade(peer, RequestHead::from_wit(req)).into_wit()
}
