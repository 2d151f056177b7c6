//! Settings validation (golden errors) and the attempt policy with scripted
//! fake upstreams, natively.

use std::cell::RefCell;
use std::collections::BTreeMap;

use super::*;
use upgate_sdk::UpstreamError;

fn policy_from(toml: &str) -> Result<Policy, String> {
    config::parse_str::<Settings>(toml)?.validate()
}

/// A fake exchange: the upstream it came from and its status. Dropping one is
/// recorded, to check that an earlier failed answer is released.
#[derive(Debug, PartialEq, Eq)]
struct Fake<'a> {
    upstream: String,
    status: u16,
    drops: &'a RefCell<Vec<String>>,
}

impl Drop for Fake<'_> {
    fn drop(&mut self) {
        self.drops.borrow_mut().push(self.upstream.clone());
    }
}

/// What each scripted upstream answers.
enum Answer {
    Status(u16),
    Error(UpstreamError),
}

/// Runs `policy` against upstreams answering as `script` says; returns the
/// verdict as (upstream, status) or the error, the upstreams tried in order,
/// and the exchanges dropped before the verdict was read.
fn run(
    policy: &Policy,
    script: &[(&str, Answer)],
) -> (Verdict<(String, u16)>, Vec<String>, Vec<String>) {
    let script: BTreeMap<&str, &Answer> = script.iter().map(|(n, a)| (*n, a)).collect();
    let drops = RefCell::new(Vec::new());
    let mut tried = Vec::new();
    let verdict = policy.run(
        |name| {
            tried.push(name.to_owned());
            match script.get(name) {
                Some(Answer::Status(status)) => Ok(Fake {
                    upstream: name.to_owned(),
                    status: *status,
                    drops: &drops,
                }),
                Some(Answer::Error(err)) => Err(err.clone()),
                None => Err(UpstreamError::UnknownUpstream(name.to_owned())),
            }
        },
        |fake| fake.status,
    );
    let dropped = drops.borrow().clone();
    let verdict = match verdict {
        Verdict::Tunnel(f) => Verdict::Tunnel((f.upstream.clone(), f.status)),
        Verdict::Relay(f) => Verdict::Relay((f.upstream.clone(), f.status)),
        Verdict::Fail(e) => Verdict::Fail(e),
    };
    (verdict, tried, dropped)
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn refused() -> Answer {
    Answer::Error(UpstreamError::ConnectFailed("refused".into()))
}

#[test]
fn settings_parse_with_defaults() {
    let p = policy_from("upstreams = [\"a\", \"\", \"b-2\"]").expect("valid settings");
    assert_eq!(p.upstreams, names(&["a", "", "b-2"]));
    assert_eq!(p.retry_on, None);
    let p = policy_from("upstreams = [\"a\"]\nretry_on = []").expect("valid settings");
    assert_eq!(p.retry_on, Some(vec![]));
}

#[test]
fn bad_settings_are_refused_with_a_clear_reason() {
    let err = |toml: &str| policy_from(toml).expect_err("refused");
    let missing = err("");
    assert!(missing.contains("missing field `upstreams`"), "{missing}");
    let unknown = err("upstreams = [\"a\"]\nretry = [502]");
    assert!(unknown.contains("unknown field `retry`"), "{unknown}");
    let not_a_status = err("upstreams = [\"a\"]\nretry_on = [70000]");
    assert!(
        not_a_status.starts_with("invalid plugin settings: "),
        "{not_a_status}"
    );
    assert_eq!(
        err("upstreams = []"),
        "upstreams must name at least one upstream"
    );
    assert_eq!(
        err("upstreams = [\"a\", \"b c\"]"),
        "upstreams[1]: \"b c\" is not a valid upstream name (a token, or \"\" for the route's default)"
    );
    assert_eq!(
        err("upstreams = [\"a\"]\nretry_on = [502, 101]"),
        "retry_on[1]: 101 is success, it cannot count as failure"
    );
    assert_eq!(
        err("upstreams = [\"a\"]\nretry_on = [99]"),
        "retry_on[0]: 99 is not an HTTP status"
    );
    assert_eq!(
        err("upstreams = [\"a\"]\nretry_on = [600]"),
        "retry_on[0]: 600 is not an HTTP status"
    );
}

#[test]
fn failure_is_any_non_101_unless_retry_on_says_otherwise() {
    let any = policy_from("upstreams = [\"a\"]").expect("valid");
    assert!(!any.is_failure(101));
    for status in [200, 301, 400, 403, 426, 500, 502, 504] {
        assert!(any.is_failure(status), "{status}");
    }
    let listed = policy_from("upstreams = [\"a\"]\nretry_on = [502, 503]").expect("valid");
    assert!(listed.is_failure(502) && listed.is_failure(503));
    assert!(!listed.is_failure(101) && !listed.is_failure(403) && !listed.is_failure(504));
    let none = policy_from("upstreams = [\"a\"]\nretry_on = []").expect("valid");
    assert!(!none.is_failure(502));
}

#[test]
fn the_first_101_is_tunnelled_and_later_upstreams_are_not_tried() {
    let p = policy_from("upstreams = [\"a\", \"b\", \"c\"]").expect("valid");
    let (verdict, tried, dropped) = run(
        &p,
        &[("a", Answer::Status(101)), ("b", Answer::Status(101))],
    );
    assert_eq!(verdict, Verdict::Tunnel(("a".into(), 101)));
    assert_eq!(tried, names(&["a"]));
    assert!(dropped.is_empty());
}

#[test]
fn errors_and_failed_answers_move_on_to_the_next() {
    let p = policy_from("upstreams = [\"a\", \"b\", \"\"]").expect("valid");
    let (verdict, tried, dropped) = run(
        &p,
        &[
            ("a", refused()),
            ("b", Answer::Status(503)),
            ("", Answer::Status(101)),
        ],
    );
    assert_eq!(verdict, Verdict::Tunnel(("".into(), 101)));
    assert_eq!(tried, names(&["a", "b", ""]));
    assert_eq!(dropped, names(&["b"]), "the failed answer is released");
}

#[test]
fn when_all_fail_the_last_answer_is_relayed() {
    let p = policy_from("upstreams = [\"a\", \"b\", \"c\"]").expect("valid");
    let (verdict, tried, dropped) = run(
        &p,
        &[
            ("a", Answer::Status(502)),
            ("b", Answer::Status(503)),
            ("c", Answer::Error(UpstreamError::Timeout)),
        ],
    );
    assert_eq!(
        verdict,
        Verdict::Relay(("b".into(), 503)),
        "an answer beats a later error"
    );
    assert_eq!(tried, names(&["a", "b", "c"]));
    assert_eq!(dropped, names(&["a"]), "only the latest answer is kept");
}

#[test]
fn when_none_answers_the_last_error_is_returned() {
    let p = policy_from("upstreams = [\"a\", \"b\"]").expect("valid");
    let (verdict, tried, _) = run(
        &p,
        &[
            ("a", Answer::Error(UpstreamError::Timeout)),
            ("b", refused()),
        ],
    );
    assert_eq!(
        verdict,
        Verdict::Fail(UpstreamError::ConnectFailed("refused".into()))
    );
    assert_eq!(tried, names(&["a", "b"]));
    let (verdict, _, _) = run(&p, &[("a", refused())]);
    assert_eq!(
        verdict,
        Verdict::Fail(UpstreamError::UnknownUpstream("b".into()))
    );
}

#[test]
fn an_answer_not_in_retry_on_is_relayed_at_once() {
    let p = policy_from("upstreams = [\"a\", \"b\"]\nretry_on = [502, 503, 504]").expect("valid");
    let (verdict, tried, _) = run(
        &p,
        &[("a", Answer::Status(403)), ("b", Answer::Status(101))],
    );
    assert_eq!(verdict, Verdict::Relay(("a".into(), 403)));
    assert_eq!(tried, names(&["a"]));
    let (verdict, tried, _) = run(
        &p,
        &[("a", Answer::Status(502)), ("b", Answer::Status(101))],
    );
    assert_eq!(verdict, Verdict::Tunnel(("b".into(), 101)));
    assert_eq!(tried, names(&["a", "b"]));
}

#[test]
fn the_exchange_limit_ends_the_attempts() {
    let p = policy_from("upstreams = [\"a\", \"b\", \"c\"]").expect("valid");
    let (verdict, tried, _) = run(
        &p,
        &[
            ("a", Answer::Status(503)),
            ("b", Answer::Error(UpstreamError::LimitReached)),
            ("c", Answer::Status(101)),
        ],
    );
    assert_eq!(verdict, Verdict::Relay(("a".into(), 503)));
    assert_eq!(tried, names(&["a", "b"]));
}

#[test]
fn one_upstream_behaves_like_pass_through() {
    let p = policy_from("upstreams = [\"\"]").expect("valid");
    assert_eq!(
        run(&p, &[("", Answer::Status(101))]).0,
        Verdict::Tunnel(("".into(), 101))
    );
    assert_eq!(
        run(&p, &[("", Answer::Status(404))]).0,
        Verdict::Relay(("".into(), 404))
    );
    assert_eq!(
        run(&p, &[("", Answer::Error(UpstreamError::Timeout))]).0,
        Verdict::Fail(UpstreamError::Timeout)
    );
}
