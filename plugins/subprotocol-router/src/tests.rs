//! Settings validation (golden errors) and the choice of upstream, natively.

use super::*;

fn settings_from(toml: &str) -> Result<Settings, String> {
    config::parse_str::<Settings>(toml)?.validate()
}

const ROUTES: &str = "[routes]\n\"mqtt\" = \"broker\"\n\"graphql-ws\" = \"api\"\n";

fn request(protocols: &[&str]) -> RequestHead {
    let mut req = RequestHead::new("GET", "/ws");
    req.append_header("Upgrade", "websocket");
    for p in protocols {
        req.append_header("Sec-WebSocket-Protocol", *p);
    }
    req
}

fn routed<'a>(protocol: &'a str, upstream: &'a str) -> Choice<'a> {
    Choice::Routed { protocol, upstream }
}

#[test]
fn bad_settings_are_refused_with_a_clear_reason() {
    let err = |toml: &str| settings_from(toml).expect_err("refused");
    let unknown = err("[route]\n\"mqtt\" = \"broker\"");
    assert!(unknown.contains("unknown field `route`"), "{unknown}");
    let not_a_table = err("routes = [\"mqtt\"]");
    assert!(
        not_a_table.starts_with("invalid plugin settings: "),
        "{not_a_table}"
    );
    assert_eq!(
        err(""),
        "routes is empty and there is no default: every upgrade would be refused"
    );
    assert_eq!(
        err("[routes]\n\"\" = \"broker\""),
        "routes: \"\" is not a valid subprotocol name (a non-empty token)"
    );
    assert_eq!(
        err("[routes]\n\"mqtt v5\" = \"broker\""),
        "routes: \"mqtt v5\" is not a valid subprotocol name (a non-empty token)"
    );
    assert_eq!(
        err("[routes]\n\"mqtt\" = \"\""),
        "routes.mqtt: \"\" is not a valid upstream name (a non-empty token)"
    );
    assert_eq!(
        err("[routes]\n\"mqtt\" = \"a,b\""),
        "routes.mqtt: \"a,b\" is not a valid upstream name (a non-empty token)"
    );
    assert_eq!(
        err(&format!("default = \"\"\n{ROUTES}")),
        "default: \"\" is not a valid upstream name (a non-empty token)"
    );
}

#[test]
fn a_default_alone_or_routes_alone_are_valid() {
    let only_default = settings_from("default = \"web\"").expect("valid settings");
    assert_eq!(
        only_default.choose(&request(&["mqtt"])),
        Choice::Default("web")
    );
    let only_routes = settings_from(ROUTES).expect("valid settings");
    assert_eq!(only_routes.default, None);
}

#[test]
fn the_first_offered_routed_protocol_wins() {
    let s = settings_from(ROUTES).expect("valid settings");
    assert_eq!(s.choose(&request(&["mqtt"])), routed("mqtt", "broker"));
    assert_eq!(
        s.choose(&request(&["graphql-ws, mqtt"])),
        routed("graphql-ws", "api")
    );
    assert_eq!(
        s.choose(&request(&["mqtt,graphql-ws"])),
        routed("mqtt", "broker")
    );
    assert_eq!(
        s.choose(&request(&["chat, v2.chat ,graphql-ws", "mqtt"])),
        routed("graphql-ws", "api")
    );
}

#[test]
fn protocols_are_read_across_header_lines_in_order() {
    let s = settings_from(ROUTES).expect("valid settings");
    assert_eq!(
        s.choose(&request(&["chat", "", "mqtt", "graphql-ws"])),
        routed("mqtt", "broker")
    );
    let mut req = request(&[]);
    req.append_header("sec-websocket-protocol", " , graphql-ws");
    assert_eq!(s.choose(&req), routed("graphql-ws", "api"));
}

#[test]
fn protocol_names_are_case_sensitive() {
    let s = settings_from(ROUTES).expect("valid settings");
    assert_eq!(s.choose(&request(&["MQTT"])), Choice::Unsupported);
    assert_eq!(s.choose(&request(&["mqtt5"])), Choice::Unsupported);
}

#[test]
fn unrouted_requests_go_to_the_default_or_are_refused() {
    let s = settings_from(ROUTES).expect("valid settings");
    assert_eq!(s.choose(&request(&[])), Choice::Unsupported);
    assert_eq!(s.choose(&request(&["chat"])), Choice::Unsupported);
    let mut binary = request(&[]);
    binary.append_header("Sec-WebSocket-Protocol", vec![0xff, b',', b'x']);
    assert_eq!(s.choose(&binary), Choice::Unsupported);

    let with_default = settings_from(&format!("default = \"web\"\n{ROUTES}")).expect("valid");
    assert_eq!(with_default.choose(&request(&[])), Choice::Default("web"));
    assert_eq!(
        with_default.choose(&request(&["chat"])),
        Choice::Default("web")
    );
    assert_eq!(
        with_default.choose(&request(&["chat", "mqtt"])),
        routed("mqtt", "broker")
    );
}

#[test]
fn the_refusal_says_why() {
    let resp = unsupported();
    assert_eq!(resp.head.status, 400);
    assert_eq!(resp.body, b"no supported subprotocol\n");
    assert_eq!(
        resp.head.header_str("content-type"),
        Some("text/plain; charset=utf-8")
    );
}
