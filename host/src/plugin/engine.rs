//! The plugin runtime's wasmtime engine (epoch interruption, pooling allocator),
//! the linker of the plugin world on it, and the epoch ticker (see `ticker.rs`).
//!
//! A fresh instance serves each upgrade, so returning one to the pool is a
//! fixed cost of every upgrade. Its linear memory is reset with
//! `PAGEMAP_SCAN` (kernel 6.7+): the kernel reports the pages the instance
//! wrote and only those are reset, so a pooled memory stays resident only in
//! the pages plugins actually use. A `memset` reset of a one-page memory is
//! about 1.3 µs cheaper per instance, but it makes every pool slot ever used
//! resident in full, which showed in RSS per idle tunnel (see
//! docs/performance.md), so it is not used.

use std::time::Duration;
use wasmtime::component::Linker;
use wasmtime::{Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::bindings;
use super::state::CallState;
use super::ticker::{Ticker, Ticking, IDLE_TICKS};
use crate::config::MAX_PLUGIN_MEMORY;

/// How often the epoch advances; the granularity of deadlines and of yielding.
pub(super) const EPOCH_TICK: Duration = Duration::from_millis(1);
/// Plugin instances alive at once (pool size).
const POOL_INSTANCES: u32 = 1000;
/// Bytes of a pooled memory reset in place (only the pages written) rather
/// than returned to the OS.
const KEEP_RESIDENT: usize = 1 << 20;

/// The engine, its linker, and the thread that advances its epoch.
pub(super) struct PluginEngine {
    pub(super) engine: Engine,
    pub(super) linker: Linker<CallState>,
    ticker: Ticker,
}

impl PluginEngine {
    /// Configures the engine and starts the thread that advances its epoch.
    pub(super) fn new() -> wasmtime::Result<PluginEngine> {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(POOL_INSTANCES)
            .total_core_instances(POOL_INSTANCES * 4)
            .total_memories(POOL_INSTANCES * 2)
            .total_tables(POOL_INSTANCES * 4)
            .total_stacks(POOL_INSTANCES)
            .max_memory_size(MAX_PLUGIN_MEMORY)
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT)
            .pagemap_scan(Enabled::Auto);
        let mut cfg = wasmtime::Config::new();
        cfg.wasm_component_model(true)
            .epoch_interruption(true)
            .max_wasm_stack(512 << 10)
            .async_stack_size(1 << 20)
            .memory_reservation(MAX_PLUGIN_MEMORY as u64)
            .memory_guard_size(64 << 10)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&cfg)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        bindings::Plugin::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)?;
        let weak = engine.weak();
        let ticker = Ticker::start(EPOCH_TICK, IDLE_TICKS, move || match weak.upgrade() {
            Some(engine) => {
                engine.increment_epoch();
                true
            }
            None => false,
        })?;
        Ok(PluginEngine {
            engine,
            linker,
            ticker,
        })
    }

    /// Keeps the epoch advancing while the returned guard lives: take it
    /// before running any wasm.
    pub(super) fn enter(&self) -> Ticking<'_> {
        self.ticker.enter()
    }
}
