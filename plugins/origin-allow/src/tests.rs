//! Settings validation (golden errors), origin parsing and matching (wildcards,
//! ports, case) and the check of whole requests, natively.

use super::*;

fn policy_from(toml: &str) -> Result<Policy, String> {
    config::parse_str::<Settings>(toml)?.validate()
}

fn request(origins: &[&str]) -> RequestHead {
    let mut req = RequestHead::new("GET", "/ws");
    req.append_header("Host", "app.example.com");
    for o in origins {
        req.append_header("Origin", *o);
    }
    req
}

/// Whether `origin` (a header value) matches the pattern `pattern`.
fn matches(pattern: &str, origin: &str) -> bool {
    let pattern = Pattern::parse(pattern).expect("valid pattern");
    Origin::parse(origin.as_bytes()).is_some_and(|o| pattern.matches(&o))
}

#[test]
fn defaults_apply() {
    let p = policy_from("origins = [\"https://a.example\"]").expect("valid settings");
    assert_eq!(
        (p.allow_missing, p.status, p.patterns.len()),
        (false, 403, 1)
    );
}

#[test]
fn bad_settings_are_refused_with_a_clear_reason() {
    let err = |toml: &str| policy_from(toml).expect_err("refused");
    let missing = err("");
    assert!(missing.contains("missing field `origins`"), "{missing}");
    let unknown = err("origins = [\"https://a\"]\nallow_mising = true");
    assert!(
        unknown.contains("unknown field `allow_mising`"),
        "{unknown}"
    );
    assert_eq!(err("origins = []"), "origins must hold at least one origin");
    assert_eq!(
        err("origins = [\"https://a\", \"app.example.com\"]"),
        "origins[1] \"app.example.com\": expected scheme://host[:port]"
    );
    assert_eq!(
        err("origins = [\"https://a.example/\"]"),
        "origins[0] \"https://a.example/\": an origin has no path, query or fragment (no trailing `/`)"
    );
    assert_eq!(
        err("origins = [\"https://app.*.example\"]"),
        "origins[0] \"https://app.*.example\": a wildcard may only open the host, as in `*.example.com`"
    );
    assert_eq!(
        err("origins = [\"https://*\"]"),
        "origins[0] \"https://*\": a wildcard may only open the host, as in `*.example.com`"
    );
    assert_eq!(
        err("origins = [\"https://a:99999\"]"),
        "origins[0] \"https://a:99999\": port \"99999\" is not a number from 1 to 65535"
    );
    assert_eq!(
        err("origins = [\"https://a:\"]"),
        "origins[0] \"https://a:\": port \"\" is not a number from 1 to 65535"
    );
    assert_eq!(
        err("origins = [\"https://u@a\"]"),
        "origins[0] \"https://u@a\": an origin has no user info"
    );
    assert_eq!(
        err("origins = [\"https://a b\"]"),
        "origins[0] \"https://a b\": \"a b\" is not a host name or IP address"
    );
    assert_eq!(
        err("origins = [\"1http://a\"]"),
        "origins[0] \"1http://a\": \"1http\" is not a scheme"
    );
    assert_eq!(
        err("origins = [\"https://a\"]\nstatus = 200"),
        "status 200 is not a client or server error (400..=599)"
    );
}

#[test]
fn exact_origins_match_scheme_host_and_port() {
    assert!(matches(
        "https://app.example.com",
        "https://app.example.com"
    ));
    assert!(!matches(
        "https://app.example.com",
        "http://app.example.com"
    ));
    assert!(!matches("https://app.example.com", "https://example.com"));
    assert!(!matches(
        "https://app.example.com",
        "https://app.example.com.evil"
    ));
    assert!(!matches(
        "https://app.example.com",
        "https://evilapp.example.com"
    ));
    assert!(!matches(
        "https://app.example.com",
        "https://app.example.com:8443"
    ));
}

#[test]
fn scheme_and_host_ignore_case() {
    assert!(matches(
        "HTTPS://App.Example.COM",
        "https://app.example.com"
    ));
    assert!(matches(
        "https://app.example.com",
        "Https://APP.example.com"
    ));
}

