//! `consumers[].key-auth:` — a consumer's API key, declared and checked by this plugin
//! (core hands it the blocks): at least 8 characters, unique across consumers.

use std::collections::HashMap;

use serde::Deserialize;
use sluice_core::config::decode::FieldError;
use sluice_core::plugin::CredentialBlock;

/// `consumers[].key-auth:`
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeyAuthCredential {
    /// The API key, usually from the environment: `key: "${BILLING_API_KEY}"`. Unique
    /// across consumers; at least 8 characters.
    pub key: String,
}

impl std::fmt::Debug for KeyAuthCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyAuthCredential { key: <redacted> }")
    }
}

/// Shortest API key accepted: anything shorter is guessable.
const MIN_KEY_LEN: usize = 8;

/// Check every consumer's block: it decodes, the key is long enough and unique.
pub fn check(blocks: &[CredentialBlock<'_>]) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut keys: HashMap<String, &str> = HashMap::new();
    for (b, k) in CredentialBlock::decode_all::<KeyAuthCredential>(blocks, &mut errors) {
        let at = b.at.key("key");
        if k.key.chars().count() < MIN_KEY_LEN {
            errors.push(FieldError::value(
                at,
                format!("an API key needs at least {MIN_KEY_LEN} characters"),
            ));
        } else if let Some(other) = keys.insert(k.key, b.consumer) {
            errors.push(FieldError::value(
                at,
                format!("consumer `{other}` has the same key"),
            ));
        }
    }
    errors
}
