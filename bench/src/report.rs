//! The figures of a run and the one table they are printed as (markdown, so that it can be
//! pasted into the README as it is), under the heading [`crate::meta`] collects.

use crate::meta::Meta;
use crate::{HANDSHAKE_CONC, HTTP_CONNS, LARGE, SMALL};
use std::collections::HashMap;
use std::fmt::Write;
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

/// Per metric and target, one figure per round (with the round it was taken in).
pub struct Results {
    targets: Vec<String>,
    rows: Vec<Metric>,
    values: HashMap<(Metric, String), Vec<(usize, f64)>>,
    errors: Vec<(String, String)>,
    /// The round figures are being added for.
    round: usize,
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
            round: 0,
        }
    }

    /// Figures added from now on were taken in round `r`.
    pub fn set_round(&mut self, r: usize) {
        self.round = r;
    }

    pub fn add(&mut self, m: Metric, target: &str, v: f64) {
        self.values
            .entry((m, target.to_string()))
            .or_default()
            .push((self.round, v));
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
        let v = self.values.get(&(m, t.to_string()))?;
        median(&v.iter().map(|&(_, x)| x).collect::<Vec<_>>())
    }

    /// In how many rounds upgate was at or ahead of `peer` (the best peer by
    /// median), and in how many both were measured: the targets of a round
    /// run back to back, so this pairs figures taken under the same load on
    /// the machine, which medians taken apart do not.
    fn rounds_ahead(&self, m: Metric, peer: &str) -> Option<(usize, usize)> {
        let upgate = self.values.get(&(m, "upgate".to_string()))?;
        let peer = self.values.get(&(m, peer.to_string()))?;
        let (mut ahead, mut paired) = (0, 0);
        for &(round, u) in upgate {
            if let Some(&(_, p)) = peer.iter().find(|(r, _)| *r == round) {
                paired += 1;
                ahead += usize::from(if m.higher_is_better() { u >= p } else { u <= p });
            }
        }
        (paired > 0).then_some((ahead, paired))
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
                        let rounds = match self.rounds_ahead(m, bt) {
                            Some((a, n)) if n > 1 => format!("; ahead {a}/{n}"),
                            _ => String::new(),
                        };
                        format!(
                            "{:.2} {} ({}{rounds})",
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
             Ahead k/n: the rounds in which upgate was at or ahead of that peer in the same \
             round (a round runs the targets back to back, so this pairs figures taken under \
             the same load on the machine). \
             Proxy CPU per operation: utime+stime of all the proxy's processes and threads \
             (/proc/PID/stat; nginx: master + worker) over the measured interval, divided by \
             the operations completed in it. RSS per idle tunnel: VmRSS (nginx: master + worker) \
             with N idle WebSocket tunnels open minus before, divided by N, from a proxy \
             warmed up by opening and closing tunnels at the same concurrency (64 upgrades in \
             flight). Handshake: connect, upgrade, close frames both ways, TCP close. Echo: one \
             message in flight per connection; MB = 10⁶ payload bytes echoed. The backend (one \
             thread) and the client (one thread, zero masking key) are separate processes. \
             upgate runs the pass-through plugin on every upgrade, with RUST_LOG=warn and one \
             worker (`--workers 1`, unless `--upgate-workers` says otherwise), as nginx \
             (`worker_processes 1`) and haproxy (`nbthread 1`) run one; nginx and haproxy use \
             the canonical configs (bench/peers/); nginx (64k buf) adds \
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
    fn rounds_ahead_pair_figures_of_the_same_round() {
        let targets: Vec<String> = ["upgate", "nginx", "haproxy"].map(String::from).into();
        let mut r = Results::new(&targets, &[]);
        // CPU (lower is better): at or ahead of nginx in rounds 0 and 2.
        for (round, [u, n, h]) in [[10.0, 11.0, 12.0], [10.0, 9.0, 12.0], [20.0, 25.0, 21.0]]
            .into_iter()
            .enumerate()
        {
            r.set_round(round);
            r.add(Metric::HsCpu, "upgate", u);
            r.add(Metric::HsCpu, "nginx", n);
            r.add(Metric::HsCpu, "haproxy", h);
        }
        assert_eq!(r.rounds_ahead(Metric::HsCpu, "nginx"), Some((2, 3)));
        assert_eq!(r.rounds_ahead(Metric::HsCpu, "haproxy"), Some((3, 3)));
        // A rate (higher is better); a round without the peer's figure is not
        // paired (nor judged against another peer).
        r.set_round(0);
        r.add(Metric::HsRate, "upgate", 5.0);
        r.add(Metric::HsRate, "nginx", 4.0);
        r.set_round(1);
        r.add(Metric::HsRate, "upgate", 5.0);
        r.add(Metric::HsRate, "haproxy", 1.0);
        assert_eq!(r.rounds_ahead(Metric::HsRate, "nginx"), Some((1, 1)));
        assert_eq!(r.rounds_ahead(Metric::SmallCpu, "nginx"), None);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }
}
