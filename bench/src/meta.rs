//! What a run was, for the table's heading: date, machine, load average, versions of upgate
//! and the peers (asked of their binaries and of git), method and run time. `main` collects it
//! once at the end of a run; [`crate::report`] prints it above the table.

use crate::procs::{find_program, version_line};
use crate::{Plan, RunArgs};
use std::process::Command;
use std::time::Duration;

/// What the run was, for the table's heading.
pub struct Meta {
    /// When the run ended, UTC.
    pub date: String,
    /// CPU, cores, memory, kernel and load average: what the figures depend on.
    pub machine: String,
    /// upgate (with its git revision) and the peers measured.
    pub versions: String,
    /// Rounds and test duration.
    pub method: String,
    /// The HTTP load generator (`wrk N` or the in-repo client), named in its row's label.
    pub http_client: String,
    /// Wall time of the whole run.
    pub elapsed: Duration,
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

/// The 1-minute load average.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_default()
}
