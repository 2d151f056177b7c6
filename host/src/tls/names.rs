//! Server names as TLS listeners use them: checking the names a config lists
//! (`a.example`, `*.example.com`), and a [`NameMap`] that finds the entry for
//! a client's SNI. A wildcard matches any subdomain, at any depth, like a
//! route's `host`; an exact name beats a wildcard, a longer wildcard a shorter one.

use std::collections::HashMap;

/// Entries by server name: exact names and `*.` wildcards.
#[derive(Clone, Debug)]
pub struct NameMap<T> {
    /// Exact names, lower case.
    exact: HashMap<String, T>,
    /// Wildcards as their suffix with the dot (`.example.com`), longest first.
    wildcards: Vec<(String, T)>,
}

impl<T> Default for NameMap<T> {
    fn default() -> Self {
        NameMap {
            exact: HashMap::new(),
            wildcards: Vec::new(),
        }
    }
}

impl<T> NameMap<T> {
    /// Adds `name` (checked with [`check_name`], lower case); `false` if it was already there.
    pub fn insert(&mut self, name: &str, value: T) -> bool {
        let name = name.to_ascii_lowercase();
        match name.strip_prefix('*') {
            Some(suffix) => {
                if self.wildcards.iter().any(|(s, _)| s == suffix) {
                    return false;
                }
                let at = self
                    .wildcards
                    .iter()
                    .position(|(s, _)| s.len() < suffix.len())
                    .unwrap_or(self.wildcards.len());
                self.wildcards.insert(at, (suffix.to_string(), value));
                true
            }
            None => {
                if self.exact.contains_key(&name) {
                    return false;
                }
                self.exact.insert(name, value);
                true
            }
        }
    }

    /// The entry for `name` (any case): exact first, then the longest matching wildcard.
    pub fn get(&self, name: &str) -> Option<&T> {
        let lower;
        let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = name.to_ascii_lowercase();
            lower.as_str()
        } else {
            name
        };
        if let Some(v) = self.exact.get(name) {
            return Some(v);
        }
        self.wildcards
            .iter()
            .find(|(suffix, _)| name.len() > suffix.len() && name.ends_with(suffix.as_str()))
            .map(|(_, v)| v)
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcards.is_empty()
    }
}

/// Checks a name a config lists: a DNS name (letters, digits, `-`, dots between
/// labels), optionally starting with `*.`.
pub fn check_name(name: &str) -> Result<(), String> {
    let rest = name.strip_prefix("*.").unwrap_or(name);
    let ok = !rest.is_empty()
        && rest.len() <= 253
        && rest.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a server name (a DNS name, or `*.` and a DNS name)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_beats_wildcard_and_longer_wildcard_wins() {
        let mut m = NameMap::default();
        assert!(m.insert("*.example.com", 1));
        assert!(m.insert("*.chat.example.com", 2));
        assert!(m.insert("Chat.Example.com", 3));
        assert!(!m.insert("chat.example.com", 4));
        assert!(!m.insert("*.example.com", 5));
        assert_eq!(m.get("chat.example.com"), Some(&3));
        assert_eq!(m.get("CHAT.example.COM"), Some(&3));
        assert_eq!(m.get("eu.chat.example.com"), Some(&2));
        assert_eq!(m.get("a.b.example.com"), Some(&1));
        assert_eq!(m.get("example.com"), None);
        assert_eq!(m.get("badexample.com"), None);
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("a.example").is_ok());
        assert!(check_name("*.example.com").is_ok());
        assert!(check_name("localhost").is_ok());
        for bad in [
            "",
            "*",
            "*.",
            "a..b",
            "a b",
            "a.example.",
            "*a.example",
            "a.*.b",
            "a_b",
        ] {
            assert!(check_name(bad).is_err(), "{bad} accepted");
        }
    }
}
