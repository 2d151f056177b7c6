//! Upstream addresses given by name (`chat.internal:9000`): what a name
//! resolved to is kept for the upstream's `dns_refresh` and reused by every
//! connect in that time, instead of a lookup per connect (each one a trip to
//! tokio's blocking pool and `getaddrinfo`: about 75 µs of CPU and 100 µs of
//! latency per upgrade on this project's machine). `ip:port` addresses never
//! go through here.
//!
//! Once a name has an answer, an expired one is refreshed by one connect at a
//! time (the others meanwhile use the kept answer), and that lookup may take
//! at most [`REFRESH_WAIT`]: when it fails, finds nothing or takes longer (a
//! DNS server that does not answer), the kept answer is used and kept for
//! another `dns_refresh`, as Envoy keeps its last hosts.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// Longest wait for a lookup that refreshes a kept answer (a first lookup has
/// nothing to fall back on and waits as long as the connect timeout allows).
pub const REFRESH_WAIT: Duration = Duration::from_secs(1);

/// Connects to `addr` (`ip:port`, `[v6]:port` or `name:port`), trying each
/// address a name resolves to in order; a name's answer is reused for
/// `refresh` (zero: looked up at every connect).
pub async fn connect(addr: &str, refresh: Duration) -> io::Result<TcpStream> {
    if let Ok(ip) = addr.parse::<SocketAddr>() {
        return TcpStream::connect(ip).await;
    }
    let resolved = cache()
        .addrs(addr, refresh, |name| async move {
            Ok(tokio::net::lookup_host(name).await?.collect())
        })
        .await?;
    let mut last = None;
    for ip in resolved.iter() {
        match TcpStream::connect(ip).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(no_address))
}

fn no_address() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "the name resolved to no address")
}

/// The process's cache (names come from the config, so it stays small).
fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(Cache::default)
}

/// Names and what they last resolved to.
#[derive(Default)]
pub struct Cache {
    entries: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    addrs: Arc<[SocketAddr]>,
    /// When the answer was got, or last kept after a failed refresh.
    at: Instant,
    /// A connect is refreshing it.
    refreshing: bool,
}

/// Clears an entry's `refreshing` when the refresh ends in any way, its
/// future dropped by a connect timeout included.
struct Refreshing<'a> {
    cache: &'a Cache,
    name: &'a str,
}

impl Drop for Refreshing<'_> {
    fn drop(&mut self) {
        if let Some(e) = self.cache.lock().get_mut(self.name) {
            e.refreshing = false;
        }
    }
}

