//! Plugin overhead: a fresh instance plus the `on-upgrade` call of the embedded
//! pass-through plugin, with the upstream exchange stubbed (no network), as the
//! host runs it for every upgrade. Prints median, p90 and p99 over many calls,
//! next to a baseline measured in the same run: a fresh instance plus the trivial
//! `on-load` call (what instantiation alone costs).
//!
//! Run: `cargo bench -p upgate --bench plugin_overhead` (target: median ≤ 10 µs).
//! Paths of other plugin components given after `--` are measured the same way,
//! interleaved with the rest, so builds of a plugin can be compared in one run.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use upgate::exchange::StubUpstream;
use upgate::plugin::{Decision, PeerInfo, PluginRuntime};
use upgate::wire::{Header, RequestHead, ResponseHead};
use upgate::Config;

/// The allocator the `upgate` binary uses (see host/src/main.rs), so the bench
/// measures what the proxy does.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

const WARMUP: usize = 2_000;
const SAMPLES: usize = 20_000;

fn header(name: &str, value: &str) -> Header {
    Header {
        name: name.into(),
        value: value.as_bytes().to_vec(),
    }
}

fn request() -> RequestHead {
    RequestHead {
        method: "GET".into(),
        target: "/chat?room=lobby".into(),
        headers: vec![
            header("Host", "app.example.com"),
            header(
                "User-Agent",
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
            ),
            header("Upgrade", "websocket"),
            header("Connection", "Upgrade"),
            header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            header("Sec-WebSocket-Version", "13"),
            header(
                "Sec-WebSocket-Extensions",
                "permessage-deflate; client_max_window_bits",
            ),
            header("Origin", "https://app.example.com"),
            header("Cookie", "session=0123456789abcdef0123456789abcdef"),
        ],
    }
}

fn stats(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1e6;
    (at(0.5), at(0.9), at(0.99))
}

async fn run() -> Result<(), String> {
    let listen: SocketAddr = ([127, 0, 0, 1], 0).into();
    let config = Config::quick(listen, "127.0.0.1:9", None, None).map_err(|e| e.to_string())?;
    let router = upgate::server::load_routes(&config)
        .await
        .map_err(|e| e.to_string())?;
    let route = router.routes()[0].clone();
    let runtime = PluginRuntime::global();
    let peer = PeerInfo {
        client_addr: ([127, 0, 0, 1], 40000).into(),
        scheme: "http",
        tls_server_name: None,
    };
    let stub: StubUpstream = Arc::new(|_req: &RequestHead| ResponseHead {
        status: 101,
        reason: "Switching Protocols".into(),
        headers: vec![
            header("Upgrade", "websocket"),
            header("Connection", "Upgrade"),
            header("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        ],
    });
    let req = request();
    let mut others = Vec::new();
    for path in std::env::args().skip(1).filter(|a| !a.starts_with('-')) {
        let bytes = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
        let plugin = runtime.load(&path, &bytes).map_err(|e| e.to_string())?;
        others.push((path, plugin, Vec::with_capacity(SAMPLES)));
    }

    let mut upgrade = Vec::with_capacity(SAMPLES);
    let mut baseline = Vec::with_capacity(SAMPLES);
    for i in 0..WARMUP + SAMPLES {
        for (_, plugin, times) in &mut others {
            let t = Instant::now();
            runtime
                .on_upgrade_stubbed(plugin, route.clone(), &peer, req.clone(), stub.clone())
                .await
                .map_err(|e| e.to_string())?;
            if i >= WARMUP {
                times.push(t.elapsed());
            }
        }
        let r = req.clone();
        let t = Instant::now();
        let decision = runtime
            .on_upgrade_stubbed(&route.plugin, route.clone(), &peer, r, stub.clone())
            .await
            .map_err(|e| e.to_string())?;
        let spent = t.elapsed();
        if !matches!(decision, Decision::Tunnel { .. }) {
            return Err(format!("pass-through did not tunnel a 101: {decision:?}"));
        }
        let t = Instant::now();
        runtime
            .check(&route.plugin, route.clone())
            .await
            .map_err(|e| e.to_string())?;
        let base = t.elapsed();
        if i >= WARMUP {
            upgrade.push(spent);
            baseline.push(base);
        }
    }
    let (u50, u90, u99) = stats(upgrade);
    let (b50, b90, b99) = stats(baseline);
    println!("plugin overhead, pass-through plugin, {SAMPLES} calls (after {WARMUP} warm-up)");
    println!("  fresh instance + on-upgrade (stubbed upstream): median {u50:6.2} µs  p90 {u90:6.2}  p99 {u99:6.2}");
    println!("  baseline: fresh instance + on-load          : median {b50:6.2} µs  p90 {b90:6.2}  p99 {b99:6.2}");
    println!("  ratio on-upgrade / baseline (median): {:.2}", u50 / b50);
    println!(
        "  target: median ≤ 10 µs → {}",
        if u50 <= 10.0 { "met" } else { "NOT met" }
    );
    for (path, _, times) in others {
        let (m50, m90, m99) = stats(times);
        println!("  {path}: fresh instance + on-upgrade: median {m50:6.2} µs  p90 {m90:6.2}  p99 {m99:6.2}");
    }
    Ok(())
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = rt.block_on(run()) {
        eprintln!("plugin_overhead: {e}");
        std::process::exit(1);
    }
}
