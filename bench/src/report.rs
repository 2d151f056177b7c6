//! The figures of a run and the one table they are printed as (markdown, so that it can be
//! pasted into the README as it is).

use crate::procs::{find_program, version_line};
use crate::{Plan, RunArgs, HANDSHAKE_CONC, HTTP_CONNS, LARGE, SMALL};
use std::collections::HashMap;
use std::fmt::Write;
use std::process::Command;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Metric {
    HsRate,
    HsCpu,
    SmallRate,
    SmallP50,
    SmallP99,
    SmallCpu,
    LargeRate,
    LargeP50,
    LargeP99,
    LargeCpu,
    RttRate,
    RttP50,
    RttP99,
    RttCpu,
    HttpRate,
    HttpCpu,
    /// KiB per idle tunnel with this many open.
    Rss(usize),
}

impl Metric {
    fn higher_is_better(self) -> bool {
        matches!(
            self,
            Metric::HsRate
                | Metric::SmallRate
                | Metric::LargeRate
                | Metric::RttRate
                | Metric::HttpRate
        )
    }

    fn label(self, http_client: &str) -> String {
        let (sc, ss) = SMALL;
        let lc = LARGE.0;
        match self {
            Metric::HsRate => format!("WebSocket handshakes/s ({HANDSHAKE_CONC} concurrent) ↑"),
            Metric::HsCpu => "proxy CPU per handshake, µs ↓".into(),
            Metric::SmallRate => format!("{ss} B echo, msg/s ({sc} conns) ↑"),
            Metric::SmallP50 => format!("{ss} B echo latency p50, µs ↓"),
            Metric::SmallP99 => format!("{ss} B echo latency p99, µs ↓"),
            Metric::SmallCpu => format!("proxy CPU per {ss} B message, µs ↓"),
            Metric::LargeRate => format!("16 KiB echo, MB/s ({lc} conns) ↑"),
            Metric::LargeP50 => "16 KiB echo latency p50, µs ↓".into(),
            Metric::LargeP99 => "16 KiB echo latency p99, µs ↓".into(),
            Metric::LargeCpu => "proxy CPU per 16 KiB message, µs ↓".into(),
            Metric::RttRate => "unloaded round trips/s ↑".into(),
            Metric::RttP50 => "unloaded round trip p50, µs (1 conn, 64 B) ↓".into(),
            Metric::RttP99 => "unloaded round trip p99, µs ↓".into(),
            Metric::RttCpu => "proxy CPU per unloaded round trip, µs ↓".into(),
            Metric::HttpRate => {
                format!("plain HTTP keep-alive, req/s ({HTTP_CONNS} conns, {http_client}) ↑")
            }
            Metric::HttpCpu => "proxy CPU per HTTP request, µs ↓".into(),
            Metric::Rss(n) => format!("RSS per idle tunnel, KiB ({n} open) ↓"),
        }
    }
}

/// Per metric and target, one figure per round.
pub struct Results {
    targets: Vec<String>,
    rows: Vec<Metric>,
    values: HashMap<(Metric, String), Vec<f64>>,
    errors: Vec<(String, String)>,
}

fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

