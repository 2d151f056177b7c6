//! The running proxy: loads every route's plugin (checking its settings), binds
//! the listeners and starts their accept loops ([`crate::listener`]), one per
//! worker ([`crate::workers`]). Tests start it with [`Proxy::start`] (on their
//! own runtime), the binary with [`Proxy::start_on`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::{Config, FailurePolicy, PluginSource};
use crate::http_proxy::HttpProxy;
use crate::listener::accept_loop;
use crate::plugin::{LoadError, LoadedPlugin, PluginRuntime, PASSTHROUGH_WASM};
use crate::reload::Reloader;
use crate::router::{Route, Router};
use crate::tunnels::Tunnels;

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A plugin file could not be read.
    #[error("routes[{route}].plugin: cannot read `{path}`: {reason}")]
    PluginRead {
        /// Route index.
        route: usize,
        /// File.
        path: String,
        /// OS error.
        reason: String,
    },
    /// A plugin is invalid or refused its settings.
    #[error("routes[{route}].plugin: {source}")]
    Plugin {
        /// Route index.
        route: usize,
        /// What the runtime said.
        source: LoadError,
    },
    /// A listener could not be bound.
    #[error("listeners[{index}].address: cannot listen on {addr}: {reason}")]
    Bind {
        /// Listener index.
        index: usize,
        /// Address.
        addr: SocketAddr,
        /// OS error.
        reason: String,
    },
}

/// What serves requests at one moment: routes with their plugins, the plain
/// HTTP client over the upstreams, and the config they came from. A reload
/// builds a new one and swaps it in whole; requests in flight keep theirs.
pub struct Snapshot {
    /// Routes and their loaded plugins.
    pub router: Router,
    /// Plain-HTTP client and its connection pools.
    pub http: HttpProxy,
    /// The config this snapshot was built from.
    pub config: Config,
    /// Counts swaps since start (0 = as started).
    pub generation: u64,
}

/// State every connection shares.
pub struct Shared {
    current: RwLock<Arc<Snapshot>>,
    /// The open tunnels, for drain.
    pub tunnels: Arc<Tunnels>,
    /// Connections accepted by each worker, in worker order (its length is
    /// the number of workers running, whatever the config now says).
    pub accepted: Vec<AtomicU64>,
}

impl Shared {
    /// The snapshot serving now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        match self.current.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Swaps in a snapshot built from the current one; returns its generation.
    pub fn swap(&self, build: impl FnOnce(&Snapshot) -> Snapshot) -> u64 {
        let mut guard = match self.current.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut next = build(&guard);
        next.generation = guard.generation + 1;
        let generation = next.generation;
        *guard = Arc::new(next);
        generation
    }
}

/// A running proxy.
pub struct Proxy {
    addrs: Vec<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    shared: Arc<Shared>,
    reloader: Arc<Reloader>,
}

/// Loads the plugins of `config`'s routes and checks each with its route's settings.
pub async fn load_routes(config: &Config) -> Result<Router, StartError> {
    let runtime = PluginRuntime::global();
    let mut loaded: HashMap<PluginSource, LoadedPlugin> = HashMap::new();
    let mut routes = Vec::new();
    for (i, rc) in config.routes.iter().enumerate() {
        let plugin = match loaded.get(&rc.plugin) {
            Some(p) => p.clone(),
            None => {
                let (name, bytes) = match &rc.plugin {
                    PluginSource::Embedded => {
                        ("passthrough".to_string(), PASSTHROUGH_WASM.to_vec())
                    }
                    PluginSource::File(path) => {
                        let bytes =
                            tokio::fs::read(path)
                                .await
                                .map_err(|e| StartError::PluginRead {
                                    route: i,
                                    path: path.display().to_string(),
                                    reason: e.to_string(),
                                })?;
                        let name = path.file_name().map_or_else(
                            || path.display().to_string(),
                            |n| n.to_string_lossy().into_owned(),
                        );
                        (name, bytes)
                    }
                };
                let p = tokio::task::spawn_blocking(move || runtime.load(&name, &bytes))
                    .await
                    .map_err(|e| StartError::Plugin {
                        route: i,
                        source: LoadError::Invalid {
                            name: "plugin".into(),
                            reason: e.to_string(),
                        },
                    })?
                    .map_err(|source| StartError::Plugin { route: i, source })?;
                loaded.insert(rc.plugin.clone(), p.clone());
                p
            }
        };
        let upstreams = rc
            .upstreams
            .iter()
            .filter_map(|n| config.upstreams.get(n).cloned())
            .collect();
        let route = Arc::new(Route {
            config: rc.clone(),
            upstreams,
            plugin,
        });
        runtime
            .check(&route.plugin, route.clone())
            .await
            .map_err(|source| StartError::Plugin { route: i, source })?;
        tracing::debug!(route = %rc.name, plugin = %route.plugin.name, version = %route.plugin.hash, memory_reset = route.plugin.memory_reset(), "route ready");
        routes.push(route);
    }
    if config
        .routes
        .iter()
        .any(|r| r.on_plugin_failure == FailurePolicy::FailOpen)
    {
        // Compiled now, off the workers, rather than by the first failure on a worker.
        let _ = tokio::task::spawn_blocking(move || runtime.passthrough()).await;
    }
    Ok(Router::new(routes))
}

