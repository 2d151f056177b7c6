//! Routes as the proxy uses them: the validated [`RouteConfig`] with its
//! upstreams resolved and its plugin loaded, and the [`Router`] that picks the
//! route for a request by host and longest path prefix.

use std::sync::Arc;

use crate::config::{RouteConfig, UpstreamConfig};
use crate::plugin::LoadedPlugin;

/// A route ready to serve.
#[derive(Debug)]
pub struct Route {
    /// Its configuration.
    pub config: RouteConfig,
    /// Its upstreams, the default first.
    pub upstreams: Vec<UpstreamConfig>,
    /// The plugin that decides its upgrades.
    pub plugin: LoadedPlugin,
}

impl Route {
    /// The upstream a plugin names: `""` is the default; otherwise one of the route's.
    pub fn upstream(&self, name: &str) -> Option<&UpstreamConfig> {
        if name.is_empty() {
            return self.upstreams.first();
        }
        self.upstreams.iter().find(|u| u.name == name)
    }
}

/// Picks a route for a request.
#[derive(Debug, Default)]
pub struct Router {
    routes: Vec<Arc<Route>>,
}

impl Router {
    /// A router over `routes`; the order given breaks ties.
    pub fn new(routes: Vec<Arc<Route>>) -> Router {
        Router { routes }
    }

    /// The routes, in config order.
    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }

    /// The best route for `host` (port ignored) and `path`: an exact host beats a
    /// wildcard beats no host; then the longest path prefix; then config order.
    pub fn find(&self, host: Option<&str>, path: &str) -> Option<&Arc<Route>> {
        let host = host.map(strip_port).map(str::to_ascii_lowercase);
        self.routes
            .iter()
            .filter_map(|r| {
                let host_rank = host_rank(r.config.host.as_deref(), host.as_deref())?;
                path_matches(&r.config.path_prefix, path).then_some((
                    host_rank,
                    r.config.path_prefix.len(),
                    r,
                ))
            })
            .fold(
                None,
                |best: Option<(u8, usize, &Arc<Route>)>, cand| match best {
                    Some(b) if (b.0, b.1) >= (cand.0, cand.1) => Some(b),
                    _ => Some(cand),
                },
            )
            .map(|(_, _, r)| r)
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map_or(host, |(h, _)| &host[..h.len() + 1]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// 2 = exact host, 1 = wildcard match, 0 = route without host; `None` = no match.
fn host_rank(pattern: Option<&str>, host: Option<&str>) -> Option<u8> {
    match (pattern, host) {
        (None, _) => Some(0),
        (Some(p), Some(h)) if p == h => Some(2),
        (Some(p), Some(h)) => {
            let suffix = p.strip_prefix("*.")?;
            (h.len() > suffix.len() + 1
                && h.ends_with(suffix)
                && h[..h.len() - suffix.len()].ends_with('.'))
            .then_some(1)
        }
        (Some(_), None) => None,
    }
}

/// `/chat/` matches `/chat/x`; `/chat` matches `/chat`, `/chat/x` and `/chat?q`, not `/chatty`.
fn path_matches(prefix: &str, path: &str) -> bool {
    if !path.starts_with(prefix) {
        return false;
    }
    prefix.ends_with('/') || matches!(path.as_bytes().get(prefix.len()), None | Some(b'/' | b'?'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_matching() {
        assert_eq!(host_rank(Some("a.com"), Some("a.com")), Some(2));
        assert_eq!(host_rank(Some("*.a.com"), Some("x.a.com")), Some(1));
        assert_eq!(host_rank(Some("*.a.com"), Some("xa.com")), None);
        assert_eq!(host_rank(Some("*.a.com"), Some("a.com")), None);
        assert_eq!(host_rank(None, Some("b.com")), Some(0));
        assert_eq!(host_rank(Some("a.com"), None), None);
    }

    #[test]
    fn prefix_matching() {
        assert!(path_matches("/", "/anything"));
        assert!(path_matches("/chat", "/chat"));
        assert!(path_matches("/chat", "/chat/room"));
        assert!(path_matches("/chat", "/chat?x=1"));
        assert!(!path_matches("/chat", "/chatty"));
        assert!(path_matches("/chat/", "/chat/x"));
        assert!(!path_matches("/chat/", "/chat"));
    }

    #[test]
    fn ports_are_ignored() {
        assert_eq!(strip_port("a.com:8080"), "a.com");
        assert_eq!(strip_port("[::1]:8080"), "[::1]");
        assert_eq!(strip_port("a.com"), "a.com");
    }
}
