//! The attempt policy: send the upgrade to each upstream in turn until one
//! switches protocols or gives an answer that does not count as a failure, and
//! decide what to do with what came back. Generic over the exchange so it can
//! be tested natively with fake exchanges (the host's `exchange` resource only
//! exists inside upgate).

use upgate_sdk::forward::describe;
use upgate_sdk::{log, UpstreamError};

/// Which upstreams to try, and which answers send the request on to the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Policy {
    /// Upstream names in the order tried; `""` is the route's default. Never
    /// empty (settings validation sees to it).
    pub(crate) upstreams: Vec<String>,
    /// Statuses that count as failure; `None`: every status but 101.
    pub(crate) retry_on: Option<Vec<u16>>,
}

/// What the attempts came to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict<E> {
    /// An upstream answered 101: tunnel this exchange.
    Tunnel(E),
    /// Relay this non-101 exchange: an answer not counted as failure, or the
    /// last failed answer when every upstream failed.
    Relay(E),
    /// No upstream gave an answer at all: this was the last error.
    Fail(UpstreamError),
}

/// How an upstream name reads in the log.
fn label(name: &str) -> String {
    if name.is_empty() {
        "the route's default upstream".to_owned()
    } else {
        format!("upstream {name:?}")
    }
}

impl Policy {
    /// Whether an answer with `status` (not 101) sends the request on to the
    /// next upstream.
    pub(crate) fn is_failure(&self, status: u16) -> bool {
        status != 101
            && self
                .retry_on
                .as_ref()
                .is_none_or(|statuses| statuses.contains(&status))
    }

    /// Tries the upstreams in order with `send`, reading an exchange's status
    /// with `status`:
    ///
    /// - a 101 is tunnelled at once, an answer that is not a failure relayed at once;
    /// - a failed answer is kept (dropping the one kept before) and the next tried;
    /// - an error is kept and the next tried, except `limit-reached`, which ends
    ///   the attempts (every later send would fail the same way);
    /// - when all have failed, the kept answer is relayed if there is one, else
    ///   the last error is returned.
    pub(crate) fn run<E>(
        &self,
        mut send: impl FnMut(&str) -> Result<E, UpstreamError>,
        status: impl Fn(&E) -> u16,
    ) -> Verdict<E> {
        let total = self.upstreams.len();
        let mut kept: Option<E> = None;
        let mut last_error = None;
        for (i, name) in self.upstreams.iter().enumerate() {
            let attempt = format!("attempt {}/{total} to {}", i + 1, label(name));
            match send(name) {
                Ok(exchange) => {
                    let status = status(&exchange);
                    if status == 101 {
                        log::debug(format!("{attempt}: 101, tunnelling"));
                        return Verdict::Tunnel(exchange);
                    }
                    if !self.is_failure(status) {
                        log::debug(format!("{attempt}: {status}, relaying it"));
                        return Verdict::Relay(exchange);
                    }
                    log::debug(format!("{attempt}: {status}, counted as a failure"));
                    kept = Some(exchange);
                }
                Err(err) => {
                    log::debug(format!("{attempt}: {}", describe(&err)));
                    let stop = err == UpstreamError::LimitReached;
                    last_error = Some(err);
                    if stop {
                        break;
                    }
                }
            }
        }
        match (kept, last_error) {
            (Some(exchange), _) => {
                log::warn(format!(
                    "every upstream failed; relaying the last answer ({})",
                    status(&exchange)
                ));
                Verdict::Relay(exchange)
            }
            (None, Some(err)) => {
                log::warn(format!("every upstream failed; last: {}", describe(&err)));
                Verdict::Fail(err)
            }
            // Unreachable with validated settings (at least one upstream).
            (None, None) => Verdict::Fail(UpstreamError::UnknownUpstream(String::new())),
        }
    }
}
