//! `consumers[]:` — API clients and their credentials, as in APISIX. Core checks the
//! names; each credential block belongs to the authentication plugin of its key, which
//! checks it (`Registry::check_credentials`) and looks requests up in it; the
//! consumer's name then identifies the client to later plugins (authorization, rate
//! limits, events). Field docs are user documentation.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use super::decode::FieldError;
use super::path::FieldPath;

/// One API client.
#[derive(Clone, Deserialize, PartialEq)]
pub struct ConsumerConfig {
    /// Unique name (letters, digits, `_`, `-`, `.`; at most 64): appears in events,
    /// metrics-free logs and authorization lists.
    pub name: String,
    /// Credential blocks, by authentication plugin (`key-auth: { key: ... }`): each
    /// plugin declares and checks its own block (see its README).
    #[serde(flatten)]
    pub credentials: BTreeMap<String, serde_yaml::Value>,
}

impl std::fmt::Debug for ConsumerConfig {
    /// The name and which credential blocks it has, never their contents.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerConfig")
            .field("name", &self.name)
            .field("credentials", &self.credentials.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Check the names; `path(i)` is the path of the i-th decoded consumer.
pub(super) fn check(
    consumers: &[ConsumerConfig],
    path: &dyn Fn(usize) -> FieldPath,
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut names: HashMap<&str, usize> = HashMap::new();
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
