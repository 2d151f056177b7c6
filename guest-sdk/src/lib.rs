//! Write upgate plugins in Rust.
//!
//! A plugin is a wasm component (built with `cargo build --target wasm32-wasip2`)
//! that upgate runs, sandboxed, for every HTTP/1.1 upgrade request on its route.
//! Implement [`Plugin`] (every hook has a default) and export it with
//! [`export_plugin!`]; the crate type must be `cdylib`.
//!
//! ```no_run
//! use upgate_sdk::{export_plugin, log, passthrough, Outcome, Peer, Plugin, RequestHead};
//!
//! struct Hello;
//!
//! impl Plugin for Hello {
//!     fn on_upgrade(peer: Peer, req: RequestHead) -> Outcome {
//!         log::info(format!("hello, {}", peer.client_addr));
//!         passthrough(&peer, req)
//!     }
//! }
//!
//! export_plugin!(Hello);
//! ```
//!
//! # Map
//! - [`Plugin`], [`export_plugin!`]: the hooks and how a type becomes the plugin.
//! - [`passthrough`] and [`forward`]: the default behaviour, in reusable pieces.
//! - [`RequestHead`], [`ResponseHead`], [`Response`], [`Header`]: the heads, with
//!   case-insensitive header helpers that keep the spelling a plugin sets.
//! - [`upstream::send`]: talk to the upstream (the host holds the socket).
//! - [`config`]: the route's settings as TOML; [`log`]: the host's log.
//!
//! Each upgrade runs on a fresh instance: nothing a plugin keeps in memory
//! outlives the call, so read settings in each hook that needs them.

#![deny(missing_docs)]

#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
mod alloc;
#[doc(hidden)]
pub mod bindings;
pub mod config;
pub mod forward;
mod head;
pub mod log;
mod types;
pub mod upstream;

pub use bindings::upgate::plugin::types::Peer;
pub use bindings::upgate::plugin::upstream::UpstreamError;
pub use forward::{forward_request, passthrough};
pub use head::{list_elements, trim_ows};
#[doc(hidden)]
pub use types::on_upgrade as __on_upgrade;
pub use types::{Exchange, Header, Outcome, RequestHead, Response, ResponseHead, Tunnel};

/// Allocations come from the instance's initial memory first (see `alloc.rs`).
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
#[global_allocator]
static ALLOCATOR: alloc::Allocator = alloc::Allocator::new();

/// The hooks upgate calls; every one has a default, so `impl Plugin for T {}`
/// is the pass-through plugin. Hooks are associated functions: a fresh
/// instance serves each call, so there is no `self` to keep state in.
pub trait Plugin {
    /// Called when the plugin is loaded or reloaded, with the route's
    /// [`config`] available. Return an error (say what is wrong) to refuse bad
    /// settings: the plugin then does not serve, and the old version, if any,
    /// keeps serving.
    fn on_load() -> Result<(), String> {
        Ok(())
    }

    /// Called once per upgrade request. The default is [`passthrough`].
    fn on_upgrade(peer: Peer, req: RequestHead) -> Outcome {
        passthrough(&peer, req)
    }
}

/// Makes `$ty` (a type implementing [`Plugin`], named by a plain identifier)
/// the plugin this component exports. Use it once, in the plugin's crate.
#[macro_export]
macro_rules! export_plugin {
    ($ty:ident) => {
        impl $crate::bindings::Guest for $ty {
            fn on_load() -> ::core::result::Result<(), ::std::string::String> {
                <$ty as $crate::Plugin>::on_load()
            }

            fn on_upgrade(
                peer: $crate::Peer,
                req: $crate::bindings::upgate::plugin::types::RequestHead,
            ) -> $crate::bindings::upgate::plugin::decision::Outcome {
                $crate::__on_upgrade::<$ty>(peer, req)
            }
        }

        $crate::bindings::export!($ty with_types_in $crate::bindings);
    };
}
