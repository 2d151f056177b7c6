//! Builds the pass-through plugin from `plugins/passthrough` to a wasm component (for
//! `wasm32-unknown-unknown`, so it imports no WASI) and points
//! `UPGATE_PASSTHROUGH_WASM` at it, so the binary embeds its default plugin.

fn main() {
    let manifest = std::path::PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let workspace = manifest.parent().expect("host/ sits in the workspace");
    let dir = upgate_wasm_build::build_plugins(
        workspace,
        upgate_wasm_build::Target::Unknown,
        &["upgate-plugin-passthrough"],
    );
    let wasm = dir.join("upgate_plugin_passthrough.wasm");
    println!("cargo:rustc-env=UPGATE_PASSTHROUGH_WASM={}", wasm.display());
}
