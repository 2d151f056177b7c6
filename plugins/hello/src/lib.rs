//! Hello world: logs each upgrade, then passes it through. No settings.
use upgate_sdk::{export_plugin, log, passthrough, Outcome, Peer, Plugin, RequestHead};

struct Hello;

impl Plugin for Hello {
    fn on_upgrade(peer: Peer, req: RequestHead) -> Outcome {
        log::info(format!("hello, {} wants {}", peer.client_addr, req.target));
        passthrough(&peer, req)
    }
}

export_plugin!(Hello);
