//! The plugin runtime: one wasmtime `Engine` (async, epoch interruption, pooling
//! allocator), loading and validating plugin components, and running one hook
//! call on a fresh, sandboxed instance per upgrade.
//!
//! A plugin never sees a socket: its `upstream.send` calls land in [`state`],
//! and the exchanges it returns in its outcome are taken back out of its store
//! as host values ([`Decision`]) before the store is dropped.

mod bindings;
mod state;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use wasmtime::component::{Component, Linker};
use wasmtime::{
    Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimitsBuilder,
    UpdateDeadline,
};

use crate::exchange::{Exchange, StubUpstream};
use crate::router::Route;
use crate::wire;
use bindings::{Outcome, Peer, PluginPre};
use state::CallState;

/// Memory a plugin instance may grow to.
pub const MEMORY_LIMIT: usize = 16 << 20;
/// How often the epoch advances; the granularity of deadlines and of yielding.
const EPOCH_TICK: Duration = Duration::from_millis(1);
/// The target plugins are built for.
const WASM_TARGET: &str = "wasm32-wasip2";
/// Plugin instances alive at once (pool size).
const POOL_INSTANCES: u32 = 1000;
/// Bytes of a pooled memory reset by memset (kept resident) rather than returned to the OS.
const KEEP_RESIDENT: usize = 256 << 10;

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
    /// The plugin trapped (panic, unreachable, stack overflow, out of memory).
    #[error("trap: {0}")]
    Trap(String),
    /// The plugin ran past its deadline.
    #[error("deadline of {0:?} exceeded")]
    Deadline(Duration),
    /// The plugin returned something the host can't use.
    #[error("bad outcome: {0}")]
    BadOutcome(String),
}

impl CallFailure {
    /// Short kind name for logs and counters.
    pub fn kind(&self) -> &'static str {
        match self {
            CallFailure::Instantiate(_) => "instantiate",
            CallFailure::Trap(_) => "trap",
            CallFailure::Deadline(_) => "deadline",
            CallFailure::BadOutcome(_) => "bad-outcome",
        }
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
    pub name: Arc<str>,
    /// Hex SHA-1 of the component bytes (first 12 digits), telling versions apart in logs.
    pub hash: String,
    pre: PluginPre<CallState>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LoadedPlugin({}@{})", self.name, self.hash)
    }
}

/// The deadline trap's payload, so a deadline is told apart from other traps.
#[derive(Debug)]
struct DeadlineHit;

impl std::fmt::Display for DeadlineHit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("plugin deadline exceeded")
    }
}

impl std::error::Error for DeadlineHit {}

/// The engine, the linker and a cache of compiled components, shared process-wide.
pub struct PluginRuntime {
    engine: Engine,
    linker: Linker<CallState>,
    compiled: Mutex<HashMap<String, Component>>,
}

