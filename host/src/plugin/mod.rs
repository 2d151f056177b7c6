//! Plugins: loading, validating and running them, sandboxed. [`engines`] holds
//! the two wasmtime engines (by how a pooled memory is reset) and the epoch
//! ticker; [`runtime`] loads plugins and runs one hook call on a fresh instance
//! per upgrade;
//! [`state`] is what a call's store holds and the host imports behind it;
//! [`bindings`] is the host side of `wit/plugin.wit`.
//!
//! A plugin never sees a socket: its `upstream.send` calls land in [`state`],
//! and the exchanges it returns in its outcome are taken back out of its store
//! as host values ([`Decision`]) before the store is dropped.

mod bindings;
mod engines;
mod exports;
mod meter;
mod runtime;
mod state;
mod ticker;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use runtime::PluginRuntime;

use crate::exchange::Exchange;
use crate::wire;

/// The pass-through plugin, built from `plugins/passthrough` by `build.rs`.
pub static PASSTHROUGH_WASM: &[u8] = include_bytes!(env!("UPGATE_PASSTHROUGH_WASM"));

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Not a component of the `upgate:plugin/plugin` world, or not wasm at all.
    #[error("`{name}` is not a valid upgate plugin: {reason}")]
    Invalid {
        /// Plugin name (file name).
        name: String,
        /// Compiler or linker message.
        reason: String,
    },
    /// Its `on-load` hook refused the route's settings, or trapped.
    #[error("`{name}` refused its settings: {reason}")]
    Refused {
        /// Plugin name.
        name: String,
        /// The plugin's message.
        reason: String,
    },
}

/// How a plugin call failed; the route's failure policy decides the answer.
#[derive(Debug, thiserror::Error)]
pub enum CallFailure {
    /// The instance could not be created (pool exhausted, start-up trap).
    #[error("instantiation failed: {0}")]
    Instantiate(String),
    /// The plugin trapped (panic, unreachable, stack overflow).
    #[error("trap: {0}")]
    Trap(String),
    /// The plugin ran past its deadline.
    #[error("deadline of {0:?} exceeded")]
    Deadline(Duration),
    /// The plugin tried to grow its memory past its cap.
    #[error("memory cap of {0} bytes reached")]
    Memory(usize),
    /// The plugin returned something the host can't use.
    #[error("bad outcome: {0}")]
    BadOutcome(String),
}

/// Plugin failures counted by kind since start, for logs and tests.
#[derive(Debug, Default)]
pub struct FailureCounts {
    counts: [AtomicU64; 5],
}

impl FailureCounts {
    /// Counts `f`; returns the new total for its kind.
    pub fn count(&self, f: &CallFailure) -> u64 {
        self.counts[f.index()].fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The total for `kind` (as [`CallFailure::kind`] names it).
    pub fn get(&self, kind: &str) -> u64 {
        KINDS
            .iter()
            .position(|k| *k == kind)
            .map_or(0, |i| self.counts[i].load(Ordering::Relaxed))
    }
}

const KINDS: [&str; 5] = ["instantiate", "trap", "deadline", "memory", "bad-outcome"];

impl CallFailure {
    fn index(&self) -> usize {
        match self {
            CallFailure::Instantiate(_) => 0,
            CallFailure::Trap(_) => 1,
            CallFailure::Deadline(_) => 2,
            CallFailure::Memory(_) => 3,
            CallFailure::BadOutcome(_) => 4,
        }
    }

    /// Short kind name for logs and counters.
    pub fn kind(&self) -> &'static str {
        KINDS[self.index()]
    }
}

/// What the plugin decided, in host values.
#[derive(Debug)]
pub enum Decision {
    /// Open a tunnel over this exchange (the host still checks the invariants).
    Tunnel {
        /// The upstream exchange.
        exchange: Exchange,
        /// The 101 head for the client, if the plugin built one.
        client_head: Option<wire::ResponseHead>,
    },
    /// Relay the upstream's response as an ordinary response.
    Relay(Exchange),
    /// Answer the client directly.
    Respond(wire::ResponseHead, Vec<u8>),
}

/// Who asked, for the plugin's `peer` argument.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    /// Client address.
    pub client_addr: std::net::SocketAddr,
    /// "http" or "https".
    pub scheme: &'static str,
    /// TLS SNI, when terminated here.
    pub tls_server_name: Option<String>,
}

/// A compiled plugin, ready to instantiate.
#[derive(Clone)]
pub struct LoadedPlugin {
    /// Name for logs (file name or "passthrough").
    pub name: std::sync::Arc<str>,
    /// Hex SHA-1 of the component bytes (first 12 digits), telling versions apart in logs.
    pub hash: String,
    pre: wasmtime::component::InstancePre<state::CallState>,
    exports: exports::Exports,
    reset: &'static str,
}

impl LoadedPlugin {
    /// How a pooled memory is reset after each of this plugin's instances:
    /// `"memset"` or `"page-scan"` (see the `engines` module).
    pub fn memory_reset(&self) -> &'static str {
        self.reset
    }
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LoadedPlugin({}@{})", self.name, self.hash)
    }
}
