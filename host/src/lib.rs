//! upgate: a programmable reverse proxy for HTTP/1.1 Upgrade traffic (WebSocket
//! first), where every upgrade request is decided by a sandboxed wasm plugin.
//!
//! Map of the crate:
//! - [`config`]: the TOML config, validated, with defaults.
//! - [`server`]: [`Proxy::start`] and [`Proxy::start_on`] load plugins, bind listeners (one socket per worker).
//! - [`listener`]: accept loops; TLS termination; each connection to its kind's handler.
//! - [`conn`]: one client connection, TCP or TLS (each head read off the wire: a plain upgrade decided at once, a bodyless plain request served directly, the rest by hyper).
//! - [`passthrough`]: a TLS pass-through connection, routed by its ClientHello's SNI.
//! - [`tls`]: certificates by SNI, TLS to upstreams, the ClientHello reader.
//! - [`http_proxy`]: plain requests through hyper, streamed to pooled upstream connections.
//! - [`direct_http`]: bodyless plain requests without hyper ([`direct_head`], [`direct_body`], [`direct_pool`], [`chunk_scan`]).
//! - [`upgrade`]: an upgrade request: plugin, invariant checks, outcome; [`switch`]: a 101 and its tunnel.
//! - [`plugin`]: the wasmtime runtime and the host side of `wit/plugin.wit`.
//! - [`exchange`], [`upstream`], [`wire`]: the plugin's upstream exchanges on raw connections; [`resolve`]: upstream names, resolved and kept.
//! - [`invariants`]: what must hold before a 101 becomes a tunnel.
//! - [`splice`]: the tunnel loop (WebSocket frames followed for keepalive and drain, [`ws_frame`]).
//! - [`tunnel`], [`tunnel_io`], [`tunnels`]: a tunnel's limits and report, its ends, the open set.
//! - [`relay_body`]: a relayed upstream answer's body; [`framing`]: where an upstream answer's body ends, for it and [`direct_http`].
//! - [`reload`]: hot reload of plugin files and of the config (file change, SIGHUP).
//! - [`router`], [`headers`], [`body`], [`rewind`]: routing and small shared pieces.
//! - [`workers`]: worker threads, one event loop each, and their listening sockets.
//! - [`demo`]: the built-in echo backend and page of `upgate demo`.

pub mod body;
pub mod chunk_scan;
pub mod config;
pub mod conn;
pub mod demo;
pub mod direct_body;
pub mod direct_head;
pub mod direct_http;
pub mod direct_pool;
pub mod exchange;
pub mod framing;
pub mod headers;
pub mod http_proxy;
pub mod invariants;
pub mod listener;
pub mod passthrough;
pub mod plugin;
pub mod relay_body;
pub mod reload;
pub mod resolve;
pub mod rewind;
pub mod router;
pub mod server;
pub mod splice;
mod splice_forward;
pub mod switch;
pub mod tls;
pub mod tunnel;
pub mod tunnel_io;
pub mod tunnels;
pub mod upgrade;
pub mod upstream;
pub mod wire;
pub mod workers;
pub mod ws_frame;

pub use config::Config;
pub use server::{Proxy, StartError};
