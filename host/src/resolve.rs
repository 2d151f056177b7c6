//! Upstream addresses given by name (`chat.internal:9000`): what a name
//! resolved to is kept for the upstream's `dns_refresh` and reused by every
//! connect in that time, instead of a lookup per connect (each one a trip to
//! tokio's blocking pool and `getaddrinfo`: about 75 µs of CPU and 100 µs of
//! latency per upgrade on this project's machine). When a lookup fails, the
//! last answer is used until one succeeds, as Envoy does. `ip:port`
//! addresses never go through here.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

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
    Err(last.unwrap_or_else(|| no_address(addr)))
}

fn no_address(name: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("`{name}` resolved to no address"),
    )
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
    at: Instant,
}

impl Cache {
    /// What `name` resolves to: the kept answer if younger than `refresh`,
    /// else `lookup`'s (kept in turn); the kept answer, however old, when
    /// `lookup` fails or finds nothing.
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
        let kept = self.lock().get(name).map(|e| {
            let fresh = e.at.elapsed() < refresh;
            (e.addrs.clone(), fresh)
        });
        if let Some((addrs, true)) = &kept {
            return Ok(addrs.clone());
        }
        let looked_up = match lookup(name.to_string()).await {
            Ok(found) if found.is_empty() => Err(no_address(name)),
            other => other,
        };
        match (looked_up, kept) {
            (Ok(found), _) => {
                let addrs: Arc<[SocketAddr]> = found.into();
                let entry = Entry {
                    addrs: addrs.clone(),
                    at: Instant::now(),
                };
                self.lock().insert(name.to_string(), entry);
                Ok(addrs)
            }
            (Err(e), Some((stale, _))) => {
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
