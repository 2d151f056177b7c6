//! The plugin as the upstream's client: `send` asks the host to connect, write a
//! request head exactly as built, and read the response head back. The plugin
//! never sees the socket; the host keeps it inside the returned [`Exchange`].

use crate::bindings::upgate::plugin::upstream as wit;
use crate::{Exchange, RequestHead, UpstreamError};

/// The name that selects the route's default upstream (the first of
/// [`Peer::upstreams`](crate::Peer::upstreams)).
pub const DEFAULT: &str = "";

/// Connects to `upstream` (one of the route's upstreams; [`DEFAULT`] for the
/// route's default), writes `req` exactly as given (header names spelled as set)
/// and reads the response head.
///
/// Return the [`Exchange`] in an [`Outcome`](crate::Outcome) to tunnel or relay
/// it; dropping it closes the upstream connection.
pub fn send(upstream: &str, req: &RequestHead) -> Result<Exchange, UpstreamError> {
    wit::send(upstream, &req.to_wit()).map(Exchange::new)
}
