//! upgate's default plugin, embedded in the upgate binary: forwards the client's
//! upgrade to the route's default upstream, tunnels a 101, relays anything else
//! (see [`upgate_sdk::passthrough`]). It takes no settings.

struct Passthrough;

impl upgate_sdk::Plugin for Passthrough {}

upgate_sdk::export_plugin!(Passthrough);
