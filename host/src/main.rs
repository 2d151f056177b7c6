//! The `upgate` binary: parses the command line, sets up logging, loads the
//! config (a file, quick-mode flags, or the built-in demo) and runs the proxy.

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use upgate::{Config, Proxy};

/// mimalloc keeps allocations of one size class together: a proxy that frees
/// each connection's handshake state (~8 KiB) while its small tunnel state
/// (~2 KiB) lives on would otherwise fragment glibc's heap, and idle tunnels
/// would cost several times their live size in RSS (docs/performance.md).
/// Version 2 of mimalloc (feature `v2`): with version 3, plain HTTP proxying
/// cost about 15 % more CPU per request than with glibc.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A programmable reverse proxy for WebSocket and other HTTP/1.1 Upgrade traffic.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Config file (TOML). Without it and without --upstream: ./upgate.toml if present, else the demo.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Quick mode: address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Quick mode: the upstream (host:port) every request goes to.
    #[arg(long)]
    upstream: Option<String>,
    /// Quick mode: the plugin (.wasm component) deciding upgrades; default: pass-through.
    #[arg(long, requires = "upstream")]
    plugin: Option<PathBuf>,
    /// Quick mode: the plugin's settings string (TOML).
    #[arg(long, requires = "upstream")]
    plugin_config: Option<String>,
    /// Quick mode: worker threads (default: one per CPU).
    #[arg(long, requires = "upstream", value_parser = clap::value_parser!(u16).range(1..=upgate::workers::MAX_WORKERS as i64))]
    workers: Option<u16>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a config file and load its plugins, then exit (0: fine, 2: not).
    Check {
        /// Config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Start a WebSocket echo backend with a web page, and the proxy in front of it.
    Demo {
        /// Address the proxy listens on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let cli = Cli::parse();
    // The main thread is the first worker; `serve` starts the others (see
    // upgate::workers for why single-threaded runtimes).
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("upgate: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli))
}

/// Exit code 2 with the message: what a bad config or plugin gets.
fn refuse(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("upgate: {msg}");
    ExitCode::from(2)
}

async fn run(cli: Cli) -> ExitCode {
    let config = match (cli.command, cli.config, cli.upstream) {
        (Some(Command::Check { config }), _, _) => return check(&config).await,
        (Some(Command::Demo { listen }), _, _) => return demo(listen).await,
        (None, Some(path), _) => Config::load(&path),
        (None, None, Some(up)) => Config::quick(cli.listen, &up, cli.plugin, cli.plugin_config)
            .map(|mut c| {
                c.workers = cli.workers.map_or(c.workers, usize::from);
                c
            }),
        (None, None, None) if Path::new("upgate.toml").exists() => {
            Config::load(Path::new("upgate.toml"))
        }
        (None, None, None) => {
            tracing::info!(
                "no --config, no --upstream and no ./upgate.toml: running the built-in demo"
            );
            return demo(cli.listen).await;
        }
    };
    match config {
        Ok(config) => serve(config).await,
        Err(e) => refuse(e),
    }
}

async fn check(path: &Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => return refuse(e),
    };
    match upgate::server::load_routes(&config).await {
        Ok(router) => {
            println!(
                "{}: ok ({} listeners, {} upstreams, {} routes)",
                path.display(),
                config.listeners.len(),
                config.upstreams.len(),
                router.routes().len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => refuse(format!("{}: {e}", path.display())),
    }
}

async fn serve(config: Config) -> ExitCode {
    let source = config
        .source
        .as_ref()
        .map_or_else(|| "command line".to_string(), |p| p.display().to_string());
    let mut workers = vec![tokio::runtime::Handle::current()];
    match upgate::workers::spawn(config.workers.saturating_sub(1)) {
        Ok(more) => workers.extend(more),
        Err(e) => return refuse(format!("cannot start worker threads: {e}")),
    }
    let proxy = match Proxy::start_on(config, &workers).await {
        Ok(p) => p,
        Err(e) => return refuse(format!("{source}: {e}")),
    };
    reload_on_sighup(&proxy);
    proxy.run_until(shutdown_signal()).await;
    ExitCode::SUCCESS
}

/// SIGHUP re-reads the config file; a bad one is refused and logged, the running one stays.
fn reload_on_sighup(proxy: &Proxy) {
    #[cfg(unix)]
    {
        let reloader = proxy.reloader();
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("cannot listen for SIGHUP: reload by editing the config file instead");
            return;
        };
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading the config");
                if let Err(e) = reloader.reload_config().await {
                    tracing::warn!(reason = %e, "SIGHUP: nothing reloaded");
                }
            }
        });
    }
}

async fn demo(listen: SocketAddr) -> ExitCode {
    let backend = match upgate::demo::start_backend(SocketAddr::from(([127, 0, 0, 1], 0))).await {
        Ok(a) => a,
        Err(e) => return refuse(format!("cannot start the demo backend: {e}")),
    };
    let config = match Config::quick(listen, &backend.to_string(), None, None) {
        Ok(c) => c,
        Err(e) => return refuse(e),
    };
    let proxy = match Proxy::start(config).await {
        Ok(p) => p,
        Err(e) => return refuse(e),
    };
    let addr = proxy.local_addrs()[0];
    reload_on_sighup(&proxy);
    println!("upgate demo: open http://{addr}/ in a browser (WebSocket echo at ws://{addr}/echo); Ctrl-C stops");
    proxy.run_until(shutdown_signal()).await;
    ExitCode::SUCCESS
}

/// Completes on the first SIGTERM or SIGINT (Ctrl-C); a second one exits at once.
async fn shutdown_signal() {
    wait_signal().await;
    tracing::info!("shutting down: draining (a second signal exits at once)");
    tokio::spawn(async {
        wait_signal().await;
        tracing::warn!("second signal: exiting now");
        std::process::exit(130);
    });
}

async fn wait_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
