//! Starting what is measured: the echo backend (this binary's `backend`
//! subcommand, its own process), upgate, nginx and haproxy with the canonical
//! configs of `bench/peers/`, and a smoke check of each before it is measured.

use anyhow::{bail, Context};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::load::{self, Target};
use crate::procs::{find_program, free_addr, Proc};
use crate::RunArgs;

const NGINX_CONF: &str = include_str!("../peers/nginx.conf");
const HAPROXY_CFG: &str = include_str!("../peers/haproxy.cfg");
const NGINX_64K_LINE: &str = "# proxy_buffer_size 64k;";

pub fn start_backend(tmp: &Path) -> anyhow::Result<(Proc, SocketAddr)> {
    let addr = free_addr()?;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(["backend", "--listen", &addr.to_string()]);
    let mut p = Proc::spawn("backend", cmd, tmp)?;
    if let Err(e) = p.wait_listening(addr) {
        bail!(
            "the backend does not work: {e}; its output:\n{}",
            p.output()
        );
    }
    Ok((p, addr))
}

pub async fn start_target(
    name: &str,
    args: &RunArgs,
    backend: SocketAddr,
    tmp: &Path,
) -> anyhow::Result<Target> {
    if name == "direct" {
        return Ok(Target {
            name: name.into(),
            addr: backend,
            proc: None,
        });
    }
    let addr = free_addr()?;
    let program = |p: &str| {
        find_program(p).with_context(|| {
            format!(
                "{name}: `{p}` not found: install it (scripts/bench runs `apt-get install -y \
                 nginx haproxy`), pass its path, or leave `{name}` out of --targets"
            )
        })
    };
    let mut proc = match name {
        "upgate" | "upgate-b" => {
            let path = match (name, &args.upgate_b) {
                ("upgate-b", Some(b)) => b,
                _ => &args.upgate,
            };
            let bin = path.canonicalize().with_context(|| {
                format!(
                    "{name}: no binary at {} (build it: cargo build --release -p upgate)",
                    path.display()
                )
            })?;
            let mut cmd = Command::new(bin);
            let workers = match (name, &args.upgate_b_workers) {
                ("upgate-b", Some(w)) => w,
                _ => &args.upgate_workers,
            };
            let workers = (workers != "default").then_some(workers);
            match &args.upgate_keepalive {
                None => {
                    cmd.args([
                        "--listen",
                        &addr.to_string(),
                        "--upstream",
                        &backend.to_string(),
                    ]);
                    if let Some(n) = workers {
                        cmd.args(["--workers", n]);
                    }
                    &mut cmd
                }
                Some(interval) => {
                    let conf = tmp.join(format!("{name}.toml"));
                    let workers = workers.map_or(String::new(), |n| format!("workers = {n}\n"));
                    std::fs::write(
                        &conf,
                        format!(
                            "{workers}[[listeners]]\naddress = \"{addr}\"\n\n[upstreams.backend]\n\
                             addresses = [\"{backend}\"]\n\n[[routes]]\nupstream = \"backend\"\n\
                             keepalive_interval = \"{interval}\"\n"
                        ),
                    )?;
                    cmd.arg("--config").arg(conf)
                }
            }
            .env("RUST_LOG", &args.upgate_log)
            .env("NO_COLOR", "1")
            .current_dir(tmp);
            Proc::spawn(name, cmd, tmp)?
        }
        "nginx" | "nginx-64k" => {
            let prefix = tmp.join(name);
            std::fs::create_dir_all(&prefix)?;
            let mut conf = NGINX_CONF
                .replace("@PREFIX@", &prefix.display().to_string())
                .replace("@LISTEN@", &addr.to_string())
                .replace("@BACKEND@", &backend.to_string());
            if name == "nginx-64k" {
                if !conf.contains(NGINX_64K_LINE) {
                    bail!("bench/peers/nginx.conf no longer has the line `{NGINX_64K_LINE}`");
                }
                // The line alone fails nginx's check that `proxy_busy_buffers_size` (2 × 64k
                // by default then) is below all `proxy_buffers` (8 × 4k) minus one, so the
                // response buffers grow too; upgraded connections use `proxy_buffer_size` only.
                conf = conf.replace(
                    NGINX_64K_LINE,
                    "proxy_buffer_size 64k; proxy_buffers 8 64k;",
                );
            }
            let file = prefix.join("nginx.conf");
            std::fs::write(&file, conf)?;
            let mut cmd = Command::new(program(&args.nginx)?);
            cmd.arg("-p")
                .arg(&prefix)
                .arg("-c")
                .arg(&file)
                .arg("-e")
                .arg(prefix.join("error.log"));
            Proc::spawn(name, cmd, tmp)?
        }
        "haproxy" => {
            let cfg = HAPROXY_CFG
                .replace("@LISTEN@", &addr.to_string())
                .replace("@BACKEND@", &backend.to_string());
            let file = tmp.join("haproxy.cfg");
            std::fs::write(&file, cfg)?;
            let mut cmd = Command::new(program(&args.haproxy)?);
            cmd.arg("-db").arg("-f").arg(&file);
            Proc::spawn(name, cmd, tmp)?
        }
        _ => unreachable!("targets are checked"),
    };
    let mut failed = proc.wait_listening(addr).err();
    if failed.is_none() {
        // Listening is not yet working: one upgrade, one echo and one plain GET through it.
        let t = Target {
            name: name.into(),
            addr,
            proc: None,
        };
        failed = check(&t).await.err();
    }
    if let Some(e) = failed {
        let mut out = proc.output();
        let err_log = tmp.join(name).join("error.log");
        if let Ok(s) = std::fs::read_to_string(&err_log).map(|s| s.trim().to_string()) {
            // nginx prints start-up errors to stderr and to error.log: show the log when it
            // says something else.
            let said = |l: &str| {
                let msg = l.split_once('#').and_then(|(_, r)| r.split_once(": "));
                out.contains(msg.map_or(l, |(_, m)| m))
            };
            if !s.is_empty() && !s.lines().all(said) {
                out.push_str(&format!("\n{}:\n{s}", err_log.display()));
            }
        }
        bail!("{name} does not work: {e:#}; its output:\n{out}");
    }
    Ok(Target {
        name: name.into(),
        addr,
        proc: Some(proc),
    })
}

/// One upgrade, one echo and one plain GET through a target.
pub async fn check(t: &Target) -> anyhow::Result<()> {
    let mut m = load::echo(t, 1, 64, Duration::from_millis(50)).await;
    if m.ops == 0 || m.errors > 0 {
        bail!(
            "WebSocket echo through it failed: {}",
            m.first_error.take().unwrap_or_default()
        );
    }
    let mut h = load::http_builtin(t, 1, Duration::from_millis(50)).await;
    if h.ops == 0 || h.errors > 0 {
        bail!(
            "plain GET through it failed: {}",
            h.first_error.take().unwrap_or_default()
        );
    }
    Ok(())
}
