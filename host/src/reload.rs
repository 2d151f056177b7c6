//! Hot reload. A `notify` watcher on the folders of every plugin file in use
//! (and of the config file and the certificate, key and CA files it names)
//! feeds a debounce loop; a changed plugin is compiled
//! off the async workers, checked (a component of the right world that
//! instantiates and accepts each route's settings), and swapped in for its
//! routes; a changed config or TLS file (or SIGHUP) has the config loaded,
//! validated and swapped in whole. Whatever fails is refused with its reason logged, and what was
//! running keeps serving. Open tunnels never depend on a snapshot, so no swap
//! touches them; upgrades inside the old version finish on it.

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::config::{Config, PluginSource};
use crate::http_proxy::HttpProxy;
use crate::plugin::PluginRuntime;
use crate::router::{Route, Router};
use crate::server::{load_routes, Shared, Snapshot};

/// Quiet time after the last event for a file before it is reloaded.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// Watches files and applies reloads, one at a time.
pub struct Reloader {
    shared: Arc<Shared>,
    config_path: Option<PathBuf>,
    watcher: Mutex<Option<RecommendedWatcher>>,
    watched_dirs: Mutex<HashSet<PathBuf>>,
    /// Serializes reloads (file events and SIGHUP).
    busy: tokio::sync::Mutex<()>,
}

/// The absolute form of `path` (its folder canonicalized), as notify reports it.
fn absolute(path: &Path) -> PathBuf {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    match path.file_name() {
        Some(name) => dir.join(name),
        None => dir,
    }
}

/// The plugin files the routes of `config` use, absolute.
fn plugin_files(config: &Config) -> impl Iterator<Item = PathBuf> + '_ {
    config.routes.iter().filter_map(|r| match &r.plugin {
        PluginSource::File(p) => Some(absolute(p)),
        PluginSource::Embedded => None,
    })
}

