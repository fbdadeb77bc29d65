//! `consumers[]:` — API clients and their credentials, as in APISIX. Authentication
//! plugins (`key-auth`, ...) look requests up here; the consumer's name then identifies
//! the client to later plugins (authorization, rate limits, events). Field docs are user
//! documentation.

use std::collections::HashMap;

use serde::Deserialize;

use super::decode::FieldError;
use super::path::FieldPath;

/// One API client.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConsumerConfig {
    /// Unique name (letters, digits, `_`, `-`, `.`; at most 64): appears in events,
    /// metrics-free logs and authorization lists.
    pub name: String,
    /// Credential for the `key-auth` plugin.
    #[serde(rename = "key-auth", default)]
    pub key_auth: Option<KeyAuthCredential>,
}

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

/// Check names and credentials; `path(i)` is the path of the i-th decoded consumer.
pub(super) fn check(
    consumers: &[ConsumerConfig],
    path: &dyn Fn(usize) -> FieldPath,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut keys: HashMap<&str, &str> = HashMap::new();
    for (i, c) in consumers.iter().enumerate() {
        let at = path(i);
        if !valid_name(&c.name) {
            errors.push(FieldError::value(
                at.key("name"),
                "must be 1-64 letters, digits, `_`, `-` or `.`",
            ));
        } else if let Some(&first) = names.get(c.name.as_str()) {
            errors.push(FieldError::value(
                at.key("name"),
                format!("duplicate consumer name (first used at {})", path(first)),
            ));
        } else {
            names.insert(&c.name, i);
        }
        if let Some(k) = &c.key_auth {
            let kat = at.key("key-auth").key("key");
            if k.key.chars().count() < MIN_KEY_LEN {
                errors.push(FieldError::value(
                    kat,
                    format!("an API key needs at least {MIN_KEY_LEN} characters"),
                ));
            } else if let Some(other) = keys.insert(&k.key, &c.name) {
                errors.push(FieldError::value(
                    kat,
                    format!("consumer `{other}` has the same key"),
                ));
            }
        }
    }
    errors
}

/// Whether `name` is a valid consumer name.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}
