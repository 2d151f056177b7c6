//! Settings validation (golden errors) and the rewrite, natively.

use super::*;

fn rules_from(toml: &str) -> Result<Rules, String> {
    config::parse_str::<Settings>(toml)?.validate()
}

fn upstream_request(rules: &Rules) -> Vec<(String, String)> {
    let mut up = RequestHead::new("GET", "/ws");
    for (n, v) in [
        ("host", "backend"),
        ("connection", "Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("X-Forwarded-For", "10.0.0.1"),
    ] {
        up.append_header(n, v);
    }
    rules.apply(&mut up);
    let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
    up.headers
        .iter()
        .map(|h| (h.name.clone(), text(&h.value)))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_only_normalise_the_connection_value() {
    let rules = rules_from("").expect("empty settings are valid");
    assert_eq!(rules.style, NameStyle::Preserve);
    assert_eq!(
        upstream_request(&rules),
        pairs(&[
            ("host", "backend"),
            ("connection", "Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("X-Forwarded-For", "10.0.0.1"),
        ])
    );
}

#[test]
fn values_styles_and_exact_names_apply_in_order() {
    let rules = rules_from(
        r#"
        upgrade_value = "WebSocket"
        connection_value = "upgrade"
        header_names = "title"
        [names]
        "SEC-WEBSOCKET-KEY" = "Sec-WebSocket-Key"
        "upgrade" = "UPGRADE"
        "#,
    )
    .expect("valid settings");
    assert_eq!(
        upstream_request(&rules),
        pairs(&[
            ("Host", "backend"),
            ("Connection", "upgrade"),
            ("UPGRADE", "WebSocket"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("X-Forwarded-For", "10.0.0.1"),
        ])
    );
    let lower = rules_from("header_names = \"lower\"").expect("valid settings");
    assert_eq!(upstream_request(&lower)[4].0, "x-forwarded-for");
}

#[test]
fn values_are_left_alone_without_an_upgrade() {
    let rules = rules_from("upgrade_value = \"WebSocket\"").expect("valid settings");
    let mut up = RequestHead::new("GET", "/");
    up.append_header("Connection", "close");
    rules.apply(&mut up);
    assert_eq!(up.header_str("connection"), Some("close"));
}

#[test]
fn title_case_capitalises_each_word() {
    assert_eq!(title_case("sec-websocket-KEY"), "Sec-Websocket-Key");
    assert_eq!(title_case("x--y"), "X--Y");
}

#[test]
fn bad_settings_are_refused_with_a_clear_reason() {
    let err = |toml: &str| rules_from(toml).expect_err("refused");
    let unknown = err("upgrade = \"x\"");
    assert!(unknown.contains("unknown field `upgrade`"), "{unknown}");
    let style = err("header_names = \"upper\"");
    assert!(style.contains("unknown variant `upper`"), "{style}");
    assert_eq!(
        err("connection_value = \"keep-alive\""),
        "connection_value \"keep-alive\" must hold the token \"upgrade\""
    );
    assert_eq!(
        err("upgrade_value = \"web\\r\\nX: 1\""),
        "upgrade_value \"web\\r\\nX: 1\" is not a valid header value"
    );
    assert_eq!(
        err("[names]\n\"upgrade\" = \"Connection\""),
        "names: \"upgrade\" = \"Connection\" names another header; only the case may change"
    );
    assert_eq!(
        err("[names]\n\"x y\" = \"X Y\""),
        "names: \"x y\" = \"X Y\" is not a valid header name"
    );
    let twice = err("[names]\n\"Upgrade\" = \"UPGRADE\"\n\"upgrade\" = \"upgrade\"");
    assert!(twice.contains("given twice"), "{twice}");
}
