//! The RSS test: resident memory held per idle tunnel, at each tunnel count of
//! the plan, from a proxy warmed up at the concurrency the tunnels are opened with.

use std::time::Duration;

use crate::load::{self, Target};
use crate::report::{Metric, Results};
use crate::Plan;

/// Upgrades in flight while opening the idle tunnels.
const OPEN_CONC: usize = 64;

/// RSS held per idle tunnel, at each count in `plan.tunnels` (opened cumulatively, each
/// figure relative to the RSS before the first tunnel).
pub(crate) async fn measure(t: &Target, plan: &Plan, results: &mut Results) {
    let Some(p) = &t.proc else { return };
    // Warm up at the concurrency the tunnels are opened with: state that scales with
    // handshakes in flight (upgate's pooled plugin instances and their stacks, kept warm
    // for reuse) is a fixed cost of that concurrency, not a cost of holding tunnels.
    let (warm, _, _) = load::open(t.addr, 4 * OPEN_CONC, OPEN_CONC, 1024).await;
    drop(warm);
    tokio::time::sleep(Duration::from_millis(200)).await;
    p.settle();
    let before = p.rss_kib();
    let mut held = Vec::new();
    for &n in &plan.tunnels {
        let (more, errors, first) = load::open(t.addr, n - held.len(), OPEN_CONC, 1024).await;
        held.extend(more);
        if errors > 0 {
            let first = first.unwrap_or_default();
            eprintln!(
                "  rss       {:<10} {errors} failed upgrades ({first})",
                t.name
            );
            results.error(&t.name, "rss", errors, first);
        }
        if held.len() < n {
            eprintln!(
                "  rss       {:<10} only {} of {n} tunnels open",
                t.name,
                held.len()
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        p.settle();
        let now = p.rss_kib();
        let per = (now as f64 - before as f64) / n as f64;
        eprintln!(
            "  rss       {:<10} {n} tunnels: {before} → {now} KiB, {per:.2} KiB per tunnel",
            t.name
        );
        results.add(Metric::Rss(n), &t.name, per);
    }
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    p.settle();
}
