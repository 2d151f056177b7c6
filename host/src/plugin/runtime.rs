//! The plugin runtime: loading plugins (compiled for one of the two engines of
//! [`super::engines`], cached by content hash), and one hook call per fresh
//! instance, held to the route's [`PluginLimits`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use wasmtime::component::Component;
use wasmtime::{Store, UpdateDeadline};

use super::bindings::{self, Outcome, Peer};
use super::engines::{Engines, EPOCH_TICK};
use super::exports::Exports;
use super::state::{CallState, MemoryLimiter};
use super::{
    CallFailure, Decision, FailureCounts, LoadError, LoadedPlugin, PeerInfo, PASSTHROUGH_WASM,
};
use crate::config::PluginLimits;
use crate::exchange::StubUpstream;
use crate::router::Route;
use crate::wire;

/// Budget of an `on-load` call (settings checks may parse more than a request does).
const LOAD_DEADLINE: Duration = Duration::from_secs(1);
/// The target that emits plugin components directly.
const WASM_TARGET: &str = "wasm32-wasip2";
/// Compiled components kept, by content hash (cleared when full).
const CACHE_ENTRIES: usize = 64;

/// The deadline trap's payload, so a deadline is told apart from other traps.
#[derive(Debug)]
struct DeadlineHit;

impl std::fmt::Display for DeadlineHit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("plugin deadline exceeded")
    }
}

impl std::error::Error for DeadlineHit {}

