//! Worker threads (`workers` in the config): each runs a single-threaded tokio
//! runtime, as each of nginx's worker processes runs one event loop. Every
//! listener address gets one socket per worker (`SO_REUSEPORT` when there is
//! more than one, so that Linux spreads new connections over them), and a
//! connection stays on the worker that accepted it: its request heads, its
//! plugin call, its upgrade's upstream connection and its tunnel never change
//! threads. (Plain requests go to pooled upstream connections shared by all
//! workers, which may belong to another worker.)
//!
//! Why not tokio's work-stealing runtime: a socket event there often wakes a
//! task on another thread (a futex wake-up and cold caches) and idle workers
//! park and unpark. A/B in the same bench runs: one current-thread runtime
//! used less CPU per operation than the work-stealing runtime with two
//! workers, and with one (16 KiB echo about 10 % less, plain HTTP about 11 %,
//! handshake and round trip less or equal; docs/performance.md has the runs).
//!
//! A worker is shared by its connections, so a plugin call that runs long
//! holds the others on its worker for one epoch tick (1 ms) at a time: it
//! yields at every tick and is stopped at its deadline.

use std::io;
use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpSocket};
use tokio::runtime::Handle;

/// Most workers a config may ask for.
pub const MAX_WORKERS: usize = 256;

/// `workers`' default: one per CPU the process may run on, on Linux; one
/// elsewhere (other kernels do not spread a port's connections over the
/// sockets sharing it with `SO_REUSEPORT`).
pub fn default_count() -> usize {
    if cfg!(target_os = "linux") {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_WORKERS))
    } else {
        1
    }
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

/// Binds one listening socket to `addr` for each of `workers`, registered with
/// that worker's runtime. With more than one they share the address with
/// `SO_REUSEPORT` (a port 0 is resolved by the first and shared by the
/// others). That option would also let another process of the same user bind
/// the same address unnoticed, so a fixed port is first bound alone, without
/// it: a port already in use anywhere fails here, as it does with one worker.
pub fn bind(addr: SocketAddr, workers: &[Handle]) -> io::Result<Vec<TcpListener>> {
    let shared = workers.len() > 1;
    if shared && addr.port() != 0 {
        drop(socket_for(addr, false)?);
    }
    let mut listeners = Vec::with_capacity(workers.len());
    let mut at = addr;
    for worker in workers {
        let socket = socket_for(at, shared)?;
        // Registers the listener with the worker's runtime, not the caller's.
        let _in_worker = worker.enter();
        let listener = socket.listen(1024)?;
        at = listener.local_addr()?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// A socket bound to `addr`, address reuse on (as tokio's `TcpListener::bind`
/// does), and `SO_REUSEPORT` if `shared`.
fn socket_for(addr: SocketAddr, shared: bool) -> io::Result<TcpSocket> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    if shared {
        #[cfg(unix)]
        socket.set_reuseport(true)?;
        #[cfg(not(unix))]
        return Err(io::Error::other("more than one worker needs SO_REUSEPORT"));
    }
    socket.bind(addr)?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 0))
    }

    #[test]
    fn sockets_of_one_address_share_a_port_resolved_once() {
        let workers = spawn(3).unwrap();
        let sockets = bind(local(), &workers).unwrap();
        let addrs: Vec<_> = sockets.iter().map(|s| s.local_addr().unwrap()).collect();
        assert_eq!(addrs.len(), 3);
        assert_ne!(addrs[0].port(), 0);
        assert!(addrs.iter().all(|a| *a == addrs[0]), "{addrs:?}");
    }

    #[test]
    fn a_port_in_use_is_refused_with_one_worker_or_several() {
        let workers = spawn(2).unwrap();
        let held = bind(local(), &workers[..1]).unwrap();
        let addr = held[0].local_addr().unwrap();
        assert!(bind(addr, &workers[..1]).is_err(), "{addr} bound twice");
        assert!(
            bind(addr, &workers).is_err(),
            "{addr} bound twice by two workers"
        );
        // Held by a group of two: a second group of the same user is refused too.
        let group = bind(local(), &workers).unwrap();
        let addr = group[0].local_addr().unwrap();
        assert!(
            bind(addr, &workers).is_err(),
            "{addr} joined by a second group"
        );
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