impl PluginRuntime {
    /// The process-wide runtime (created on first use, with its epoch ticker thread).
    pub fn global() -> &'static PluginRuntime {
        static RUNTIME: OnceLock<PluginRuntime> = OnceLock::new();
        RUNTIME.get_or_init(|| match PluginRuntime::new() {
            Ok(rt) => rt,
            Err(e) => panic!("cannot configure the wasm engine: {e}"),
        })
    }

    fn new() -> wasmtime::Result<PluginRuntime> {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(POOL_INSTANCES)
            .total_core_instances(POOL_INSTANCES * 4)
            .total_memories(POOL_INSTANCES * 2)
            .total_tables(POOL_INSTANCES * 4)
            .total_stacks(POOL_INSTANCES)
            .max_memory_size(MEMORY_LIMIT * 4)
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT);
        let mut cfg = wasmtime::Config::new();
        cfg.wasm_component_model(true)
            .epoch_interruption(true)
            .max_wasm_stack(512 << 10)
            .async_stack_size(1 << 20)
            .memory_reservation((MEMORY_LIMIT * 4) as u64)
            .memory_guard_size(64 << 10)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&cfg)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        bindings::Plugin::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)?;
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("upgate-epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })?;
        Ok(PluginRuntime {
            engine,
            linker,
            compiled: Mutex::new(HashMap::new()),
        })
    }

    /// Compiles (or takes from cache) and pre-links a plugin. Blocking: run it off the async workers.
    pub fn load(&self, name: &str, bytes: &[u8]) -> Result<LoadedPlugin, LoadError> {
        let invalid = |reason: String| LoadError::Invalid {
            name: name.to_string(),
            reason,
        };
        match bytes.get(..8) {
            Some([0, b'a', b's', b'm', 0x0d, 0, 0x01, 0]) => {}
            Some([0, b'a', b's', b'm', 0x01, 0, 0, 0]) => {
                return Err(invalid(format!("a core wasm module, not a component: build it with --target {WASM_TARGET}")))
            }
            _ => return Err(invalid("not a WebAssembly component (bad magic number)".into())),
        }
        let hash = content_hash(bytes);
        let cached = self
            .compiled
            .lock()
            .ok()
            .and_then(|c| c.get(&hash).cloned());
        let component = match cached {
            Some(c) => c,
            None => {
                let c = Component::from_binary(&self.engine, bytes)
                    .map_err(|e| invalid(format!("{e:#}")))?;
                if let Ok(mut cache) = self.compiled.lock() {
                    if cache.len() >= 64 {
                        cache.clear();
                    }
                    cache.insert(hash.clone(), c.clone());
                }
                c
            }
        };
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| invalid(format!("{e:#}")))?;
        let pre = PluginPre::new(pre).map_err(|e| invalid(format!("{e:#}")))?;
        Ok(LoadedPlugin {
            name: name.into(),
            hash,
            pre,
        })
    }

    fn store(
        &self,
        plugin: &LoadedPlugin,
        route: Arc<Route>,
        stub: Option<StubUpstream>,
    ) -> Store<CallState> {
        let deadline = route.config.plugin_deadline;
        let limits = StoreLimitsBuilder::new()
            .memory_size(MEMORY_LIMIT)
            .instances(16)
            .build();
        let mut store = Store::new(
            &self.engine,
            CallState::new(route, plugin.name.clone(), limits, stub),
        );
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |ctx| {
            if ctx.data().busy() > deadline {
                Err(wasmtime::Error::new(DeadlineHit))
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store
    }

    /// Runs `on-load` for `route`: the plugin's chance to refuse its settings.
    pub async fn check(&self, plugin: &LoadedPlugin, route: Arc<Route>) -> Result<(), LoadError> {
        let refused = |reason: String| LoadError::Refused {
            name: plugin.name.to_string(),
            reason,
        };
        let mut store = self.store(plugin, route, None);
        let instance = plugin
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| refused(format!("{e:#}")))?;
        instance
            .call_on_load(&mut store)
            .await
            .map_err(|e| refused(format!("{e:#}")))?
            .map_err(refused)
    }

    /// Runs `on-upgrade` on a fresh instance and turns its outcome into host values.
    pub async fn on_upgrade(
        &self,
        plugin: &LoadedPlugin,
        route: Arc<Route>,
        peer: &PeerInfo,
        req: wire::RequestHead,
    ) -> Result<Decision, CallFailure> {
        self.call_on_upgrade(plugin, route, peer, req, None).await
    }

    /// [`Self::on_upgrade`] with every upstream exchange answered by `stub`, off
    /// the network: what the plugin-overhead benchmark measures.
    pub async fn on_upgrade_stubbed(
        &self,
        plugin: &LoadedPlugin,
        route: Arc<Route>,
        peer: &PeerInfo,
        req: wire::RequestHead,
        stub: StubUpstream,
    ) -> Result<Decision, CallFailure> {
        self.call_on_upgrade(plugin, route, peer, req, Some(stub))
            .await
    }

    async fn call_on_upgrade(
        &self,
        plugin: &LoadedPlugin,
        route: Arc<Route>,
        peer: &PeerInfo,
        req: wire::RequestHead,
        stub: Option<StubUpstream>,
    ) -> Result<Decision, CallFailure> {
        let deadline = route.config.plugin_deadline;
        let wit_peer = Peer {
            client_addr: peer.client_addr.to_string(),
            route: route.config.name.clone(),
            scheme: peer.scheme.to_string(),
            tls_server_name: peer.tls_server_name.clone(),
            upstreams: route.config.upstreams.clone(),
        };
        let mut store = self.store(plugin, route, stub);
        let classify = |e: wasmtime::Error| {
            if e.is::<DeadlineHit>() {
                CallFailure::Deadline(deadline)
            } else {
                CallFailure::Trap(format!("{e:#}"))
            }
        };
        let instance = plugin
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| CallFailure::Instantiate(format!("{e:#}")))?;
        let outcome = instance
            .call_on_upgrade(&mut store, &wit_peer, &req.into())
            .await
            .map_err(classify)?;
        let table = &mut store.data_mut().table;
        let mut take = |res| {
            table
                .delete(res)
                .map_err(|e| CallFailure::BadOutcome(format!("exchange handle: {e}")))
        };
        Ok(match outcome {
            Outcome::Tunnel(t) => Decision::Tunnel {
                exchange: take(t.exchange)?,
                client_head: t.client_head.map(Into::into),
            },
            Outcome::Relay(ex) => Decision::Relay(take(ex)?),
            Outcome::Respond(r) => Decision::Respond(r.head.into(), r.body),
        })
    }
}

fn content_hash(bytes: &[u8]) -> String {
    use sha1::Digest;
    let digest = sha1::Sha1::digest(bytes);
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}
