//! The route's plugin settings: the `plugin_config` string of the route, which
//! plugins read as TOML. Each upgrade runs on a fresh instance, so a plugin reads
//! (and parses) its settings in every hook that needs them.

use serde::de::DeserializeOwned;

/// The settings string given in the route's config; `""` if none.
pub fn raw() -> String {
    crate::bindings::upgate::plugin::config::get()
}

/// Parses the route's settings as TOML into `T`; an empty string is an empty
/// table. Use `#[serde(deny_unknown_fields)]` on `T` to refuse typos, and call
/// this from [`Plugin::on_load`](crate::Plugin::on_load) so bad settings are
/// refused before any request.
pub fn parse<T: DeserializeOwned>() -> Result<T, String> {
    parse_str(&raw())
}

/// Parses `settings` as TOML into `T`, as [`parse`] does with the route's
/// settings (handy in native unit tests). The error says what is wrong and where.
pub fn parse_str<T: DeserializeOwned>(settings: &str) -> Result<T, String> {
    toml::from_str(settings).map_err(|e| {
        let detail = e.to_string();
        format!("invalid plugin settings: {}", detail.trim_end())
    })
}

#[cfg(test)]
mod tests {
    use super::parse_str;
    use std::collections::BTreeMap;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Settings {
        #[serde(default)]
        mode: Option<String>,
    }

    #[test]
    fn empty_settings_are_an_empty_table() {
        assert_eq!(parse_str::<Settings>(""), Ok(Settings { mode: None }));
        assert_eq!(
            parse_str::<BTreeMap<String, String>>(""),
            Ok(BTreeMap::new())
        );
    }

    #[test]
    fn fields_parse_and_unknown_ones_are_refused() {
        let s: Settings = parse_str("mode = \"x\"").expect("valid settings");
        assert_eq!(s.mode.as_deref(), Some("x"));
        let err = parse_str::<Settings>("mood = \"x\"").expect_err("typo refused");
        assert!(err.starts_with("invalid plugin settings: "), "{err}");
        assert!(err.contains("unknown field `mood`"), "{err}");
    }
}
