//! Builds the plugins the integration tests load (the examples and the probe)
//! and points `UPGATE_TEST_PLUGINS` at the folder of their `.wasm` files.

fn main() {
    let manifest = std::path::PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let workspace = manifest.parent().expect("tests/ sits in the workspace");
    let dir = upgate_wasm_build::build_plugins(
        workspace,
        &[
            "upgate-plugin-passthrough",
            "upgate-plugin-hello",
            "upgate-plugin-header-case",
            "upgate-plugin-token-auth",
            "upgate-plugin-origin-allow",
            "upgate-plugin-subprotocol-router",
            "upgate-plugin-failover",
            "upgate-plugin-probe",
        ],
    );
    println!("cargo:rustc-env=UPGATE_TEST_PLUGINS={}", dir.display());
}
