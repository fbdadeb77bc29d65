//! Human units in the config: durations (`250ms`, `5s`, `1m`) and byte sizes
//! (`512KiB`, `64MiB`, `1GiB`, or a plain number of bytes).

use super::error::InvalidValue;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A duration written with a unit: `250ms`, `5s`, `1m30s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected a duration such as `5s` or `250ms`"))?;
        parse_duration(&s)
            .map(HumanDuration)
            .map_err(serde::de::Error::custom)
    }
}

/// Written back as a `5s` / `250ms` string (the admin API shows effective configs).
impl serde::Serialize for HumanDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// Parse `5s`, `250ms`, `1m30s`.
pub fn parse_duration(s: &str) -> Result<Duration, InvalidValue> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid duration {s:?} ({e}); write e.g. `5s` or `250ms`").into())
}

/// A size in bytes: a plain integer, or a number with `B`, `KiB`, `MiB`, `GiB`
/// (also `KB`/`MB`/`GB`, decimal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected a size such as `64MiB` or a number of bytes")
        })? {
            Raw::N(n) => Ok(ByteSize(n)),
            Raw::S(s) => parse_bytes(&s)
                .map(ByteSize)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// Written back as a number of bytes.
impl serde::Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes", self.0)
    }
}

/// Parse `512KiB`, `64MiB`, `1GB`, `1000`.
pub fn parse_bytes(s: &str) -> Result<u64, InvalidValue> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?}; write e.g. `64MiB` or `1000`"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => {
            return Err(
                format!("unknown size unit {other:?} in {s:?} (use B, KiB, MiB, GiB)").into(),
            )
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large").into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("5").is_err());
        assert_eq!(parse_bytes("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("1000").unwrap(), 1000);
        assert_eq!(parse_bytes("2KB").unwrap(), 2000);
        assert!(parse_bytes("5XB").is_err());
        assert!(parse_bytes("MiB").is_err());
    }

    #[test]
    fn deserializes_from_yaml() {
        let d: HumanDuration = serde_yaml::from_str("\"2s\"").unwrap();
        assert_eq!(d.0, Duration::from_secs(2));
        let b: ByteSize = serde_yaml::from_str("4096").unwrap();
        assert_eq!(b.0, 4096);
        let b: ByteSize = serde_yaml::from_str("1MiB").unwrap();
        assert_eq!(b.0, 1 << 20);
        assert!(serde_yaml::from_str::<HumanDuration>("5").is_err());
    }
}
