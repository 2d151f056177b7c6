//! The load tests. Each runs against one target for a fixed time and returns what was done,
//! the latencies, and the proxy's CPU time over the measured interval. The WebSocket tests
//! (handshakes, echo, opening idle tunnels) are here; plain HTTP is in [`http`].

mod http;

pub use http::{http_builtin, http_wrk};

use crate::client::{echo_frame, upgrade_request, Ws};
use crate::procs::Proc;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one test run measured.
#[derive(Debug, Default)]
pub struct Measured {
    /// Operations completed inside the measured interval.
    pub ops: u64,
    /// Length of the measured interval.
    pub secs: f64,
    /// Proxy CPU seconds over the interval (`None` for the direct target).
    pub cpu: Option<f64>,
    /// Latency of each operation, in nanoseconds.
    pub lat: Vec<u64>,
    /// Failed operations, and the first failure.
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Measured {
    pub fn rate(&self) -> f64 {
        self.ops as f64 / self.secs
    }

    /// Proxy CPU per operation, in µs.
    pub fn cpu_per_op_us(&self) -> Option<f64> {
        self.cpu
            .filter(|_| self.ops > 0)
            .map(|c| c * 1e6 / self.ops as f64)
    }

    /// Latency percentile, in µs.
    pub fn pct_us(&mut self, q: f64) -> Option<f64> {
        if self.lat.is_empty() {
            return None;
        }
        self.lat.sort_unstable();
        let i = ((self.lat.len() - 1) as f64 * q).round() as usize;
        Some(self.lat[i] as f64 / 1e3)
    }

    fn note_error(&mut self, e: impl ToString) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e.to_string());
        }
    }

    fn merge(&mut self, ops: u64, lat: Vec<u64>, errors: u64, first: Option<String>) {
        self.ops += ops;
        self.lat.extend(lat);
        self.errors += errors;
        if self.first_error.is_none() {
            self.first_error = first;
        }
    }
}

/// The thing measured: its address and, for a proxy, its processes.
pub struct Target {
    pub name: String,
    pub addr: SocketAddr,
    pub proc: Option<Proc>,
}

impl Target {
    fn cpu(&self) -> Option<f64> {
        self.proc.as_ref().map(Proc::cpu_secs)
    }

    pub fn settle(&self) {
        if let Some(p) = &self.proc {
            p.settle();
        }
    }
}

/// Runs `dur`, then raises `stop` and adds up what `tasks` measured, on top of `start`
/// (failures from before the interval), with the interval and the proxy CPU over it.
async fn finish(
    t: &Target,
    stop: &AtomicBool,
    dur: Duration,
    cpu0: Option<f64>,
    t0: Instant,
    tasks: Vec<tokio::task::JoinHandle<Measured>>,
    start: Measured,
) -> Measured {
    tokio::time::sleep(dur).await;
    stop.store(true, Ordering::SeqCst);
    let mut total = Measured {
        secs: t0.elapsed().as_secs_f64(),
        cpu: t.cpu().zip(cpu0).map(|(a, b)| a - b),
        ..start
    };
    for task in tasks {
        if let Ok(m) = task.await {
            total.merge(m.ops, m.lat, m.errors, m.first_error);
        }
    }
    total
}

/// Connect + upgrade + closing handshake, `conc` at a time.
pub async fn handshakes(t: &Target, conc: usize, dur: Duration) -> Measured {
    let req = Arc::new(upgrade_request(t.addr));
    let stop = Arc::new(AtomicBool::new(false));
    let addr = t.addr;
    let cpu0 = t.cpu();
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..conc)
        .map(|_| {
            let (req, stop) = (req.clone(), stop.clone());
            tokio::spawn(async move {
                let mut m = Measured::default();
                while !stop.load(Ordering::Relaxed) {
                    let s = Instant::now();
                    let r = async { Ws::connect(addr, &req, 1024).await?.close().await }.await;
                    match r {
                        Ok(()) if !stop.load(Ordering::Relaxed) => {
                            m.ops += 1;
                            m.lat.push(s.elapsed().as_nanos() as u64);
                        }
                        Ok(()) => {}
                        Err(e) => {
                            m.note_error(e);
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
                m
            })
        })
        .collect();
    finish(t, &stop, dur, cpu0, t0, tasks, Measured::default()).await
}

/// Opens `n` WebSocket connections, `conc` handshakes at a time, trying each up to three
/// times. Returns those opened, the failed attempts and the first failure.
pub async fn open(
    addr: SocketAddr,
    n: usize,
    conc: usize,
    buf: usize,
) -> (Vec<Ws>, u64, Option<String>) {
    let req = Arc::new(upgrade_request(addr));
    let conc = conc.clamp(1, n.max(1));
    let tasks: Vec<_> = (0..conc)
        .map(|i| {
            let req = req.clone();
            let mine = n / conc + usize::from(i < n % conc);
            tokio::spawn(async move {
                let mut v = Vec::with_capacity(mine);
                let (mut errors, mut first) = (0, None);
                for _ in 0..mine {
                    for _attempt in 0..3 {
                        match Ws::connect(addr, &req, buf).await {
                            Ok(ws) => {
                                v.push(ws);
                                break;
                            }
                            Err(e) => {
                                errors += 1;
                                first = first.or(Some(e.to_string()));
                            }
                        }
                    }
                }
                (v, errors, first)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(n);
    let (mut errors, mut first) = (0, None);
    for t in tasks {
        match t.await {
            Ok((v, e, f)) => {
                all.extend(v);
                errors += e;
                first = first.or(f);
            }
            Err(e) => {
                errors += 1;
                first = first.or(Some(e.to_string()));
            }
        }
    }
    (all, errors, first)
}

/// `conns` connections, each echoing `size`-byte messages one at a time.
pub async fn echo(t: &Target, conns: usize, size: usize, dur: Duration) -> Measured {
    let (frame, echo_len) = echo_frame(size);
    let frame = Arc::new(frame);
    let (mut ws, errors, first_error) = open(t.addr, conns, 16, echo_len + 64).await;
    if ws.len() < conns {
        return Measured {
            secs: dur.as_secs_f64(),
            errors: errors.max(1),
            first_error: Some(format!(
                "opened {} of {conns} connections: {}",
                ws.len(),
                first_error.unwrap_or_default()
            )),
            ..Default::default()
        };
    }
    // One echo each before the clock starts.
    for w in &mut ws {
        if let Err(e) = w.echo(&frame, echo_len).await {
            let mut m = Measured {
                secs: dur.as_secs_f64(),
                ..Default::default()
            };
            m.note_error(e);
            return m;
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let cpu0 = t.cpu();
    let t0 = Instant::now();
    let tasks: Vec<_> = ws
        .into_iter()
        .map(|mut w| {
            let (frame, stop) = (frame.clone(), stop.clone());
            tokio::spawn(async move {
                let mut m = Measured::default();
                m.lat.reserve(1 << 14);
                while !stop.load(Ordering::Relaxed) {
                    let s = Instant::now();
                    match w.echo(&frame, echo_len).await {
                        Ok(()) if !stop.load(Ordering::Relaxed) => {
                            m.ops += 1;
                            m.lat.push(s.elapsed().as_nanos() as u64);
                        }
                        Ok(()) => {}
                        Err(e) => {
                            m.note_error(e);
                            break;
                        }
                    }
                }
                m
            })
        })
        .collect();
    let start = Measured {
        errors,
        first_error,
        ..Default::default()
    };
    finish(t, &stop, dur, cpu0, t0, tasks, start).await
}
