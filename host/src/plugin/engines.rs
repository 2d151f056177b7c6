//! The plugin runtime's two wasmtime engines and the epoch ticker they share
//! (see `ticker.rs`).
//!
//! Both have epoch interruption and a pooling allocator; they differ only in
//! how a pooled linear memory is made fresh again when an instance is dropped,
//! which is a fixed cost of every upgrade (a fresh instance serves each one):
//!
//! - [`Reset::Memset`], for plugins whose initial memory is one wasm page
//!   (what the SDK's recommended 32 KiB stack gives): the first
//!   [`MEMSET_RESIDENT`] bytes are reset with `memset`, without a system call.
//! - [`Reset::PageScan`], for every other plugin: a `PAGEMAP_SCAN` ioctl finds
//!   the pages the instance wrote, and only those are reset.
//!
//! Measured with the plugin-overhead bench: for a one-page memory the ioctl
//! costs about 1.3 µs more per instance than the `memset`; for a three-page
//! memory a `memset` of all of it costs as much as the ioctl, and beyond that
//! it costs more. One engine cannot do both (the choice is engine-wide), so a
//! component is compiled for the engine its initial memory size picks.

use std::time::Duration;
use wasmtime::component::{Component, Linker};
use wasmtime::{Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::bindings;
use super::state::CallState;
use super::ticker::{Ticker, Ticking, IDLE_TICKS};
use crate::config::MAX_PLUGIN_MEMORY;

/// How often the epoch advances; the granularity of deadlines and of yielding.
pub(super) const EPOCH_TICK: Duration = Duration::from_millis(1);
/// Plugin instances alive at once, per engine (pool size).
const POOL_INSTANCES: u32 = 1000;
/// Bytes of a pooled memory the page-scan engine resets in place (only the
/// pages written) rather than returning to the OS.
const SCAN_RESIDENT: usize = 1 << 20;
/// Bytes of a pooled memory the memset engine resets in place: two wasm pages,
/// so a one-page plugin that grows once still never faults its pages back in.
const MEMSET_RESIDENT: usize = 128 << 10;
/// Freed pool slots kept warm (wasmtime's default is 100), split over the
/// pool's shards (one per CPU, at most 16; a thread allocates from its own). While a shard
/// has fewer warm slots than its share, an allocation that finds no free slot
/// affine to its module there takes a cold slot rather than reusing a warm
/// one, so more slots end up resident (in full, for a memory reset with
/// `memset`). Each worker thread runs its plugin calls in one shard, so the
/// slots a worker uses stay close to the calls it has in flight at once
/// (docs/performance.md: RSS per idle tunnel).
const WARM_SLOTS: u32 = 16;
/// The largest initial memory (in wasm pages) that picks the memset engine.
const MEMSET_MAX_PAGES: u64 = 1;

/// How an engine resets a pooled memory for the next instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reset {
    /// `memset` of the first [`MEMSET_RESIDENT`] bytes.
    Memset,
    /// `PAGEMAP_SCAN` for the written pages (where the kernel has it).
    PageScan,
}

/// One engine and the linker of the plugin world on it.
pub(super) struct Flavor {
    pub(super) engine: Engine,
    pub(super) linker: Linker<CallState>,
    /// How its pool resets a memory, for logs: `"memset"` or `"page-scan"`.
    pub(super) reset: &'static str,
}

/// Both engines, and the thread that advances their epochs.
pub(super) struct Engines {
    memset: Flavor,
    page_scan: Flavor,
    ticker: Ticker,
}

impl Engines {
    /// Configures both engines and starts the thread that advances their epochs.
    pub(super) fn new() -> wasmtime::Result<Engines> {
        let (memset, page_scan) = (flavor(Reset::Memset)?, flavor(Reset::PageScan)?);
        let weak = [memset.engine.weak(), page_scan.engine.weak()];
        let ticker = Ticker::start(EPOCH_TICK, IDLE_TICKS, move || {
            weak.iter().all(|engine| match engine.upgrade() {
                Some(engine) => {
                    engine.increment_epoch();
                    true
                }
                None => false,
            })
        })?;
        Ok(Engines {
            memset,
            page_scan,
            ticker,
        })
    }

    /// Keeps the epochs advancing while the returned guard lives: take it
    /// before running any wasm.
    pub(super) fn enter(&self) -> Ticking<'_> {
        self.ticker.enter()
    }

    /// Compiles `bytes` for the engine its initial memory size picks (read
    /// from the binary first, so the component is compiled once).
    pub(super) fn compile(&self, bytes: &[u8]) -> wasmtime::Result<Component> {
        let small = initial_pages(bytes).is_some_and(|pages| pages <= MEMSET_MAX_PAGES);
        let flavor = if small { &self.memset } else { &self.page_scan };
        Component::from_binary(&flavor.engine, bytes)
    }

    /// The engine `component` was compiled for.
    pub(super) fn of(&self, component: &Component) -> &Flavor {
        if Engine::same(component.engine(), &self.memset.engine) {
            &self.memset
        } else {
            &self.page_scan
        }
    }
}

/// The largest initial size, in wasm pages, of the memories the core modules
/// of `bytes` define; `None` if it does not parse (compiling will say why).
fn initial_pages(bytes: &[u8]) -> Option<u64> {
    let mut pages = 0;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        if let wasmparser::Payload::MemorySection(memories) = payload.ok()? {
            for memory in memories {
                pages = pages.max(memory.ok()?.initial);
            }
        }
    }
    Some(pages)
}

fn flavor(reset: Reset) -> wasmtime::Result<Flavor> {
    let (resident, scan, name) = match reset {
        Reset::Memset => (MEMSET_RESIDENT, Enabled::No, "memset"),
        Reset::PageScan => (SCAN_RESIDENT, Enabled::Auto, "page-scan"),
    };
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(POOL_INSTANCES)
        .total_core_instances(POOL_INSTANCES * 4)
        .total_memories(POOL_INSTANCES * 2)
        .total_tables(POOL_INSTANCES * 4)
        .total_stacks(POOL_INSTANCES)
        .max_memory_size(MAX_PLUGIN_MEMORY)
        .linear_memory_keep_resident(resident)
        .table_keep_resident(resident)
        .pagemap_scan(scan)
        .max_unused_warm_slots(WARM_SLOTS);
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
    Ok(Flavor {
        engine,
        linker,
        reset: name,
    })
}
