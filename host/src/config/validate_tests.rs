//! Tests of config validation: defaults, and errors that name the key.

use super::*;

fn parse(text: &str) -> Result<Config, String> {
    Config::parse(text, "t.toml", Path::new("/etc/upgate")).map_err(|e| e.to_string())
}

const OK: &str = r#"
[[listeners]]
address = "127.0.0.1:8080"
[upstreams.app]
addresses = ["127.0.0.1:9000", "backend.local:9001"]
[[routes]]
upstream = "app"
plugin = "auth.wasm"
plugin_config = { token = "x" }
"#;

#[test]
fn applies_defaults() {
    let c = parse(OK).unwrap();
    let r = &c.routes[0];
    assert_eq!(r.name, "route-0");
    assert_eq!(r.path_prefix, "/");
    assert_eq!(r.allowed_upgrades, vec!["websocket"]);
    assert_eq!(r.idle_timeout, DEFAULT_IDLE_TIMEOUT);
    assert_eq!(r.plugin, PluginSource::File("/etc/upgate/auth.wasm".into()));
    assert_eq!(r.plugin_config.trim(), "token = \"x\"");
    assert_eq!(c.workers, crate::workers::default_count());
    assert_eq!(c.upstreams["app"].dns_refresh, DEFAULT_DNS_REFRESH);
}

#[test]
fn dns_refresh_is_a_duration_and_zero_is_allowed() {
    let with = |v: &str| OK.replace("[[routes]]", &format!("dns_refresh = {v}\n[[routes]]"));
    let c = parse(&with("\"0s\"")).unwrap();
    assert_eq!(c.upstreams["app"].dns_refresh, Duration::ZERO);
    let c = parse(&with("\"1m\"")).unwrap();
    assert_eq!(c.upstreams["app"].dns_refresh, Duration::from_secs(60));
    let err = parse(&with("\"soon\"")).unwrap_err();
    assert!(err.contains("dns_refresh = \"soon\""), "{err}");
}

#[test]
fn workers_between_one_and_the_maximum() {
    assert_eq!(parse(&format!("workers = 3\n{OK}")).unwrap().workers, 3);
    for bad in ["0", "-1", "257"] {
        assert_eq!(
            parse(&format!("workers = {bad}\n{OK}")).unwrap_err(),
            "t.toml: workers: must be between 1 and 256 (worker threads)",
            "workers = {bad}"
        );
    }
}

#[test]
fn names_the_key() {
    let bad = OK.replace("upstream = \"app\"", "upstream = \"nope\"");
    assert_eq!(
        parse(&bad).unwrap_err(),
        "t.toml: routes[0].upstream: no upstream named `nope` (defined: app)"
    );
    let bad = OK.replace("backend.local:9001", "backend.local:port");
    assert_eq!(
        parse(&bad).unwrap_err(),
        "t.toml: upstreams.app.addresses[1]: `backend.local:port` is not a host:port address (bad port `port`)"
    );
    let bad = OK.replace("127.0.0.1:8080", "localhost:8080");
    assert!(parse(&bad).unwrap_err().contains("listeners[0].address"));
}

#[test]
fn unknown_keys_are_refused() {
    let bad = OK.replace("plugin = ", "plugins = ");
    assert!(parse(&bad).unwrap_err().contains("unknown field `plugins`"));
}
