//! Builds the plugins the integration tests load (the examples and the probe)
//! and points `UPGATE_TEST_PLUGINS` at the folder of their `.wasm` files. The
//! examples are built like the embedded pass-through plugin (componentized
//! `wasm32-unknown-unknown`); the probe for `wasm32-wasip2`, so the suite also
//! proves that plugins importing WASI load and run.

use upgate_wasm_build::{build_plugins, Target};

fn main() {
    let manifest = std::path::PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let workspace = manifest.parent().expect("tests/ sits in the workspace");
    build_plugins(
        workspace,
        Target::Unknown,
        &[
            "upgate-plugin-passthrough",
            "upgate-plugin-hello",
            "upgate-plugin-header-case",
            "upgate-plugin-token-auth",
            "upgate-plugin-origin-allow",
            "upgate-plugin-subprotocol-router",
            "upgate-plugin-failover",
        ],
    );
    let dir = build_plugins(workspace, Target::Wasip2, &["upgate-plugin-probe"]);
    println!("cargo:rustc-env=UPGATE_TEST_PLUGINS={}", dir.display());
}
