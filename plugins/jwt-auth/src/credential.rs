//! `consumers[].jwt-auth:` — how a consumer's tokens are verified, declared and checked
//! by this plugin (core hands it the blocks): the algorithm and its key material, and a
//! consumer key unique across consumers.

use std::collections::HashMap;

use serde::Deserialize;
use sluice_core::config::decode::FieldError;
use sluice_core::config::path::FieldPath;
use sluice_core::plugin::CredentialBlock;

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

fn check_one(c: &JwtCredential, at: &FieldPath, errors: &mut Vec<FieldError>) {
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

/// Check every consumer's block: it decodes, its algorithm and key material agree, and
/// its key is unique.
pub fn check(blocks: &[CredentialBlock<'_>]) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut keys: HashMap<String, &str> = HashMap::new();
    for (b, j) in CredentialBlock::decode_all::<JwtCredential>(blocks, &mut errors) {
        check_one(&j, &b.at, &mut errors);
        if j.key.is_empty() {
            errors.push(FieldError::value(b.at.key("key"), "must not be empty"));
        } else if let Some(other) = keys.insert(j.key, b.consumer) {
            errors.push(FieldError::value(
                b.at.key("key"),
                format!("consumer `{other}` has the same jwt-auth key"),
            ));
        }
    }
    errors
}