fn fmt_num(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// What the run was, for the table's heading.
pub struct Meta {
    date: String,
    machine: String,
    versions: String,
    method: String,
    http_client: String,
    elapsed: Duration,
}

fn cmd_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

impl Meta {
    pub fn collect(args: &RunArgs, plan: &Plan, elapsed: Duration) -> Meta {
        let date = cmd_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|m| m.trim().to_string())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let mem_gib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .next()?
                    .split_whitespace()
                    .nth(1)?
                    .parse::<f64>()
                    .ok()
            })
            .map_or(String::new(), |kib| format!(", {:.0} GiB", kib / 1048576.0));
        let machine = format!(
            "nproc {nproc} × {cpu}{mem_gib}, Linux {kernel}; 1-min load average {} at the \
             start, {} at the end (other work on the machine skews throughput more than CPU/op)",
            plan.load_start,
            loadavg()
        );

        let mut versions = Vec::new();
        let upgate = version_line(&args.upgate, &["--version"]);
        let rev = cmd_line("git", &["rev-parse", "--short", "HEAD"]);
        let dirty = !cmd_line("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty();
        versions.push(format!(
            "{}{}",
            if upgate.is_empty() {
                "upgate".into()
            } else {
                upgate
            },
            if rev.is_empty() {
                String::new()
            } else {
                format!(" (git {rev}{})", if dirty { ", modified tree" } else { "" })
            }
        ));
        if plan.targets.iter().any(|t| t.starts_with("nginx")) {
            if let Some(p) = find_program(&args.nginx) {
                versions.push(
                    version_line(&p, &["-v"])
                        .trim_start_matches("nginx version: ")
                        .to_string(),
                );
            }
        }
        if plan.targets.iter().any(|t| t == "haproxy") {
            if let Some(p) = find_program(&args.haproxy) {
                let v = version_line(&p, &["-v"]);
                versions.push(v.split(" - ").next().unwrap_or(&v).to_string());
            }
        }
        let http_client = match &plan.wrk {
            Some(w) => {
                // "wrk debian/4.1.0-3+b2 [epoll] ..." → "wrk 4.1.0"
                let v = version_line(w, &["-v"]);
                let n = v.split_whitespace().nth(1).unwrap_or("");
                let n = n.rsplit('/').next().unwrap_or(n);
                format!("wrk {}", n.split('-').next().unwrap_or(n))
            }
            None => "in-repo client".into(),
        };
        let method = format!(
            "{} interleaved round{} × {} s per test per target, medians over rounds",
            plan.rounds,
            if plan.rounds == 1 { "" } else { "s" },
            plan.dur.as_secs_f64()
        );
        Meta {
            date,
            machine,
            versions: versions.join(", "),
            method,
            http_client: if http_client.is_empty() {
                "wrk".into()
            } else {
                http_client
            },
            elapsed,
        }
    }
}

fn column_name(t: &str) -> String {
    match t {
        "nginx-64k" => "nginx (64k buf)".into(),
        "upgate-b" => "upgate (B)".into(),
        t => t.into(),
    }
}

fn is_peer(t: &str) -> bool {
    t.starts_with("nginx") || t == "haproxy"
}

impl Results {
    pub fn new(targets: &[String], tunnels: &[usize]) -> Results {
        let mut rows = vec![
            Metric::HsRate,
            Metric::HsCpu,
            Metric::SmallRate,
            Metric::SmallP50,
            Metric::SmallP99,
            Metric::SmallCpu,
            Metric::LargeRate,
            Metric::LargeP50,
            Metric::LargeP99,
            Metric::LargeCpu,
            Metric::RttP50,
            Metric::RttP99,
            Metric::RttCpu,
            Metric::HttpRate,
            Metric::HttpCpu,
        ];
        rows.extend(tunnels.iter().map(|&n| Metric::Rss(n)));
        Results {
            targets: targets.to_vec(),
            rows,
            values: HashMap::new(),
            errors: Vec::new(),
        }
    }

    pub fn add(&mut self, m: Metric, target: &str, v: f64) {
        self.values
            .entry((m, target.to_string()))
            .or_default()
            .push(v);
    }

    pub fn error(&mut self, target: &str, test: &str, count: u64, first: String) {
        self.errors.push((
            target.to_string(),
            format!("{target}, {test}: {count} failed operation(s), first: {first}"),
        ));
    }

    pub fn had_errors(&self, target: &str) -> bool {
        self.errors.iter().any(|(t, _)| t == target)
    }

    fn get(&self, m: Metric, t: &str) -> Option<f64> {
        self.values.get(&(m, t.to_string())).and_then(|v| median(v))
    }

