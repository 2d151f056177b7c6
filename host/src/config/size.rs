//! Byte sizes for the config file: `"16MiB"`, `"512KiB"`, `"1GiB"`, `"4096"` (bytes),
//! also written as a plain TOML integer.

use serde::{Deserialize, Deserializer};

/// Parses a size: a whole number with an optional unit `B`, `KiB`, `MiB`, `GiB` (or `KB`/`MB`/`GB`, also powers of 1024).
pub fn parse(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: usize = digits
        .parse()
        .map_err(|_| format!("`{text}` does not start with a whole number"))?;
    let mult: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "KB" | "K" => 1 << 10,
        "MiB" | "MB" | "M" => 1 << 20,
        "GiB" | "GB" | "G" => 1 << 30,
        other => {
            return Err(format!(
                "`{other}` is not a size unit (use B, KiB, MiB or GiB)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// serde adapter for `Option<usize>` sizes written as a string or an integer.
pub mod serde_opt {
    use super::*;

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(usize),
        Text(String),
    }

    /// Reads an optional size.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
        match Option::<Raw>::deserialize(d)? {
            None => Ok(None),
            Some(Raw::Int(n)) => Ok(Some(n)),
            Some(Raw::Text(t)) => parse(&t).map(Some).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes() {
        assert_eq!(parse("4096"), Ok(4096));
        assert_eq!(parse("16MiB"), Ok(16 << 20));
        assert_eq!(parse("512 KiB"), Ok(512 << 10));
        assert_eq!(parse("1GiB"), Ok(1 << 30));
        assert!(parse("12 parsecs").unwrap_err().contains("not a size unit"));
        assert!(parse("MiB").unwrap_err().contains("whole number"));
    }
}
