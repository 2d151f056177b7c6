//! `upgate-bench`: upgate, nginx and haproxy side by side in front of one WebSocket echo
//! backend, on 127.0.0.1, in interleaved rounds; prints one table of medians with upgate's
//! ratio to the best peer. Run it with `scripts/bench` (installs the peers, raises the open
//! file limit, builds in release). See README "Benchmark".

mod backend;
mod client;
mod load;
mod meta;
mod procs;
mod report;
mod rss;
mod targets;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use load::{Measured, Target};
use procs::find_program;
use report::{Metric, Results};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use targets::{start_backend, start_target};

#[derive(Parser)]
#[command(about = "upgate vs nginx vs haproxy over one WebSocket echo backend")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

// Parsed once per process: the size of the `Run` variant costs nothing worth a `Box`.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Cmd {
    /// Run the benchmark (what scripts/bench does).
    Run(RunArgs),
    /// The echo backend alone (the benchmark starts it as a child process).
    Backend {
        #[arg(long)]
        listen: SocketAddr,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Smoke test: one short round, 200 and 1000 idle tunnels.
    #[arg(long)]
    quick: bool,
    /// Rounds (each runs every test on every target, in a rotating order) [default: 5; quick: 1].
    #[arg(long)]
    rounds: Option<usize>,
    /// Seconds each test runs on each target in each round [default: 2; quick: 0.5].
    #[arg(long)]
    secs: Option<f64>,
    /// Idle tunnel counts for the RSS figures, ascending [default: 1000,5000; quick: 200,1000].
    #[arg(long, value_delimiter = ',')]
    tunnels: Option<Vec<usize>>,
    /// Tests to run (for profiling one path): handshake, echo64, echo16k, rtt, http, rss.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "handshake,echo64,echo16k,rtt,http,rss"
    )]
    tests: Vec<String>,
    /// Targets, in column order: direct, upgate, upgate-b (see --upgate-b), nginx, nginx-64k
    /// (the canonical config plus `proxy_buffer_size 64k`), haproxy.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "direct,upgate,nginx,nginx-64k,haproxy"
    )]
    targets: Vec<String>,
    /// Also write the table (markdown) to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The upgate binary.
    #[arg(long, default_value = "target/release/upgate")]
    upgate: PathBuf,
    /// A second upgate binary, measured as target `upgate-b` in the same interleaved rounds
    /// (A/B of a change on this noisy machine: `--targets upgate,upgate-b --upgate-b OLD`).
    #[arg(long)]
    upgate_b: Option<PathBuf>,
    /// Run upgate with proxy keepalive on its route at this interval (e.g. `30s`); default off.
    #[arg(long)]
    upgate_keepalive: Option<String>,
    /// upgate's worker threads: 1, as the peers run (nginx `worker_processes 1`, haproxy
    /// `nbthread 1`); `default` passes nothing (one per CPU, and binaries older than the
    /// `--workers` flag).
    #[arg(long, default_value = "1", value_parser = parse_workers)]
    upgate_workers: String,
    /// `--upgate-workers` for target `upgate-b` (default: the same).
    #[arg(long, value_parser = parse_workers)]
    upgate_b_workers: Option<String>,
    /// RUST_LOG for upgate (the peers log nothing per request either).
    #[arg(long, default_value = "warn")]
    upgate_log: String,
    #[arg(long, default_value = "nginx")]
    nginx: String,
    #[arg(long, default_value = "haproxy")]
    haproxy: String,
    /// HTTP load generator; the in-repo client is used when it is not installed.
    #[arg(long, default_value = "wrk")]
    wrk: String,
    /// Use the in-repo HTTP client even if wrk is installed.
    #[arg(long)]
    no_wrk: bool,
}