    pub fn render(&self, meta: &Meta) -> String {
        let mut header = vec!["metric".to_string()];
        header.extend(self.targets.iter().map(|t| column_name(t)));
        let has_upgate = self.targets.iter().any(|t| t == "upgate");
        let has_peer = self.targets.iter().any(|t| is_peer(t));
        let ratio = has_upgate && has_peer;
        if ratio {
            header.push("upgate / best peer".into());
        }
        let mut rows = vec![header];
        for &m in &self.rows {
            let mut row = vec![m.label(&meta.http_client)];
            for t in &self.targets {
                row.push(self.get(m, t).map_or("–".into(), fmt_num));
            }
            if ratio {
                let best = self
                    .targets
                    .iter()
                    .filter(|t| is_peer(t))
                    .filter_map(|t| self.get(m, t).map(|v| (t, v)))
                    .reduce(|a, b| {
                        let b_better = if m.higher_is_better() {
                            b.1 > a.1
                        } else {
                            b.1 < a.1
                        };
                        if b_better {
                            b
                        } else {
                            a
                        }
                    });
                row.push(match (self.get(m, "upgate"), best) {
                    (Some(u), Some((bt, bv))) if bv > 0.0 => {
                        let r = u / bv;
                        let ok = if m.higher_is_better() {
                            r >= 1.0
                        } else {
                            r <= 1.0
                        };
                        format!(
                            "{:.2} {} ({})",
                            r,
                            if ok { "✓" } else { "✗" },
                            column_name(bt)
                        )
                    }
                    _ => "–".into(),
                });
            }
            rows.push(row);
        }

        // Aligned markdown: readable in a terminal and renderable as it is.
        let cols = rows[0].len();
        let width: Vec<usize> = (0..cols)
            .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
            .collect();
        let pad = |s: &str, w: usize, right: bool| {
            let fill = " ".repeat(w.saturating_sub(s.chars().count()));
            if right {
                format!("{fill}{s}")
            } else {
                format!("{s}{fill}")
            }
        };
        let mut out = String::new();
        let _ = writeln!(out, "### upgate vs nginx vs haproxy — {}\n", meta.date);
        let _ = writeln!(out, "Machine: {}.  ", meta.machine);
        let _ = writeln!(out, "Versions: {}.  ", meta.versions);
        let _ = writeln!(
            out,
            "Method: {}; bench run time {}.\n",
            meta.method,
            fmt_elapsed(meta.elapsed)
        );
        for (i, r) in rows.iter().enumerate() {
            let cells: Vec<String> = r
                .iter()
                .enumerate()
                .map(|(c, s)| pad(s, width[c], c > 0 && !(ratio && c == cols - 1)))
                .collect();
            let _ = writeln!(out, "| {} |", cells.join(" | "));
            if i == 0 {
                let seps: Vec<String> = (0..cols)
                    .map(|c| {
                        let right = c > 0 && !(ratio && c == cols - 1);
                        let d = "-".repeat(width[c].max(3) - 1);
                        if right {
                            format!("{d}:")
                        } else {
                            format!("{d}-")
                        }
                    })
                    .collect();
                let _ = writeln!(out, "| {} |", seps.join(" | "));
            }
        }
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "↑ higher is better, ↓ lower is better; ✓: upgate at or ahead of the best peer. \
             Proxy CPU per operation: utime+stime of all the proxy's processes and threads \
             (/proc/PID/stat; nginx: master + worker) over the measured interval, divided by \
             the operations completed in it. RSS per idle tunnel: VmRSS (nginx: master + worker) \
             with N idle WebSocket tunnels open minus before, divided by N, from a proxy \
             warmed up by opening and closing tunnels at the same concurrency (64 upgrades in \
             flight). Handshake: connect, upgrade, close frames both ways, TCP close. Echo: one \
             message in flight per connection; MB = 10⁶ payload bytes echoed. The backend (one \
             thread) and the client (one thread, zero masking key) are separate processes. \
             upgate runs the pass-through plugin on every upgrade, with RUST_LOG=warn; nginx and \
             haproxy use the canonical configs (bench/peers/); nginx (64k buf) adds \
             `proxy_buffer_size 64k; proxy_buffers 8 64k;`."
        );
        if !self.errors.is_empty() {
            let _ = writeln!(out, "\nErrors during the run:");
            for (_, e) in &self.errors {
                let _ = writeln!(out, "- {e}");
            }
        }
        out
    }
}

/// The 1-minute load average.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_default()
}

fn fmt_elapsed(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{} min {} s", s / 60, s % 60)
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }
}
