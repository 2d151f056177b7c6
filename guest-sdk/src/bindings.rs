//! The generated bindings of `wit/plugin.wit` (world `plugin`): the only place
//! the SDK touches `wit_bindgen`. Everything here is re-exported under friendlier
//! paths by the rest of the crate; plugin authors never name this module.
//!
//! `unsafe_code` is allowed here (and only here) because the generated lifting,
//! lowering and export glue is unsafe by nature: it reads and writes the
//! canonical ABI's linear-memory layout.
#![allow(unsafe_code, missing_docs)]

wit_bindgen::generate!({
    path: "../wit",
    world: "plugin",
    // `export_plugin!` expands in the plugin's crate, so the export macro
    // must be reachable from there.
    pub_export_macro: true,
    // Records compare by value (handy in tests); types that own an
    // `exchange` resource cannot.
    additional_derives: [PartialEq, Eq],
    additional_derives_ignore: ["tunnel", "outcome"],
});
