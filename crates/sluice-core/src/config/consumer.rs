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
    /// Credential for the `jwt-auth` plugin.
    #[serde(rename = "jwt-auth", default)]
    pub jwt_auth: Option<JwtCredential>,
}

/// `consumers[].jwt-auth:` — how this consumer's tokens are verified. A token names its
/// consumer with the `key` claim (APISIX) or the `kid` header.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct JwtCredential {
    /// The consumer's key, unique across consumers.
    pub key: String,
    /// `HS256` (default), `HS384`, `HS512`, `RS256`, `RS384`, `RS512`, `ES256`, `ES384`.
    #[serde(default = "default_alg")]
    pub algorithm: String,
    /// HMAC secret (HS*): at least 32 characters; use `${ENV_VAR}`.
    #[serde(default)]
    pub secret: Option<String>,
    /// Public key in PEM (RS*, ES*).
    #[serde(default)]
    pub public_key: Option<String>,
    /// A JWKS file (RS*, ES*): the key whose `kid` matches the token's is used.
    #[serde(default)]
    pub jwks_file: Option<String>,
}

fn default_alg() -> String {
    "HS256".into()
}

impl std::fmt::Debug for JwtCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtCredential")
            .field("key", &self.key)
            .field("algorithm", &self.algorithm)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("public_key", &self.public_key.is_some())
            .field("jwks_file", &self.jwks_file)
            .finish()
    }
}

/// Shortest HMAC secret accepted (RFC 7518 §3.2: at least the hash size).
const MIN_SECRET_LEN: usize = 32;

fn check_jwt(c: &JwtCredential, at: &FieldPath, errors: &mut Vec<FieldError>) {
    let hmac = c.algorithm.starts_with("HS");
    if !matches!(
        c.algorithm.as_str(),
        "HS256" | "HS384" | "HS512" | "RS256" | "RS384" | "RS512" | "ES256" | "ES384"
    ) {
        errors.push(FieldError::value(
            at.key("algorithm"),
            "one of HS256, HS384, HS512, RS256, RS384, RS512, ES256, ES384",
        ));
        return;
    }
    let given = [
        c.secret.is_some(),
        c.public_key.is_some(),
        c.jwks_file.is_some(),
    ];
    let ok = if hmac {
        given == [true, false, false]
    } else {
        given[1..].iter().filter(|g| **g).count() == 1 && !given[0]
    };
    if !ok {
        let msg = if hmac {
            "an HS* algorithm takes `secret` (and no `public_key` or `jwks_file`)"
        } else {
            "an RS*/ES* algorithm takes one of `public_key` and `jwks_file` (and no `secret`)"
        };
        errors.push(FieldError::value(at.clone(), msg));
    }
    if let Some(s) = &c.secret {
        if s.len() < MIN_SECRET_LEN {
            errors.push(FieldError::value(
                at.key("secret"),
                format!("an HMAC secret needs at least {MIN_SECRET_LEN} characters"),
            ));
        }
    }
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
    let mut jwt_keys: HashMap<&str, &str> = HashMap::new();
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
        if let Some(j) = &c.jwt_auth {
            let jat = at.key("jwt-auth");
            check_jwt(j, &jat, &mut errors);
            if j.key.is_empty() {
                errors.push(FieldError::value(jat.key("key"), "must not be empty"));
            } else if let Some(other) = jwt_keys.insert(&j.key, &c.name) {
                errors.push(FieldError::value(
                    jat.key("key"),
                    format!("consumer `{other}` has the same jwt-auth key"),
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