const HANDSHAKE_CONC: usize = 32;
const SMALL: (usize, usize) = (50, 64); // connections, bytes
const LARGE: (usize, usize) = (10, 16 * 1024);
const HTTP_CONNS: usize = 50;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Backend { listen } => backend::main(listen),
        Cmd::Run(args) => run(args),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("upgate-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Everything the run needs, resolved up front.
pub(crate) struct Plan {
    rounds: usize,
    dur: Duration,
    tunnels: Vec<usize>,
    targets: Vec<String>,
    wrk: Option<PathBuf>,
    load_start: String,
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut tunnels = args.tunnels.clone().unwrap_or(if args.quick {
        vec![200, 1000]
    } else {
        vec![1000, 5000]
    });
    tunnels.sort_unstable();
    tunnels.dedup();
    let known_tests = ["handshake", "echo64", "echo16k", "rtt", "http", "rss"];
    if let Some(t) = args
        .tests
        .iter()
        .find(|t| !known_tests.contains(&t.as_str()))
    {
        bail!("unknown test `{t}` (known: {})", known_tests.join(", "));
    }
    if !args.tests.iter().any(|t| t == "rss") {
        tunnels.clear();
    }
    let known = [
        "direct",
        "upgate",
        "upgate-b",
        "nginx",
        "nginx-64k",
        "haproxy",
    ];
    if args.targets.iter().any(|t| t == "upgate-b") && args.upgate_b.is_none() {
        bail!("target `upgate-b` needs --upgate-b PATH (a second upgate binary to compare)");
    }
    for t in &args.targets {
        if !known.contains(&t.as_str()) {
            bail!("unknown target `{t}` (known: {})", known.join(", "));
        }
    }
    let wrk = if args.no_wrk {
        None
    } else {
        find_program(&args.wrk)
    };
    let plan = Plan {
        rounds: args.rounds.unwrap_or(if args.quick { 1 } else { 5 }).max(1),
        dur: Duration::from_secs_f64(args.secs.unwrap_or(if args.quick { 0.5 } else { 2.0 })),
        tunnels,
        targets: args.targets.clone(),
        wrk,
        load_start: meta::loadavg(),
    };

    // 5k tunnels: 5k fds here, 10k in the proxy (children inherit this limit).
    let most = plan.tunnels.last().copied().unwrap_or(0);
    let need = 2 * most as u64 + 256;
    match procs::nofile_limit() {
        Some(n) if n < need => bail!(
            "the open-file limit is {n}, and {most} tunnels need {need} in the proxy: raise it \
             with `ulimit -n $(ulimit -Hn)` (scripts/bench does) or pass fewer --tunnels"
        ),
        _ => {}
    }

    let tmp = std::env::temp_dir().join(format!("upgate-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(bench(&args, &plan, &tmp, started));
    drop(rt);
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&tmp);
    } else {
        eprintln!("upgate-bench: logs kept in {}", tmp.display());
    }
    result
}

async fn bench(args: &RunArgs, plan: &Plan, tmp: &Path, started: Instant) -> anyhow::Result<()> {
    let (mut backend, backend_addr) = start_backend(tmp)?;
    eprintln!("backend (pid {}) on {backend_addr}", backend.pid());
    let mut targets = Vec::new();
    for name in &plan.targets {
        let t = start_target(name, args, backend_addr, tmp).await?;
        eprintln!(
            "{name} on {}{}",
            t.addr,
            t.proc
                .as_ref()
                .map(|p| format!(" (pid {})", p.pid()))
                .unwrap_or_default()
        );
        targets.push(t);
    }
    let mut results = Results::new(&plan.targets, &plan.tunnels);

    // Warm-up (not recorded): connections, handshakes and echoes through every target.
    for t in &targets {
        let _ = load::handshakes(t, HANDSHAKE_CONC, Duration::from_millis(300)).await;
        let _ = load::echo(t, SMALL.0, SMALL.1, Duration::from_millis(300)).await;
        t.settle();
    }

    // RSS per idle tunnel, once per proxy, from the warm state (later tests would leave freed
    // memory in the allocators and hide what tunnels cost).
    for t in targets.iter().filter(|t| t.proc.is_some()) {
        rss::measure(t, plan, &mut results).await;
    }

    for round in 0..plan.rounds {
        let n = targets.len();
        let order: Vec<&Target> = (0..n).map(|i| &targets[(i + round) % n]).collect();
        eprintln!("round {}/{}", round + 1, plan.rounds);
        results.set_round(round);
        let tests = ["handshake", "echo64", "echo16k", "rtt", "http"]
            .into_iter()
            .filter(|t| args.tests.iter().any(|a| a == t));
        for test in tests {
            for t in &order {
                t.settle();
                let mut m = match test {
                    "handshake" => load::handshakes(t, HANDSHAKE_CONC, plan.dur).await,
                    "echo64" => load::echo(t, SMALL.0, SMALL.1, plan.dur).await,
                    "echo16k" => load::echo(t, LARGE.0, LARGE.1, plan.dur).await,
                    "rtt" => load::echo(t, 1, 64, plan.dur).await,
                    _ => match &plan.wrk {
                        Some(wrk) => load::http_wrk(wrk, t, HTTP_CONNS, plan.dur),
                        None => load::http_builtin(t, HTTP_CONNS, plan.dur).await,
                    },
                };
                record(&mut results, &t.name, test, &mut m);
            }
        }
    }
    backend.settle();

    let meta = meta::Meta::collect(args, plan, started.elapsed());
    let table = results.render(&meta);
    println!("{table}");
    if let Some(out) = &args.out {
        std::fs::write(out, &table).with_context(|| format!("writing {}", out.display()))?;
        eprintln!("table written to {}", out.display());
    }
    for t in &mut targets {
        if let Some(p) = &mut t.proc {
            if results.had_errors(&t.name) {
                eprintln!("{}'s output (it had failures):\n{}", t.name, p.output());
            }
            p.stop();
        }
    }
    backend.stop();
    Ok(())
}

fn record(results: &mut Results, target: &str, test: &str, m: &mut Measured) {
    let p50 = m.pct_us(if test == "http" { 0.0 } else { 0.5 });
    let p99 = m.pct_us(if test == "http" { 1.0 } else { 0.99 });
    let cpu = m.cpu_per_op_us();
    let (rate, rate_metric, p50m, p99m, cpum) = match test {
        "handshake" => (m.rate(), Metric::HsRate, None, None, Metric::HsCpu),
        "echo64" => (
            m.rate(),
            Metric::SmallRate,
            Some(Metric::SmallP50),
            Some(Metric::SmallP99),
            Metric::SmallCpu,
        ),
        "echo16k" => (
            m.rate() * LARGE.1 as f64 / 1e6,
            Metric::LargeRate,
            Some(Metric::LargeP50),
            Some(Metric::LargeP99),
            Metric::LargeCpu,
        ),
        "rtt" => (
            m.rate(),
            Metric::RttRate,
            Some(Metric::RttP50),
            Some(Metric::RttP99),
            Metric::RttCpu,
        ),
        _ => (m.rate(), Metric::HttpRate, None, None, Metric::HttpCpu),
    };
    if m.ops > 0 {
        results.add(rate_metric, target, rate);
        if let (Some(k), Some(v)) = (p50m, p50) {
            results.add(k, target, v);
        }
        if let (Some(k), Some(v)) = (p99m, p99) {
            results.add(k, target, v);
        }
        if let Some(c) = cpu {
            results.add(cpum, target, c);
        }
    }
    if m.errors > 0 {
        results.error(
            target,
            test,
            m.errors,
            m.first_error.clone().unwrap_or_default(),
        );
    }
    eprintln!(
        "  {test:<9} {target:<10} {:>10.0}/s  p50 {:>8}  p99 {:>8}  cpu/op {:>8}{}",
        m.rate(),
        p50.map_or("-".into(), |v| format!("{v:.0} µs")),
        p99.map_or("-".into(), |v| format!("{v:.0} µs")),
        cpu.map_or("-".into(), |v| format!("{v:.1} µs")),
        if m.errors > 0 {
            format!(
                "  errors {} ({})",
                m.errors,
                m.first_error.as_deref().unwrap_or("")
            )
        } else {
            String::new()
        }
    );
}

/// A worker count for upgate's `--workers`, or `default` (pass nothing).
fn parse_workers(s: &str) -> Result<String, String> {
    match s.parse::<u16>() {
        Ok(n) if n >= 1 => Ok(s.to_string()),
        _ if s == "default" => Ok(s.to_string()),
        _ => Err(format!(
            "`{s}`: a number of workers (1 or more) or `default`"
        )),
    }
}
