//! The `upgate` binary's command line: `upgate check` on golden config files
//! (a bad file in, the exact message out, exit code 2), and a good file passing.
//! Set `UPGATE_BLESS=1` to rewrite the `.expected` files from the current output.

use std::path::Path;
use std::process::Command;

fn golden_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden"))
}

fn check(file: &str) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_upgate"))
        .args(["check", "--config", file])
        .current_dir(golden_dir())
        .env("RUST_LOG", "off")
        .output()
        .expect("run upgate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn good_config_passes_check() {
    let (code, stdout, stderr) = check("ok.toml");
    assert_eq!(code, 0, "stderr: {stderr}");
    assert_eq!(stdout, "ok.toml: ok (1 listeners, 1 upstreams, 1 routes)\n");
}

#[test]
fn good_tls_config_passes_check() {
    let (code, stdout, stderr) = check("ok-tls.toml");
    assert_eq!(code, 0, "stderr: {stderr}");
    assert_eq!(
        stdout,
        "ok-tls.toml: ok (3 listeners, 3 upstreams, 1 routes)\n"
    );
}

#[test]
fn bad_configs_name_the_key_and_exit_2() {
    let mut failures = Vec::new();
    let mut cases = 0;
    for entry in std::fs::read_dir(golden_dir()).expect("golden dir") {
        let path = entry.expect("dir entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if !name.ends_with(".toml") || name.starts_with("ok") {
            continue;
        }
        cases += 1;
        let (code, _, stderr) = check(&name);
        let expected_path = path.with_extension("expected");
        if std::env::var_os("UPGATE_BLESS").is_some() {
            std::fs::write(&expected_path, &stderr).expect("bless");
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if code != 2 || stderr != expected {
            failures.push(format!(
                "{name}: exit {code}\n--- got\n{stderr}--- expected\n{expected}"
            ));
        }
    }
    assert!(cases >= 7, "only {cases} golden cases found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn quick_mode_rejects_a_bad_upstream() {
    let out = Command::new(env!("CARGO_BIN_EXE_upgate"))
        .args(["--listen", "127.0.0.1:0", "--upstream", "nowhere"])
        .env("RUST_LOG", "off")
        .output()
        .expect("run upgate");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "upgate: command line: upstreams.upstream.addresses[0]: `nowhere` is not a host:port address (no port)\n"
    );
}
