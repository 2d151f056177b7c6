//! The plain HTTP keep-alive load test, with the in-repo client or with `wrk` (whose report
//! is parsed here). Shares [`Measured`] and the measured interval with the WebSocket tests in
//! [`crate::load`].

use super::{finish, Measured, Target};
use crate::client::Http;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn http_request(addr: SocketAddr) -> Vec<u8> {
    format!("GET /ka/ HTTP/1.1\r\nHost: {addr}\r\n\r\n").into_bytes()
}

/// Plain HTTP keep-alive GETs over `conns` connections, with the in-repo client.
pub async fn http_builtin(t: &Target, conns: usize, dur: Duration) -> Measured {
    let req = Arc::new(http_request(t.addr));
    let stop = Arc::new(AtomicBool::new(false));
    let addr = t.addr;
    let cpu0 = t.cpu();
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..conns)
        .map(|_| {
            let (req, stop) = (req.clone(), stop.clone());
            tokio::spawn(async move {
                let mut m = Measured::default();
                let mut c = match Http::connect(addr).await {
                    Ok(c) => c,
                    Err(e) => {
                        m.note_error(e);
                        return m;
                    }
                };
                while !stop.load(Ordering::Relaxed) {
                    let s = Instant::now();
                    match c.get(&req).await {
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
    finish(t, &stop, dur, cpu0, t0, tasks, Measured::default()).await
}

/// Plain HTTP keep-alive GETs with `wrk` (one thread, `conns` connections).
pub fn http_wrk(wrk: &Path, t: &Target, conns: usize, dur: Duration) -> Measured {
    let secs = dur.as_secs_f64().ceil().max(1.0) as u64;
    let cpu0 = t.cpu();
    let t0 = Instant::now();
    let out = Command::new(wrk)
        .args([
            "-t1",
            &format!("-c{conns}"),
            &format!("-d{secs}s"),
            "--latency",
        ])
        .arg(format!("http://{}/ka/", t.addr))
        .output();
    let mut m = Measured {
        secs: t0.elapsed().as_secs_f64(),
        cpu: t.cpu().zip(cpu0).map(|(a, b)| a - b),
        ..Default::default()
    };
    let out = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        Ok(o) => {
            m.note_error(format!(
                "wrk failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
            return m;
        }
        Err(e) => {
            m.note_error(format!("wrk: {e}"));
            return m;
        }
    };
    parse_wrk(&out, &mut m);
    m
}

fn wrk_duration_us(s: &str) -> Option<f64> {
    let (num, unit) = s.split_at(s.find(|c: char| c.is_ascii_alphabetic())?);
    let n: f64 = num.parse().ok()?;
    Some(match unit {
        "us" => n,
        "ms" => n * 1e3,
        "s" => n * 1e6,
        "m" => n * 60e6,
        _ => return None,
    })
}

/// Reads wrk's report: "N requests in 2.00s, ...", "Requests/sec: ...", the latency
/// distribution ("50% 123.00us") and any errors.
fn parse_wrk(out: &str, m: &mut Measured) {
    for line in out.lines().map(str::trim) {
        let w: Vec<&str> = line.split_whitespace().collect();
        if w.len() >= 4 && w[1] == "requests" && w[2] == "in" {
            m.ops = w[0].parse().unwrap_or(0);
            if let Some(us) = wrk_duration_us(w[3].trim_end_matches(',')) {
                m.secs = us / 1e6;
            }
        } else if w.len() == 2 && (w[0] == "50%" || w[0] == "99%") {
            // Stored as two synthetic samples; pct_us(0.0) and pct_us(1.0) read them back.
            if let Some(us) = wrk_duration_us(w[1]) {
                m.lat.push((us * 1e3) as u64);
            }
        } else if line.starts_with("Socket errors") || line.starts_with("Non-2xx") {
            m.note_error(line);
        }
    }
    if m.ops == 0 {
        m.note_error(format!("no request count in wrk's output:\n{out}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_report() {
        let out = "Running 2s test @ http://127.0.0.1:1/ka/\n  1 threads and 50 connections\n\
            \x20 Latency Distribution\n     50%  512.00us\n     75%    1.00ms\n     90%    1.20ms\n     99%    2.50ms\n\
            \x20 61234 requests in 2.00s, 7.00MB read\nRequests/sec:  30617.00\n";
        let mut m = Measured::default();
        parse_wrk(out, &mut m);
        assert_eq!(m.ops, 61234);
        assert!((m.secs - 2.0).abs() < 1e-9);
        assert_eq!(m.pct_us(0.0), Some(512.0));
        assert_eq!(m.pct_us(1.0), Some(2500.0));
        assert_eq!(m.errors, 0);
    }
}
