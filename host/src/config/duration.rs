//! Human-friendly durations for the config file: `"250ms"`, `"5s"`, `"2m"`, `"1h"`, `"1d"`.

use std::time::Duration;

/// The longest duration a setting holds; longer ones are read as this. A
/// hundred years is as good as never, and a clock reading plus it still fits
/// the clock, so no deadline made from a setting can overflow (`Instant +
/// Duration` panics when it does).
pub const LONGEST: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Parses a duration written as an integer followed by a unit (`ms`, `s`, `m`,
/// `h`, `d`); at most [`LONGEST`].
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}` has no unit (use ms, s, m, h or d)"))?;
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` does not start with a whole number"))?;
    let secs = match unit.trim() {
        "ms" => return Ok(Duration::from_millis(n).min(LONGEST)),
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => {
            return Err(format!(
                "`{other}` is not a duration unit (use ms, s, m, h or d)"
            ))
        }
    };
    n.checked_mul(secs)
        .map(|secs| Duration::from_secs(secs).min(LONGEST))
        .ok_or_else(|| format!("`{text}` is too long"))
}

/// Formats a duration the way [`parse`] reads it (used in logs and `upgate check`).
pub fn format(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        ms if ms % 86_400_000 == 0 && ms > 0 => format!("{}d", ms / 86_400_000),
        ms if ms % 3_600_000 == 0 && ms > 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 && ms > 0 => format!("{}m", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

/// serde adapter: `#[serde(with = "duration::serde_opt")]` on `Option<Duration>` fields.
pub mod serde_opt {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    /// Reads an optional duration string.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| super::parse(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse(" 1d "), Ok(Duration::from_secs(86_400)));
    }

    #[test]
    fn rejects_bad_input() {
        assert!(parse("5").unwrap_err().contains("no unit"));
        assert!(parse("s").unwrap_err().contains("whole number"));
        assert!(parse("5 years")
            .unwrap_err()
            .contains("not a duration unit"));
    }

    #[test]
    fn caps_at_a_hundred_years() {
        assert_eq!(parse("36500d"), Ok(LONGEST));
        assert_eq!(parse("10000000000000000000s"), Ok(LONGEST));
        assert_eq!(parse("18446744073709551615ms"), Ok(LONGEST));
        assert_eq!(parse("36499d"), Ok(Duration::from_secs(36_499 * 86_400)));
        // Any clock reading plus the longest still fits the clock.
        let _ = std::time::Instant::now() + LONGEST;
    }

    #[test]
    fn formats_round_trip() {
        for s in ["250ms", "5s", "2m", "1h", "1d", "0s"] {
            assert_eq!(format(parse(s).unwrap()), s);
        }
    }
}