impl Cache {
    /// What `name` resolves to: the kept answer if younger than `refresh` or
    /// being refreshed by another connect; else `lookup`'s, kept in turn. With
    /// a kept answer, `lookup` may take [`REFRESH_WAIT`], and its failure (or
    /// an empty answer) falls back on the kept answer, kept another `refresh`.
    pub async fn addrs<F, Fut>(
        &self,
        name: &str,
        refresh: Duration,
        lookup: F,
    ) -> io::Result<Arc<[SocketAddr]>>
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = io::Result<Vec<SocketAddr>>>,
    {
        let kept = match self.lock().get_mut(name) {
            Some(e) if e.at.elapsed() < refresh || e.refreshing => return Ok(e.addrs.clone()),
            Some(e) => {
                e.refreshing = true;
                Some(e.addrs.clone())
            }
            None => None,
        };
        let _refreshing = kept.is_some().then_some(Refreshing { cache: self, name });
        let looked_up = if kept.is_some() {
            tokio::time::timeout(REFRESH_WAIT, lookup(name.to_string()))
                .await
                .unwrap_or_else(|_| {
                    let ms = REFRESH_WAIT.as_millis();
                    Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no answer in {ms} ms"),
                    ))
                })
        } else {
            lookup(name.to_string()).await
        };
        let looked_up = match looked_up {
            Ok(found) if found.is_empty() => Err(no_address()),
            other => other,
        };
        let now = Instant::now();
        match (looked_up, kept) {
            (Ok(found), _) => {
                let addrs: Arc<[SocketAddr]> = found.into();
                let entry = Entry {
                    addrs: addrs.clone(),
                    at: now,
                    refreshing: false,
                };
                self.lock().insert(name.to_string(), entry);
                Ok(addrs)
            }
            (Err(e), Some(stale)) => {
                if let Some(entry) = self.lock().get_mut(name) {
                    entry.at = now;
                }
                tracing::warn!(%name, error = %e, "name lookup failed; using its last answer");
                Ok(stale)
            }
            (Err(e), None) => Err(e),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        // The map stays consistent whatever panicked while holding it.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn ip(last: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, last], 9000))
    }

    /// A lookup that answers `answer` and counts its calls.
    fn lookup(
        calls: &AtomicUsize,
        answer: io::Result<Vec<SocketAddr>>,
    ) -> impl FnOnce(String) -> std::future::Ready<io::Result<Vec<SocketAddr>>> + '_ {
        move |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            std::future::ready(answer)
        }
    }

    fn failed() -> io::Result<Vec<SocketAddr>> {
        Err(io::Error::other("no such host"))
    }

    #[tokio::test]
    async fn an_answer_is_reused_until_it_is_older_than_the_refresh() {
        let (cache, calls) = (Cache::default(), AtomicUsize::new(0));
        let hour = Duration::from_secs(3600);
        let got = cache.addrs("a:1", hour, lookup(&calls, Ok(vec![ip(1)])));
        assert_eq!(&*got.await.unwrap(), &[ip(1)]);
        let got = cache.addrs("a:1", hour, lookup(&calls, Ok(vec![ip(2)])));
        assert_eq!(&*got.await.unwrap(), &[ip(1)], "reused within the hour");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // A zero refresh looks up every time, and keeps the new answer.
        let got = cache.addrs(
            "a:1",
            Duration::ZERO,
            lookup(&calls, Ok(vec![ip(2), ip(3)])),
        );
        assert_eq!(&*got.await.unwrap(), &[ip(2), ip(3)]);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // Another name is another entry.
        let got = cache.addrs("b:1", hour, lookup(&calls, Ok(vec![ip(9)])));
        assert_eq!(&*got.await.unwrap(), &[ip(9)]);
    }

    #[tokio::test]
    async fn a_failed_lookup_falls_back_to_the_last_answer_and_only_to_it() {
        let (cache, calls) = (Cache::default(), AtomicUsize::new(0));
        let got = cache.addrs("a:1", Duration::ZERO, lookup(&calls, failed()));
        assert!(got.await.is_err(), "nothing to fall back on");
        let got = cache.addrs("a:1", Duration::ZERO, lookup(&calls, Ok(vec![])));
        let err = got.await.unwrap_err();
        assert!(err.to_string().contains("no address"), "{err}");
        let got = cache.addrs("a:1", Duration::ZERO, lookup(&calls, Ok(vec![ip(1)])));
        assert_eq!(&*got.await.unwrap(), &[ip(1)]);
        let got = cache.addrs("a:1", Duration::ZERO, lookup(&calls, failed()));
        assert_eq!(&*got.await.unwrap(), &[ip(1)], "the stale answer");
        let got = cache.addrs("a:1", Duration::ZERO, lookup(&calls, Ok(vec![])));
        assert_eq!(
            &*got.await.unwrap(),
            &[ip(1)],
            "an empty answer is a failure"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 5);
        // After a failure the stale answer is kept for another refresh period.
        let hour = Duration::from_secs(3600);
        let got = cache.addrs("a:1", hour, lookup(&calls, Ok(vec![ip(2)])));
        assert_eq!(
            &*got.await.unwrap(),
            &[ip(1)],
            "no lookup right after a failure"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn a_hanging_refresh_gives_the_kept_answer_and_one_refresh_runs_at_a_time() {
        let (cache, calls) = (Cache::default(), AtomicUsize::new(0));
        let got = cache.addrs("a:1", Duration::ZERO, lookup(&calls, Ok(vec![ip(1)])));
        assert_eq!(&*got.await.unwrap(), &[ip(1)]);
        let never = |_| std::future::pending::<io::Result<Vec<SocketAddr>>>();
        // A DNS server that never answers: the refresh gives up after
        // REFRESH_WAIT and the kept answer serves.
        let started = Instant::now();
        let got = cache.addrs("a:1", Duration::ZERO, never);
        assert_eq!(&*got.await.unwrap(), &[ip(1)]);
        let waited = started.elapsed();
        assert!(
            waited >= REFRESH_WAIT && waited < REFRESH_WAIT * 3,
            "{waited:?}"
        );
        // While one connect refreshes, the others use the kept answer without
        // a lookup of their own.
        cache.lock().get_mut("a:1").unwrap().refreshing = true;
        let got = cache.addrs("a:1", Duration::ZERO, lookup(&calls, Ok(vec![ip(2)])));
        assert_eq!(&*got.await.unwrap(), &[ip(1)]);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // A refresh whose connect gave up (its future dropped) lets the next
        // connect refresh.
        cache.lock().get_mut("a:1").unwrap().refreshing = false;
        let dropped = cache.addrs("a:1", Duration::ZERO, never);
        let _ = tokio::time::timeout(Duration::from_millis(10), dropped).await;
        assert!(
            !cache.lock()["a:1"].refreshing,
            "the dropped refresh let go"
        );
        let got = cache.addrs("a:1", Duration::ZERO, lookup(&calls, Ok(vec![ip(3)])));
        assert_eq!(&*got.await.unwrap(), &[ip(3)]);
    }

    #[tokio::test]
    async fn names_connect_and_ip_addresses_skip_the_cache() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let refresh = Duration::from_secs(5);
        connect(&format!("127.0.0.1:{port}"), refresh)
            .await
            .unwrap();
        let ip_key = format!("127.0.0.1:{port}");
        assert!(
            !cache().lock().contains_key(&ip_key),
            "an IP address is not cached"
        );
        connect(&format!("localhost:{port}"), refresh)
            .await
            .unwrap();
        assert!(cache().lock().contains_key(&format!("localhost:{port}")));
    }
}
