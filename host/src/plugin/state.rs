//! What one plugin call's `Store` holds, and the host imports the plugin calls
//! through it: `upstream.send` (the plugin as client of the upstream upgrade),
//! the `exchange` resource, `log` and `config`.

use std::sync::Arc;
use std::time::Duration;

use super::meter::Meter;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime::ResourceLimiter;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::bindings::upgate::plugin::{config, decision, log, types, upstream};
use super::bindings::{Level, RequestHead, ResponseHead, UpstreamError};
use crate::exchange::{self, Exchange, ExchangeError, StubUpstream};
use crate::router::Route;
use crate::upstream::ConnectError;
use crate::wire;

/// Store data of one plugin call.
pub struct CallState {
    /// Deny-all WASI context: only what Rust's std for wasm32-wasip2 needs to
    /// start. Built on the first WASI call, so plugins that import no WASI
    /// (built for wasm32-unknown-unknown) never pay for it.
    wasi: Option<WasiCtx>,
    /// Exchanges handed to the plugin, as resources.
    pub table: ResourceTable,
    /// Memory cap, remembering whether the plugin hit it.
    pub limiter: MemoryLimiter,
    /// The route this call serves (its upstreams, timeouts, settings).
    route: Arc<Route>,
    /// Plugin name for log lines.
    plugin: Arc<str>,
    /// Time spent running the call, for the deadline.
    pub meter: Arc<Meter>,
    /// Exchanges opened so far by this call.
    exchanges: u32,
    /// Answers exchanges without the network (benchmarks).
    stub: Option<StubUpstream>,
}

/// Caps a plugin's memory (and tables) and remembers a refused growth, so the
/// trap that follows (Rust aborts on allocation failure) is reported as `memory`.
pub struct MemoryLimiter {
    max: usize,
    hit: bool,
}

impl MemoryLimiter {
    /// A limiter allowing `max` bytes of linear memory.
    pub fn new(max: usize) -> Self {
        MemoryLimiter { max, hit: false }
    }

    /// Whether a growth was refused.
    pub fn hit(&self) -> bool {
        self.hit
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = desired <= self.max;
        self.hit |= !ok;
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

impl CallState {
    /// Fresh state for a call on `route` by `plugin`, whose epoch callback
    /// runs every `tick`.
    pub fn new(
        route: Arc<Route>,
        plugin: Arc<str>,
        limiter: MemoryLimiter,
        stub: Option<StubUpstream>,
        tick: Duration,
    ) -> Self {
        CallState {
            wasi: None,
            table: ResourceTable::new(),
            limiter,
            route,
            plugin,
            meter: Meter::new(tick),
            exchanges: 0,
            stub,
        }
    }

    /// Time the call has spent running (suspensions excluded: see [`Meter`]).
    pub fn busy(&self) -> Duration {
        self.meter.busy()
    }

    /// See [`Meter::fresh_poll_bound`].
    pub fn fresh_poll_bound(&self) -> Option<Duration> {
        self.meter.fresh_poll_bound()
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let ctx = self.wasi.get_or_insert_with(|| {
            WasiCtx::builder()
                .allow_tcp(false)
                .allow_udp(false)
                .allow_ip_name_lookup(false)
                .build()
        });
        WasiCtxView {
            ctx,
            table: &mut self.table,
        }
    }
}

impl types::Host for CallState {}

impl decision::Host for CallState {}

impl upstream::Host for CallState {
    async fn send(
        &mut self,
        name: String,
        req: RequestHead,
    ) -> wasmtime::Result<Result<Resource<Exchange>, UpstreamError>> {
        if self.exchanges >= self.route.config.limits.exchanges {
            return Ok(Err(UpstreamError::LimitReached));
        }
        let Some(up) = self.route.upstream(&name) else {
            return Ok(Err(UpstreamError::UnknownUpstream(name)));
        };
        self.exchanges += 1;
        let req = match wire::RequestHead::try_from(req) {
            Ok(req) => req,
            Err(reason) => return Ok(Err(UpstreamError::InvalidRequest(reason))),
        };
        if let Some(stub) = &self.stub {
            let ex = exchange::stubbed(up, req, stub);
            return Ok(Ok(self.table.push(ex)?));
        }
        let up = up.clone();
        let result = exchange::send(&up, req, self.route.config.response_timeout).await;
        Ok(match result {
            Ok(ex) => Ok(self.table.push(ex)?),
            Err(e) => {
                tracing::debug!(plugin = %self.plugin, route = %self.route.config.name, error = %e, "plugin exchange failed");
                Err(match e {
                    ExchangeError::Connect(ConnectError::TimedOut { .. }) => UpstreamError::Timeout,
                    ExchangeError::Connect(e) => UpstreamError::ConnectFailed(e.to_string()),
                    ExchangeError::InvalidRequest(r) => UpstreamError::InvalidRequest(r),
                    ExchangeError::Timeout(_) => UpstreamError::Timeout,
                    ExchangeError::BadResponse { reason, .. } => UpstreamError::BadResponse(reason),
                })
            }
        })
    }
}

impl upstream::HostExchange for CallState {
    fn status(&mut self, ex: Resource<Exchange>) -> wasmtime::Result<u16> {
        Ok(self.table.get(&ex)?.response.status)
    }

    fn response(&mut self, ex: Resource<Exchange>) -> wasmtime::Result<ResponseHead> {
        Ok((&self.table.get(&ex)?.response).into())
    }

    fn request(&mut self, ex: Resource<Exchange>) -> wasmtime::Result<RequestHead> {
        Ok((&self.table.get(&ex)?.request).into())
    }

    fn drop(&mut self, ex: Resource<Exchange>) -> wasmtime::Result<()> {
        self.table.delete(ex)?;
        Ok(())
    }
}

impl log::Host for CallState {
    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let (plugin, route) = (&*self.plugin, &self.route.config.name);
        match level {
            Level::Trace => tracing::trace!(target: "upgate::plugin", plugin, route, "{message}"),
            Level::Debug => tracing::debug!(target: "upgate::plugin", plugin, route, "{message}"),
            Level::Info => tracing::info!(target: "upgate::plugin", plugin, route, "{message}"),
            Level::Warn => tracing::warn!(target: "upgate::plugin", plugin, route, "{message}"),
            Level::Error => tracing::error!(target: "upgate::plugin", plugin, route, "{message}"),
        }
        Ok(())
    }
}

impl config::Host for CallState {
    fn get(&mut self) -> wasmtime::Result<String> {
        Ok(self.route.config.plugin_config.clone())
    }
}