/// The engines, their linkers and a cache of compiled components, shared process-wide.
pub struct PluginRuntime {
    engines: Engines,
    compiled: Mutex<HashMap<String, Component>>,
    passthrough: OnceLock<Result<LoadedPlugin, String>>,
    /// Failures by kind since start.
    pub failures: FailureCounts,
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
        Ok(PluginRuntime {
            engines: Engines::new()?,
            compiled: Mutex::new(HashMap::new()),
            passthrough: OnceLock::new(),
            failures: FailureCounts::default(),
        })
    }

    /// The built-in pass-through plugin (compiled once).
    pub fn passthrough(&self) -> Result<LoadedPlugin, String> {
        self.passthrough
            .get_or_init(|| {
                self.load("passthrough", PASSTHROUGH_WASM)
                    .map_err(|e| e.to_string())
            })
            .clone()
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
                return Err(invalid(format!(
                    "a core wasm module, not a component: build it with --target {WASM_TARGET}, \
                     or make a component of it (wasm-tools component new)"
                )))
            }
            _ => {
                return Err(invalid(
                    "not a WebAssembly component (bad magic number)".into(),
                ))
            }
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
                let c = self
                    .engines
                    .compile(bytes)
                    .map_err(|e| invalid(format!("{e:#}")))?;
                if let Ok(mut cache) = self.compiled.lock() {
                    if cache.len() >= CACHE_ENTRIES {
                        cache.clear();
                    }
                    cache.insert(hash.clone(), c.clone());
                }
                c
            }
        };
        let flavor = self.engines.of(&component);
        let pre = flavor
            .linker
            .instantiate_pre(&component)
            .map_err(|e| invalid(format!("{e:#}")))?;
        let exports = Exports::new(&pre).map_err(invalid)?;
        Ok(LoadedPlugin {
            name: name.into(),
            hash,
            pre,
            exports,
            reset: flavor.reset,
        })
    }

    fn store(
        &self,
        plugin: &LoadedPlugin,
        route: Arc<Route>,
        stub: Option<StubUpstream>,
        deadline: Duration,
    ) -> Store<CallState> {
        let limits: PluginLimits = route.config.limits;
        let state = CallState::new(
            route,
            plugin.name.clone(),
            MemoryLimiter::new(limits.memory),
            stub,
            EPOCH_TICK,
        );
        let mut store = Store::new(plugin.pre.engine(), state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |ctx| {
            // A poll that began less than a tick ago (typically the call resuming
            // after its upstream exchange) is not holding the worker: no yield,
            // and no CPU-clock system calls.
            if ctx.data().fresh_poll_bound().is_some_and(|b| b < deadline) {
                return Ok(UpdateDeadline::Continue(1));
            }
            if ctx.data().busy() > deadline {
                Err(wasmtime::Error::new(DeadlineHit))
            } else {
                // tokio's yield_now puts the task at the back of the run queue
                // (a plain self-wake would land in the LIFO slot and run again
                // at once), so a busy plugin lets every ready task go first.
                Ok(UpdateDeadline::YieldCustom(
                    1,
                    Box::pin(tokio::task::yield_now()),
                ))
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
        let deadline = route.config.limits.deadline.max(LOAD_DEADLINE);
        let _ticking = self.engines.enter();
        let mut store = self.store(plugin, route, None, deadline);
        let meter = store.data().meter.clone();
        let run = async {
            let instance = plugin.pre.instantiate_async(&mut store).await?;
            let on_load = plugin.exports.on_load(&mut store, &instance)?;
            Ok::<_, wasmtime::Error>(on_load.call_async(&mut store, ()).await?.0)
        };
        meter
            .measure(run)
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
        let limits = route.config.limits;
        let wit_peer = Peer {
            client_addr: crate::headers::socket_text(peer.client_addr),
            route: route.config.name.clone(),
            scheme: peer.scheme.to_string(),
            tls_server_name: peer.tls_server_name.clone(),
            upstreams: route.config.upstreams.clone(),
        };
        let _ticking = self.engines.enter();
        let mut store = self.store(plugin, route, stub, limits.deadline);
        let meter = store.data().meter.clone();
        // Start-up code runs under the same limits as the hook, so a failure in
        // either is classified the same way.
        let classify =
            |store: &Store<CallState>, e: wasmtime::Error, other: fn(String) -> CallFailure| {
                if store.data().limiter.hit() {
                    CallFailure::Memory(limits.memory)
                } else if e.is::<DeadlineHit>() {
                    CallFailure::Deadline(limits.deadline)
                } else {
                    other(format!("{e:#}"))
                }
            };
        // Instantiation and the call are measured as one future.
        let req = (&req).into();
        let run = async {
            let instance = plugin
                .pre
                .instantiate_async(&mut store)
                .await
                .map_err(|e| (e, CallFailure::Instantiate as fn(String) -> CallFailure))?;
            let trap = |e| (e, CallFailure::Trap as fn(String) -> CallFailure);
            let on_upgrade = plugin
                .exports
                .on_upgrade(&mut store, &instance)
                .map_err(trap)?;
            let (outcome,) = on_upgrade
                .call_async(&mut store, (&wit_peer, &req))
                .await
                .map_err(trap)?;
            Ok(outcome)
        };
        let outcome = match meter.measure(run).await {
            Ok(o) => o,
            Err((e, other)) => return Err(classify(&store, e, other)),
        };
        let table = &mut store.data_mut().table;
        let mut take = |res| {
            table
                .delete(res)
                .map_err(|e| CallFailure::BadOutcome(format!("exchange handle: {e}")))
        };
        let head = |h: bindings::ResponseHead| {
            wire::ResponseHead::try_from(h).map_err(CallFailure::BadOutcome)
        };
        Ok(match outcome {
            Outcome::Tunnel(t) => Decision::Tunnel {
                exchange: take(t.exchange)?,
                client_head: t.client_head.map(head).transpose()?,
            },
            Outcome::Relay(ex) => Decision::Relay(take(ex)?),
            Outcome::Respond(r) => {
                let head = head(r.head)?;
                let size = r.body.len()
                    + head
                        .headers
                        .iter()
                        .map(|h| h.name.len() + h.value.len())
                        .sum::<usize>();
                if size > limits.output {
                    return Err(CallFailure::BadOutcome(format!(
                        "response of {size} bytes is over the {} byte limit",
                        limits.output
                    )));
                }
                Decision::Respond(head, r.body)
            }
        })
    }
}

fn content_hash(bytes: &[u8]) -> String {
    use sha1::Digest;
    let digest = sha1::Sha1::digest(bytes);
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}
