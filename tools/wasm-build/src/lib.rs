//! Used by build scripts (`host/build.rs`, `tests/build.rs`) to compile plugin
//! crates of this workspace to wasm components, with their own target dir so
//! the outer cargo's lock is never waited on.
//!
//! Two targets, as [`Target`] says: `wasm32-unknown-unknown`, whose core module
//! is turned into a component here with `wit-component` (no WASI imports, one
//! core instance: the cheap kind to instantiate), and `wasm32-wasip2`, which
//! emits a component that imports WASI (what third-party plugins are built
//! for). Adds the rustup target first when it is missing (the machine sets
//! `RUSTUP_AUTO_INSTALL=0`). Every component lands in one folder, as
//! `<crate_name>.wasm`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The wasm target a plugin crate is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `wasm32-unknown-unknown`, componentized here: imports only the plugin
    /// world, so an instance is a single core instance.
    Unknown,
    /// `wasm32-wasip2`: a component that imports WASI (run with the host's
    /// deny-all WASI context).
    Wasip2,
}

impl Target {
    /// The rustc target triple.
    pub fn triple(self) -> &'static str {
        match self {
            Target::Unknown => "wasm32-unknown-unknown",
            Target::Wasip2 => "wasm32-wasip2",
        }
    }
}

/// Builds `packages` in release mode for `target`, and puts their components in
/// the folder this returns (the same folder for both targets), as
/// `<crate_name>.wasm`.
///
/// `workspace` is the workspace root. Panics with a readable message on failure
/// (this is a build script: a panic is how it reports).
pub fn build_plugins(workspace: &Path, target: Target, packages: &[&str]) -> PathBuf {
    let triple = target.triple();
    ensure_target(triple);
    let target_dir = workspace.join("target").join("wasm");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(workspace)
        .args(["build", "--release", "--target", triple])
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
        "building plugins {packages:?} for {triple} failed (see the output above)"
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
    let built = target_dir.join(triple).join("release");
    let out = target_dir.join("components");
    std::fs::create_dir_all(&out)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", out.display()));
    for p in packages {
        let file = format!("{}.wasm", p.replace('-', "_"));
        let (from, to) = (built.join(&file), out.join(&file));
        let bytes =
            std::fs::read(&from).unwrap_or_else(|e| panic!("cannot read {}: {e}", from.display()));
        let component = match target {
            Target::Wasip2 => bytes,
            Target::Unknown => componentize(&bytes)
                .unwrap_or_else(|e| panic!("cannot make a component of {file}: {e:#}")),
        };
        write_if_changed(&to, &component);
    }
    out
}

/// Turns a core module built with `wit_bindgen` (which embeds the world's type
/// information in a custom section) into a component.
pub fn componentize(core: &[u8]) -> anyhow::Result<Vec<u8>> {
    wit_component::ComponentEncoder::default()
        .module(core)?
        .validate(true)
        .encode()
}

/// Writes `bytes` to `path` unless it already holds them, so the file's mtime
/// only moves when the plugin changed. Writes a temporary file and renames it,
/// so a build script running at the same time never reads half a file.
fn write_if_changed(path: &Path, bytes: &[u8]) {
    if std::fs::read(path).is_ok_and(|old| old == bytes) {
        return;
    }
    let tmp = path.with_extension(format!("wasm.{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// Adds the rustup target when the sysroot lacks it.
fn ensure_target(triple: &str) {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let installed = sysroot
        .map(|s| Path::new(&s).join("lib/rustlib").join(triple).exists())
        .unwrap_or(false);
    if installed {
        return;
    }
    let status = Command::new("rustup")
        .args(["target", "add", triple])
        .status();
    match status {
        Ok(s) if s.success() => {}
        _ => panic!("the {triple} target is missing and `rustup target add {triple}` failed; run it by hand"),
    }
}