impl Reloader {
    /// Starts watching the plugin files of the current snapshot and, if given, the config file.
    pub fn start(shared: Arc<Shared>, config_path: Option<PathBuf>) -> Arc<Reloader> {
        let (tx, rx) = mpsc::unbounded_channel::<PathBuf>();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            if let Ok(event) = event {
                if !event.kind.is_access() {
                    for path in event.paths {
                        let _ = tx.send(path);
                    }
                }
            }
        });
        let watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                warn!(error = %e, "cannot watch files: hot reload is off (SIGHUP still reloads the config)");
                None
            }
        };
        let reloader = Arc::new(Reloader {
            shared,
            config_path: config_path.map(|p| absolute(&p)),
            watcher: Mutex::new(watcher),
            watched_dirs: Mutex::new(HashSet::new()),
            busy: tokio::sync::Mutex::new(()),
        });
        reloader.watch_current();
        tokio::spawn(reloader.clone().run(rx));
        reloader
    }

    /// Makes sure the folder of every file in use is watched.
    fn watch_current(&self) {
        let snapshot = self.shared.snapshot();
        let mut files: Vec<PathBuf> = plugin_files(&snapshot.config).collect();
        if self.config_path.is_some() {
            files.extend(snapshot.config.tls_files.iter().map(|p| absolute(p)));
        }
        files.extend(self.config_path.clone());
        let (Ok(mut watcher), Ok(mut dirs)) = (self.watcher.lock(), self.watched_dirs.lock())
        else {
            return;
        };
        let Some(watcher) = watcher.as_mut() else {
            return;
        };
        for file in files {
            let Some(dir) = file.parent() else { continue };
            if dirs.contains(dir) {
                continue;
            }
            match watcher.watch(dir, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    dirs.insert(dir.to_path_buf());
                }
                Err(e) => {
                    warn!(dir = %dir.display(), error = %e, "cannot watch folder: its files won't hot-reload")
                }
            }
        }
    }

    async fn run(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<PathBuf>) {
        let mut pending: HashSet<PathBuf> = HashSet::new();
        loop {
            let next = if pending.is_empty() {
                rx.recv().await
            } else {
                match tokio::time::timeout(DEBOUNCE, rx.recv()).await {
                    Ok(next) => next,
                    Err(_) => {
                        self.changed(pending.drain().collect()).await;
                        continue;
                    }
                }
            };
            match next {
                Some(path) => {
                    pending.insert(path);
                }
                None => return,
            }
        }
    }

    /// Acts on a debounced batch of changed files: one config reload if the
    /// config file or any certificate, key or CA file it names changed (a
    /// renewal that rewrites a certificate and its key is one reload), then each
    /// changed plugin file in use.
    async fn changed(&self, paths: Vec<PathBuf>) {
        let snapshot = self.shared.snapshot();
        // Resolved once per batch: `absolute` canonicalizes each file's folder.
        let tls_files: HashSet<PathBuf> = snapshot
            .config
            .tls_files
            .iter()
            .map(|f| absolute(f))
            .collect();
        let plugins: HashSet<PathBuf> = plugin_files(&snapshot.config).collect();
        let is_config = |p: &PathBuf| self.config_path.as_ref() == Some(p);
        let config_changed = self.config_path.is_some()
            && paths.iter().any(|p| is_config(p) || tls_files.contains(p));
        if config_changed {
            let _ = self.reload_config().await;
        }
        for path in paths
            .iter()
            .filter(|p| plugins.contains(*p) && !is_config(p))
        {
            let _ = self.reload_plugin(path).await;
        }
    }

    /// Reloads the plugin file at `path` for every route that uses it.
    pub async fn reload_plugin(&self, path: &Path) -> Result<u64, String> {
        let _busy = self.busy.lock().await;
        let snapshot = self.shared.snapshot();
        let uses =
            |r: &Route| matches!(&r.config.plugin, PluginSource::File(p) if absolute(p) == path);
        let refuse = |reason: String| {
            warn!(plugin = %path.display(), reason = %reason, "plugin reload refused; the running version keeps serving");
            Err(reason)
        };
        let bytes = match tokio::fs::read(path).await {
            Ok(b) => b,
            Err(e) => return refuse(format!("cannot read: {e}")),
        };
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let runtime = PluginRuntime::global();
        let loaded = match tokio::task::spawn_blocking(move || runtime.load(&name, &bytes)).await {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => return refuse(e.to_string()),
            Err(e) => return refuse(e.to_string()),
        };
        if snapshot
            .router
            .routes()
            .iter()
            .filter(|r| uses(r))
            .all(|r| r.plugin.hash == loaded.hash)
        {
            return Ok(snapshot.generation);
        }
        let mut routes = Vec::new();
        for route in snapshot.router.routes() {
            if !uses(route) {
                routes.push(route.clone());
                continue;
            }
            let fresh = Arc::new(Route {
                config: route.config.clone(),
                upstreams: route.upstreams.clone(),
                plugin: loaded.clone(),
            });
            if let Err(e) = runtime.check(&fresh.plugin, fresh.clone()).await {
                return refuse(format!("route `{}`: {e}", route.config.name));
            }
            routes.push(fresh);
        }
        let generation = self.shared.swap(|old| Snapshot {
            router: Router::new(routes),
            http: old.http.clone(),
            config: old.config.clone(),
            generation: 0,
        });
        info!(plugin = %loaded.name, hash = %loaded.hash, generation, memory_reset = loaded.memory_reset(), "plugin reloaded");
        Ok(generation)
    }

    /// Tunnels of routes the new config no longer has go away after the drain
    /// timeout; routes it brings back are welcome again.
    fn drain_removed_routes(&self, old: &Config, new: &Config) {
        let tunnels = self.shared.tunnels.clone();
        for route in &new.routes {
            tunnels.welcome_route(&route.name);
        }
        let removed: Vec<String> = old
            .routes
            .iter()
            .filter(|r| new.route(&r.name).is_none())
            .map(|r| r.name.clone())
            .collect();
        if removed.is_empty() {
            return;
        }
        let limit = new.drain_timeout;
        info!(routes = ?removed, drain_timeout_ms = limit.as_millis() as u64, "routes removed: their tunnels drain");
        tokio::spawn(async move {
            tokio::time::sleep(limit).await;
            for route in removed {
                tunnels.go_away_route(&route);
            }
        });
    }

    /// Reloads the config file; refuses (and keeps the running one) when it is invalid.
    pub async fn reload_config(&self) -> Result<u64, String> {
        let _busy = self.busy.lock().await;
        let Some(path) = self.config_path.clone() else {
            return Err("no config file to reload (started from the command line)".into());
        };
        let refuse = |reason: String| {
            warn!(config = %path.display(), reason = %reason, "config reload refused; the running config stays");
            Err(reason)
        };
        // Reading and checking the file (certificates and keys included) blocks:
        // off the worker, whose connections would wait for it.
        let file = path.clone();
        let config = match tokio::task::spawn_blocking(move || Config::load(&file)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return refuse(e.to_string()),
            Err(e) => return refuse(format!("config load failed: {e}")),
        };
        let router = match load_routes(&config).await {
            Ok(r) => r,
            Err(e) => return refuse(e.to_string()),
        };
        let old = self.shared.snapshot();
        if config.listener_shape() != old.config.listener_shape() {
            warn!(
                running = ?old.config.listener_shape(), configured = ?config.listener_shape(),
                "listener addresses or kinds changed: that needs a restart; the running listeners stay"
            );
        }
        // Warned once, by the reload that changes the key.
        let running = self.shared.accepted.len();
        if config.workers != old.config.workers && config.workers != running {
            warn!(
                running,
                configured = config.workers,
                "workers changed: that needs a restart; the running workers stay"
            );
        }
        let http = if config.upstreams == old.config.upstreams {
            old.http.clone()
        } else {
            HttpProxy::new(config.upstreams.clone(), self.shared.accepted.len())
        };
        let routes = router.routes().len();
        self.drain_removed_routes(&old.config, &config);
        let generation = self.shared.swap(|_| Snapshot {
            router,
            http,
            config,
            generation: 0,
        });
        drop(_busy);
        self.watch_current();
        info!(config = %path.display(), generation, routes, "config reloaded");
        Ok(generation)
    }
}
