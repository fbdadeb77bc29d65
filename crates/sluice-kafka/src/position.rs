//! Resume positions as a signed token (kafka-sse's event id, kafka-websocket's position
//! token): the next offset of every partition of the stream (after the record it labels),
//! so a client resumes exactly after it on every partition. Format: `v2.` + base64url(`partition=offset;...`) + `.` +
//! base64url(first 16 bytes of HMAC-SHA256(key, route id, topic, positions)).
//!
//! Tokens from clients are untrusted: length-capped, strictly parsed, and accepted only
//! with a valid signature of one of the route's `token_keys` (the first signs; the
//! others are still accepted, for rotation) for this route and topic. Without
//! `token_keys`, a key made at process start signs: tokens then do not survive a
//! restart and are not accepted by another instance.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use once_cell::sync::Lazy;
use sha2::Sha256;

/// Longest token accepted.
pub const MAX_LEN: usize = 4096;
/// Bytes of the HMAC kept in a token.
const TAG_LEN: usize = 16;

/// Next offset per partition.
pub type Positions = BTreeMap<i32, i64>;

/// This process's key, for routes without `token_keys`.
static PROCESS_KEY: Lazy<Vec<u8>> = Lazy::new(|| {
    [uuid::Uuid::new_v4(), uuid::Uuid::new_v4()]
        .iter()
        .flat_map(|u| u.into_bytes())
        .collect()
});

/// Signs and checks the tokens of one route.
#[derive(Clone)]
pub struct Signer {
    /// Signing key first, then keys still accepted.
    keys: Vec<Vec<u8>>,
    /// Route id and topic: a token is valid for one stream only.
    context: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl Signer {
    /// A signer for `route`/`topic` with `keys` (empty: the process key).
    pub fn new(keys: &[String], route: &str, topic: &str) -> Self {
        let keys = if keys.is_empty() {
            vec![PROCESS_KEY.clone()]
        } else {
            keys.iter().map(|k| k.as_bytes().to_vec()).collect()
        };
        Self {
            keys,
            context: format!("sluice-sse-v2\n{route}\n{topic}\n").into_bytes(),
        }
    }

    fn tag(&self, key: &[u8], payload: &[u8]) -> Option<Vec<u8>> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
        mac.update(&self.context);
        mac.update(payload);
        Some(mac.finalize().into_bytes()[..TAG_LEN].to_vec())
    }

    /// Encode positions as a signed token.
    pub fn encode(&self, p: &Positions) -> String {
        let text: Vec<String> = p
            .iter()
            .map(|(part, off)| format!("{part}={off}"))
            .collect();
        let payload = text.join(";");
        let tag = self
            .keys
            .first()
            .and_then(|k| self.tag(k, payload.as_bytes()))
            .unwrap_or_default();
        format!(
            "v2.{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// Decode a token; `None` when it is malformed or not signed by one of our keys for
    /// this stream.
    pub fn decode(&self, token: &str) -> Option<Positions> {
        if token.len() > MAX_LEN {
            return None;
        }
        let (payload, tag) = token.trim().strip_prefix("v2.")?.split_once('.')?;
        let raw = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        let signed = self.keys.iter().any(|k| {
            Hmac::<Sha256>::new_from_slice(k).is_ok_and(|mut mac| {
                mac.update(&self.context);
                mac.update(&raw);
                mac.verify_truncated_left(&tag).is_ok() && tag.len() == TAG_LEN
            })
        });
        if !signed {
            return None;
        }
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
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn signer(keys: &[&str]) -> Signer {
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        Signer::new(&keys, "stream", "orders")
    }

    #[test]
    fn round_trips_and_rejects_garbage() {
        let s = signer(&["k1-0123456789abcdef"]);
        let p: Positions = [(0, 15), (1, 0), (2, 7)].into_iter().collect();
        let t = s.encode(&p);
        assert!(t.starts_with("v2."));
        assert_eq!(s.decode(&t), Some(p));
        assert_eq!(
            s.decode(&s.encode(&Positions::new())),
            Some(Positions::new())
        );
        for bad in [
            "",
            "v2.MD0x",
            "v1.MD0x",
            "v2.!!!.AAAA",
            &format!("v2.{}.", URL_SAFE_NO_PAD.encode("0=-1")),
            &"v2.".repeat(2000),
        ] {
            assert_eq!(s.decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn forged_or_foreign_tokens_are_refused() {
        let s = signer(&["k1-0123456789abcdef"]);
        let p: Positions = [(0, 0), (1, 0)].into_iter().collect();
        // A hand-made token with offset 0 everywhere (no or a wrong signature).
        let forged = format!(
            "v2.{}.{}",
            URL_SAFE_NO_PAD.encode("0=0;1=0"),
            "AAAAAAAAAAAAAAAAAAAAAA"
        );
        assert_eq!(s.decode(&forged), None);
        assert_eq!(s.decode(&signer(&["another-key-0123456"]).encode(&p)), None);
        // Signed for another route or topic.
        let other = Signer::new(&["k1-0123456789abcdef".into()], "other", "orders");
        assert_eq!(s.decode(&other.encode(&p)), None);
        // A shortened tag is refused.
        let t = s.encode(&p);
        let short = &t[..t.len() - 4];
        assert_eq!(s.decode(short), None);
    }

    #[test]
    fn rotation_keeps_old_tokens_valid() {
        let p: Positions = [(0, 42)].into_iter().collect();
        let old = signer(&["old-key-0123456789"]).encode(&p);
        let rotated = signer(&["new-key-0123456789", "old-key-0123456789"]);
        assert_eq!(rotated.decode(&old), Some(p.clone()));
        assert_eq!(
            signer(&["new-key-0123456789"]).decode(&rotated.encode(&p)),
            Some(p)
        );
        // Without keys, one process key signs every route's tokens.
        assert_eq!(
            Signer::new(&[], "stream", "orders")
                .decode(
                    &Signer::new(&[], "stream", "orders").encode(&[(0, 1)].into_iter().collect())
                )
                .map(|p| p[&0]),
            Some(1)
        );
    }
}
