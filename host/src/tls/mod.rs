//! TLS, on rustls with the `ring` crypto provider: the certificates a
//! listener serves, chosen by SNI ([`server`]); the client side of `tls`
//! upstreams ([`client`]); the ClientHello reader of pass-through listeners
//! ([`hello`]); and the server-name matching they share ([`names`]).
//!
//! Certificates and keys are read when the config is loaded (at start and on
//! each reload), so a missing or bad file is a config error naming its key.

pub mod client;
pub mod hello;
pub mod names;
mod pem;
pub mod server;

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;

/// The one crypto provider every TLS config here is built with.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// The ALPN protocol both sides offer: upgate speaks HTTP/1.1 only.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";