#[test]
fn ports_must_be_equal_with_defaults_left_out() {
    assert!(matches("http://localhost:3000", "http://localhost:3000"));
    assert!(!matches("http://localhost:3000", "http://localhost:3001"));
    assert!(!matches("http://localhost:3000", "http://localhost"));
    assert!(matches("https://a.example", "https://a.example:443"));
    assert!(matches("https://a.example:443", "https://a.example"));
    assert!(matches("http://a.example:80", "http://a.example"));
    assert!(!matches("http://a.example", "http://a.example:443"));
    assert!(matches("wss://a.example", "wss://a.example:443"));
    assert!(matches("app://a.example:443", "app://a.example:443"));
    assert!(!matches("app://a.example:443", "app://a.example"));
}

#[test]
fn wildcards_match_subdomains_only() {
    let p = "https://*.example.com";
    assert!(matches(p, "https://app.example.com"));
    assert!(matches(p, "https://a.b.example.com"));
    assert!(matches(p, "https://APP.Example.com"));
    assert!(!matches(p, "https://example.com"));
    assert!(!matches(p, "https://evilexample.com"));
    assert!(!matches(p, "https://example.com.evil.net"));
    assert!(!matches(p, "http://app.example.com"));
    assert!(!matches(p, "https://app.example.com:8443"));
    assert!(matches(
        "https://*.example.com:8443",
        "https://app.example.com:8443"
    ));
    assert!(!matches(
        "https://*.example.com:8443",
        "https://app.example.com"
    ));
}

#[test]
fn ip_literals_are_origins_too() {
    assert!(matches("http://127.0.0.1:8080", "http://127.0.0.1:8080"));
    assert!(matches("http://[::1]:8080", "http://[::1]:8080"));
    assert!(matches("http://[::1]", "http://[::1]:80"));
    assert!(!matches("http://[::1]:8080", "http://[::1]"));
    assert!(!matches("http://[::1]:8080", "http://[::2]:8080"));
}

#[test]
fn odd_origin_values_never_match() {
    for origin in [
        "null",
        "",
        "https://",
        "https://app.example.com/",
        "https://app.example.com/path",
        "https://user@app.example.com",
        "https://*.example.com",
        "https://app.example.com.",
        "https://app..example.com",
    ] {
        assert!(Origin::parse(origin.as_bytes()).is_none(), "{origin:?}");
    }
    assert!(Origin::parse(&[0xff, b'a']).is_none());
    assert!(matches("https://a.example", " https://a.example \t"));
}

#[test]
fn requests_pass_only_with_one_allowed_origin() {
    let p = policy_from("origins = [\"https://app.example.com\", \"https://*.example.org\"]")
        .expect("valid settings");
    assert_eq!(p.check(&request(&["https://app.example.com"])), Ok(()));
    assert_eq!(p.check(&request(&["https://x.example.org"])), Ok(()));
    assert_eq!(
        p.check(&request(&["https://evil.example"])),
        Err("origin \"https://evil.example\" not allowed".to_owned())
    );
    assert_eq!(
        p.check(&request(&["null"])),
        Err("origin \"null\" not allowed".to_owned())
    );
    assert_eq!(p.check(&request(&[])), Err("no Origin header".to_owned()));
    assert_eq!(
        p.check(&request(&[
            "https://app.example.com",
            "https://app.example.com"
        ])),
        Err("more than one Origin header".to_owned())
    );
}

#[test]
fn a_missing_origin_passes_only_when_allowed() {
    let p = policy_from("origins = [\"https://a.example\"]\nallow_missing = true")
        .expect("valid settings");
    assert_eq!(p.check(&request(&[])), Ok(()));
    assert!(p.check(&request(&["https://b.example"])).is_err());
    assert!(p
        .check(&request(&["https://a.example", "https://a.example"]))
        .is_err());
}

#[test]
fn the_rejection_has_the_configured_status() {
    let p = policy_from("origins = [\"https://a.example\"]\nstatus = 401").expect("valid");
    let resp = p.rejection();
    assert_eq!(resp.head.status, 401);
    assert_eq!(resp.body, b"origin not allowed\n");
    assert_eq!(
        resp.head.header_str("content-type"),
        Some("text/plain; charset=utf-8")
    );
}
