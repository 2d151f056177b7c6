//! Settings validation (golden errors), token lookup and query stripping, natively.

use super::token::{accepted, from_header, query_values, strip_query};
use super::*;

fn settings_from(toml: &str) -> Result<Settings, String> {
    config::parse_str::<Settings>(toml)?.validate()
}

fn request(target: &str, headers: &[(&str, &str)]) -> RequestHead {
    let mut req = RequestHead::new("GET", target);
    for (n, v) in headers {
        req.append_header(n, *v);
    }
    req
}

#[test]
fn defaults_apply() {
    let s = settings_from("tokens = [\"t\"]").expect("valid settings");
    assert_eq!(
        (s.header.as_str(), s.query.as_str(), s.strip_query),
        ("Authorization", "access_token", true)
    );
}

#[test]
fn bad_settings_are_refused_with_a_clear_reason() {
    let err = |toml: &str| settings_from(toml).expect_err("refused");
    let missing = err("");
    assert!(missing.contains("missing field `tokens`"), "{missing}");
    let unknown = err("tokens = [\"t\"]\nheaders = \"X\"");
    assert!(unknown.contains("unknown field `headers`"), "{unknown}");
    assert_eq!(err("tokens = []"), "tokens must hold at least one token");
    assert_eq!(
        err("tokens = [\"a\", \"b c\"]"),
        "tokens[1] is empty or holds whitespace"
    );
    assert_eq!(
        err("tokens = [\"\"]"),
        "tokens[0] is empty or holds whitespace"
    );
    assert_eq!(
        err("tokens = [\"t\"]\nheader = \"\"\nquery = \"\""),
        "header and query are both empty: a client could not present a token"
    );
    assert_eq!(
        err("tokens = [\"t\"]\nheader = \"X Token\""),
        "header \"X Token\" is not a valid header name"
    );
}

#[test]
fn tokens_are_taken_from_bearer_or_bare_header_values() {
    assert_eq!(from_header(b"Bearer abc"), b"abc");
    assert_eq!(from_header(b" bearer \t abc "), b"abc");
    assert_eq!(from_header(b"abc"), b"abc");
    assert_eq!(from_header(b"Bearerabc"), b"Bearerabc");
    assert_eq!(from_header(b"Basic abc"), b"Basic abc");
}

#[test]
fn comparison_needs_an_exact_match() {
    let tokens = vec!["s3cret".to_owned(), "other".to_owned()];
    assert!(accepted(b"s3cret", &tokens));
    assert!(accepted(b"other", &tokens));
    assert!(!accepted(b"s3cre", &tokens));
    assert!(!accepted(b"s3crets", &tokens));
    assert!(!accepted(b"", &tokens));
}

#[test]
fn query_values_are_percent_decoded() {
    let values: Vec<_> = query_values(
        "/ws?a=1&access_token=a%2Bb%3d&access%5Ftoken=x+y&z",
        "access_token",
    )
    .collect();
    assert_eq!(values, [b"a+b=".to_vec(), b"x+y".to_vec()]);
    assert_eq!(
        query_values("/ws?access_token=%zz%4", "access_token").next(),
        Some(b"%zz%4".to_vec())
    );
    assert_eq!(query_values("/ws", "access_token").count(), 0);
}

#[test]
fn stripping_removes_only_the_token_parameter() {
    assert_eq!(
        strip_query("/ws?a=1&access_token=t&b", "access_token"),
        "/ws?a=1&b"
    );
    assert_eq!(strip_query("/ws?access_token=t", "access_token"), "/ws");
    assert_eq!(strip_query("/ws?access_token", "access_token"), "/ws");
    assert_eq!(strip_query("/ws?x=%20", "access_token"), "/ws?x=%20");
    assert_eq!(strip_query("/ws", "access_token"), "/ws");
}

#[test]
fn requests_pass_only_with_an_accepted_token() {
    let s = settings_from("tokens = [\"t1\", \"t2\"]").expect("valid settings");
    assert_eq!(
        s.check(&request("/", &[("authorization", "Bearer t2")])),
        Ok(())
    );
    assert_eq!(s.check(&request("/?access_token=t1", &[])), Ok(()));
    assert_eq!(
        s.check(&request("/", &[("Authorization", "Bearer nope")])),
        Err("invalid token")
    );
    assert_eq!(
        s.check(&request("/?access_token=", &[])),
        Err("invalid token")
    );
    assert_eq!(s.check(&request("/", &[])), Err("no token"));
    let only_query = settings_from("tokens = [\"t1\"]\nheader = \"\"").expect("valid settings");
    assert_eq!(
        only_query.check(&request("/", &[("Authorization", "t1")])),
        Err("no token")
    );
    let custom =
        settings_from("tokens = [\"t1\"]\nheader = \"X-Token\"\nquery = \"k\"").expect("valid");
    assert_eq!(custom.check(&request("/", &[("x-token", "t1")])), Ok(()));
    assert_eq!(custom.check(&request("/?k=t1", &[])), Ok(()));
}

#[test]
fn the_rejection_names_the_scheme_and_realm() {
    let resp = unauthorized();
    assert_eq!(resp.head.status, 401);
    assert_eq!(
        resp.head.header_str("www-authenticate"),
        Some("Bearer realm=\"upgate\"")
    );
    assert_eq!(
        resp.head.header_str("content-type"),
        Some("text/plain; charset=utf-8")
    );
}
