//! Fixed-size digests of client-chosen keys (limit keys, idempotency keys), so a table
//! keyed by request data costs the same memory per entry whatever the client sends. The
//! digest is 128 bits from two independently, randomly keyed SipHash instances: a client
//! cannot predict it, so it cannot aim two keys at one entry, and accidental collisions
//! among 10^6 keys have a probability below 10^-26.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;

/// Digests keys for one table (keys are random per instance).
#[derive(Debug, Clone, Default)]
pub struct KeyDigester {
    a: RandomState,
    b: RandomState,
}

impl KeyDigester {
    /// A digester with fresh random keys.
    pub fn new() -> Self {
        Self::default()
    }

    /// The 128-bit digest of `key`.
    pub fn digest(&self, key: &[u8]) -> u128 {
        u128::from(self.a.hash_one(key)) << 64 | u128::from(self.b.hash_one(key))
    }
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