impl Proxy {
    /// Loads plugins, binds every listener and starts serving on the calling
    /// runtime (one worker, whatever the config's `workers` says).
    pub async fn start(config: Config) -> Result<Proxy, StartError> {
        Proxy::start_on(config, &[Handle::current()]).await
    }

    /// [`Proxy::start`] with one accept loop per listener on each of `workers`
    /// (runtime handles, see [`crate::workers`]): what the binary does.
    pub async fn start_on(config: Config, workers: &[Handle]) -> Result<Proxy, StartError> {
        let router = load_routes(&config).await?;
        let mut listeners = Vec::new();
        for (index, lc) in config.listeners.iter().enumerate() {
            let sockets =
                crate::workers::bind(lc.address, workers).map_err(|e| StartError::Bind {
                    index,
                    addr: lc.address,
                    reason: e.to_string(),
                })?;
            listeners.push((sockets, lc.clone()));
        }
        let source = config.source.clone();
        let shared = Arc::new(Shared {
            current: RwLock::new(Arc::new(Snapshot {
                router,
                http: HttpProxy::new(config.upstreams.clone(), workers.len()),
                config: config.clone(),
                generation: 0,
            })),
            tunnels: Tunnels::new(),
            accepted: workers.iter().map(|_| AtomicU64::new(0)).collect(),
        });
        let (stop, stopped) = watch::channel(false);
        let mut addrs = Vec::new();
        let mut tasks = JoinSet::new();
        for (sockets, lc) in listeners {
            let addr = sockets[0].local_addr().map_err(|e| StartError::Bind {
                index: addrs.len(),
                addr: lc.address,
                reason: e.to_string(),
            })?;
            tracing::info!(%addr, kind = lc.kind.name(), workers = workers.len(), "listening");
            addrs.push(addr);
            let index = addrs.len() - 1;
            for (w, (socket, handle)) in sockets.into_iter().zip(workers).enumerate() {
                let accepting = accept_loop(
                    socket,
                    (index, w),
                    lc.clone(),
                    shared.clone(),
                    stopped.clone(),
                );
                tasks.spawn_on(accepting, handle);
            }
        }
        let reloader = Reloader::start(shared.clone(), source);
        Ok(Proxy {
            addrs,
            stop,
            tasks,
            shared,
            reloader,
        })
    }

    /// The bound addresses, in config order (ports resolved when the config said 0).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// Re-reads the config file (what SIGHUP does): an invalid one is refused
    /// and the running config stays. Returns the new generation.
    pub async fn reload(&self) -> Result<u64, String> {
        self.reloader.reload_config().await
    }

    /// How many times routes or plugins were swapped since start.
    pub fn generation(&self) -> u64 {
        self.shared.snapshot().generation
    }

    /// The reloader, for callers that drive reloads themselves.
    pub fn reloader(&self) -> Arc<Reloader> {
        self.reloader.clone()
    }

    /// Stops accepting connections. Connections and tunnels already open go on
    /// as long as the process runs (the binary exits right after: no drain yet).
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }

    /// Serves until `signal` completes, then drains: see [`Proxy::drain`].
    pub async fn run_until(self, signal: impl std::future::Future<Output = ()>) {
        signal.await;
        self.drain().await;
    }

    /// Graceful drain: stops accepting, lets tunnels (and handshakes becoming
    /// tunnels) run for up to the config's `drain_timeout`, then tells every
    /// tunnel to go away (WebSocket tunnels send 1001 "going away" to both sides
    /// at a frame boundary) and waits briefly for them to close.
    pub async fn drain(self) {
        let limit = self.shared.snapshot().config.drain_timeout;
        let tunnels = self.shared.tunnels.clone();
        tracing::info!(
            open_tunnels = tunnels.count(),
            drain_timeout_ms = limit.as_millis() as u64,
            "draining"
        );
        self.shutdown().await;
        if !tunnels.wait_closed(limit).await {
            tracing::info!(
                open_tunnels = tunnels.count(),
                "drain deadline: closing tunnels with 1001"
            );
            tunnels.go_away_all();
            tunnels.wait_closed(Duration::from_secs(2)).await;
        }
        tracing::info!(open_tunnels = tunnels.count(), "drained");
    }

    /// Connections accepted so far by each worker, in worker order.
    pub fn accepted_by_worker(&self) -> Vec<u64> {
        let counts = &self.shared.accepted;
        counts.iter().map(|c| c.load(Ordering::Relaxed)).collect()
    }

    /// Tunnels open now.
    pub fn open_tunnels(&self) -> usize {
        self.shared.tunnels.count()
    }
}
