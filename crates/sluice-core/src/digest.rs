//! Fixed-size digests of client-chosen keys (limit keys, idempotency keys), so a table
//! keyed by request data costs the same memory per entry whatever the client sends. The
//! digest is 128 bits from two SipHash-2-4 instances with independent random 128-bit
//! keys (from the operating system's generator): a client cannot predict it, so it
//! cannot aim two keys at one entry, and accidental collisions among 10^6 keys have a
//! probability below 10^-26.
//!
//! Also SHA-256 and hex, for what leaves the process (keys in a shared store, the
//! hash of the configuration file).

use std::hash::Hasher;

/// Digests keys for one table (keys are random per instance).
#[derive(Debug, Clone)]
pub struct KeyDigester {
    keys: [u64; 4],
}

impl Default for KeyDigester {
    fn default() -> Self {
        let (a, b) = (
            uuid::Uuid::new_v4().as_u64_pair(),
            uuid::Uuid::new_v4().as_u64_pair(),
        );
        Self {
            keys: [a.0, a.1, b.0, b.1],
        }
    }
}

impl KeyDigester {
    /// A digester with fresh random keys.
    pub fn new() -> Self {
        Self::default()
    }

    /// The 128-bit digest of `key`.
    pub fn digest(&self, key: &[u8]) -> u128 {
        // `SipHasher` is deprecated only because its algorithm may change between Rust
        // versions; these digests never leave the process.
        #[allow(deprecated)]
        let hash = |k0, k1| {
            let mut h = std::hash::SipHasher::new_with_keys(k0, k1);
            h.write(key);
            h.finish()
        };
        u128::from(hash(self.keys[0], self.keys[1])) << 64
            | u128::from(hash(self.keys[2], self.keys[3]))
    }
}

/// The SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(data).into()
}

/// `bytes` as lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_keys_equal_digests_distinct_keys_distinct() {
        let d = KeyDigester::new();
        assert_eq!(d.digest(b"client-a"), d.digest(b"client-a"));
        let mut seen = std::collections::HashSet::new();
        for i in 0..100_000u32 {
            assert!(seen.insert(d.digest(&i.to_le_bytes())));
        }
        assert_ne!(
            KeyDigester::new().digest(b"x"),
            d.digest(b"x"),
            "random per table"
        );
    }
}
