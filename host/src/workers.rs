//! Worker threads (`workers` in the config): each runs a single-threaded tokio
//! runtime, as each of nginx's worker processes runs one event loop. Every
//! listener address gets one socket per worker (`SO_REUSEPORT` when there is
//! more than one, so the kernel spreads new connections over them), and a
//! connection stays on the worker that accepted it: its request heads, its
//! plugin call, its upstream exchange and its tunnel never change threads.
//!
//! Why not tokio's work-stealing runtime: with it, a socket event often wakes
//! a task on the other thread (a futex wake-up and cold caches), and idle
//! workers park and unpark. Same build, same bench run (A/B, 3 rounds), proxy
//! CPU per operation with one current-thread runtime against the work-stealing
//! runtime with one worker: handshake 142 vs 158 µs, round trip 27.3 vs 36.7 µs,
//! plain HTTP 19.2 vs 21.9 µs (docs/performance.md).
//!
//! A worker is shared by its connections, so a plugin call that runs long
//! holds the others on its worker for one epoch tick (1 ms) at a time: it
//! yields at every tick and is stopped at its deadline.

use std::io;
use std::net::SocketAddr;
use tokio::net::TcpSocket;
use tokio::runtime::Handle;

/// Most workers a config may ask for.
pub const MAX_WORKERS: usize = 256;

/// One worker per CPU the process may run on (`workers`' default).
pub fn default_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_WORKERS))
}

/// Starts `n` worker threads, each running a current-thread runtime until the
/// process exits, and returns their handles (tasks spawned on a handle run on
/// its thread).
pub fn spawn(n: usize) -> io::Result<Vec<Handle>> {
    (0..n)
        .map(|i| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name(format!("upgate-worker-{}", i + 1))
                .spawn(move || {
                    match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => {
                            let _ = tx.send(Ok(rt.handle().clone()));
                            rt.block_on(std::future::pending::<()>());
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                        }
                    }
                })?;
            rx.recv()
                .map_err(|_| io::Error::other("a worker thread ended before it started"))?
        })
        .collect()
}

/// Binds `n` listening sockets to `addr` (with `SO_REUSEPORT` when `n > 1`; a
/// port 0 is resolved by the first socket and shared by the others). They are
/// returned unregistered, for each worker to register with its own runtime.
/// Must be called within a runtime.
pub fn bind(addr: SocketAddr, n: usize) -> io::Result<Vec<std::net::TcpListener>> {
    let mut sockets = Vec::with_capacity(n);
    let mut at = addr;
    for _ in 0..n.max(1) {
        let socket = if at.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        if n > 1 {
            socket.set_reuseport(true)?;
        }
        socket.bind(at)?;
        let listener = socket.listen(1024)?;
        at = listener.local_addr()?;
        sockets.push(listener.into_std()?);
    }
    Ok(sockets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sockets_of_one_address_share_a_port_resolved_once() {
        let sockets = bind(SocketAddr::from(([127, 0, 0, 1], 0)), 3).unwrap();
        let addrs: Vec<_> = sockets.iter().map(|s| s.local_addr().unwrap()).collect();
        assert_eq!(addrs.len(), 3);
        assert_ne!(addrs[0].port(), 0);
        assert!(addrs.iter().all(|a| *a == addrs[0]), "{addrs:?}");
    }

    #[tokio::test]
    async fn one_socket_does_not_share_its_port() {
        let one = bind(SocketAddr::from(([127, 0, 0, 1], 0)), 1).unwrap();
        let addr = one[0].local_addr().unwrap();
        // Without SO_REUSEPORT on the first socket, a second bind must fail.
        assert!(bind(addr, 2).is_err(), "{addr} was bound twice");
    }

    #[test]
    fn workers_run_what_is_spawned_on_them() {
        let handles = spawn(2).unwrap();
        let names: Vec<String> = handles
            .iter()
            .map(|h| {
                let (tx, rx) = std::sync::mpsc::channel();
                h.spawn(async move {
                    let name = std::thread::current().name().map(str::to_string);
                    let _ = tx.send(name.unwrap_or_default());
                });
                rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap()
            })
            .collect();
        assert_eq!(names, ["upgate-worker-1", "upgate-worker-2"]);
    }
}
