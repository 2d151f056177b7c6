//! Used by build scripts (`host/build.rs`, `tests/build.rs`) to compile plugin
//! crates of this workspace to `wasm32-wasip2` components, with their own target
//! dir so the outer cargo's lock is never waited on. Adds the `wasm32-wasip2`
//! rustup target first when it is missing (the machine sets `RUSTUP_AUTO_INSTALL=0`).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The wasm target plugins are built for.
pub const TARGET: &str = "wasm32-wasip2";

/// Builds `packages` in release mode; returns the folder holding `<crate_name>.wasm` files.
///
/// `workspace` is the workspace root. Panics with a readable message on failure
/// (this is a build script: a panic is how it reports).
pub fn build_plugins(workspace: &Path, packages: &[&str]) -> PathBuf {
    ensure_target();
    let target_dir = workspace.join("target").join("wasm");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args(["build", "--release", "--target", TARGET])
        .arg("--target-dir")
        .arg(&target_dir);
    for p in packages {
        cmd.args(["-p", p]);
    }
    // The outer build's settings must not leak into the wasm build.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_PROFILE_RELEASE_DEBUG",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo for the wasm plugins: {e}"));
    assert!(
        status.success(),
        "building plugins {packages:?} for {TARGET} failed (see the output above)"
    );
    for dir in [
        "guest-sdk",
        "wit",
        "plugins",
        "tests/plugin-probe",
        ".cargo/config.toml",
    ] {
        println!("cargo:rerun-if-changed={}", workspace.join(dir).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("Cargo.lock").display()
    );
    target_dir.join(TARGET).join("release")
}

/// Adds the rustup target when the sysroot lacks it.
fn ensure_target() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let installed = sysroot
        .map(|s| Path::new(&s).join("lib/rustlib").join(TARGET).exists())
        .unwrap_or(false);
    if installed {
        return;
    }
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status();
    match status {
        Ok(s) if s.success() => {}
        _ => panic!("the {TARGET} target is missing and `rustup target add {TARGET}` failed; run it by hand"),
    }
}
