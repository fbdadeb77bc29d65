//! The event id: an opaque token with the next offset of every partition of the stream
//! (after the event it labels), so `Last-Event-ID` resumes exactly after it on every
//! partition. Format: `v1.` + base64url(`partition=offset;...`). Tokens from clients are
//! untrusted: length-capped and strictly parsed.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Longest token accepted.
pub const MAX_LEN: usize = 4096;

/// Next offset per partition.
pub type Positions = BTreeMap<i32, i64>;

/// Encode positions as a token.
pub fn encode(p: &Positions) -> String {
    let text: Vec<String> = p
        .iter()
        .map(|(part, off)| format!("{part}={off}"))
        .collect();
    format!("v1.{}", URL_SAFE_NO_PAD.encode(text.join(";")))
}

/// Decode a token; `None` when it is not one of ours.
pub fn decode(token: &str) -> Option<Positions> {
    if token.len() > MAX_LEN {
        return None;
    }
    let raw = URL_SAFE_NO_PAD
        .decode(token.trim().strip_prefix("v1.")?)
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let mut out = Positions::new();
    if text.is_empty() {
        return Some(out);
    }
    for pair in text.split(';') {
        let (p, o) = pair.split_once('=')?;
        let (p, o): (i32, i64) = (p.parse().ok()?, o.parse().ok()?);
        if p < 0 || o < 0 || out.insert(p, o).is_some() {
            return None;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let p: Positions = [(0, 15), (1, 0), (2, 7)].into_iter().collect();
        let t = encode(&p);
        assert!(t.starts_with("v1."));
        assert_eq!(decode(&t), Some(p));
        assert_eq!(decode(&encode(&Positions::new())), Some(Positions::new()));
        for bad in [
            "",
            "v2.MD0x",
            "v1.!!!",
            "v1.bm9wZQ",
            &format!("v1.{}", URL_SAFE_NO_PAD.encode("0=-1")),
            &format!("v1.{}", URL_SAFE_NO_PAD.encode("0=1;0=2")),
            &"v1.".repeat(2000),
        ] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }
}
