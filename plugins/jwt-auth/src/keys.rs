//! The verification keys of the consumers with a `jwt-auth` credential, by consumer key:
//! an HMAC secret, a PEM public key, or a JWKS file (one key per `kid`).

use std::collections::HashMap;
use std::sync::Arc;

use crate::credential::JwtCredential;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey};

/// How one consumer's tokens are checked.
pub struct ConsumerKey {
    /// The consumer's name.
    pub name: Arc<str>,
    /// The only algorithm accepted for it (no `alg` confusion).
    pub algorithm: Algorithm,
    /// One key, or JWKS keys by `kid`.
    pub keys: Keys,
}

/// Verification key material.
pub enum Keys {
    /// A secret or a PEM public key.
    One(DecodingKey),
    /// JWKS keys by `kid`.
    ByKid(HashMap<String, DecodingKey>),
}

impl ConsumerKey {
    /// Whether this consumer's JWKS has a key with this id.
    pub fn has_kid(&self, kid: &str) -> bool {
        matches!(&self.keys, Keys::ByKid(m) if m.contains_key(kid))
    }

    /// The key for a token with header `kid`.
    pub fn key(&self, kid: Option<&str>) -> Option<&DecodingKey> {
        match &self.keys {
            Keys::One(k) => Some(k),
            Keys::ByKid(m) => kid.and_then(|k| m.get(k)),
        }
    }
}

/// Build every consumer's key; the errors name the consumer and what is wrong.
pub fn load(
    consumers: &[(&str, JwtCredential)],
) -> Result<HashMap<String, ConsumerKey>, Vec<String>> {
    let mut out = HashMap::new();
    let mut errors = Vec::new();
    for (name, cred) in consumers {
        match build(cred) {
            Ok((algorithm, keys)) => {
                out.insert(
                    cred.key.clone(),
                    ConsumerKey {
                        name: (*name).into(),
                        algorithm,
                        keys,
                    },
                );
            }
            Err(e) => errors.push(format!("consumer `{name}`: {e}")),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn build(c: &JwtCredential) -> Result<(Algorithm, Keys), String> {
    let alg: Algorithm = c
        .algorithm
        .parse()
        .map_err(|_| format!("unknown algorithm {:?}", c.algorithm))?;
    if let Some(secret) = &c.secret {
        return Ok((alg, Keys::One(DecodingKey::from_secret(secret.as_bytes()))));
    }
    if let Some(pem) = &c.public_key {
        let key = match alg {
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 => {
                DecodingKey::from_rsa_pem(pem.as_bytes())
            }
            _ => DecodingKey::from_ec_pem(pem.as_bytes()),
        }
        .map_err(|e| {
            format!(
                "public_key is not a usable PEM key for {:?}: {e}",
                c.algorithm
            )
        })?;
        return Ok((alg, Keys::One(key)));
    }
    if let Some(file) = &c.jwks_file {
        let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {file}: {e}"))?;
        let set: JwkSet =
            serde_json::from_str(&text).map_err(|e| format!("{file} is not a JWKS: {e}"))?;
        let mut by_kid = HashMap::new();
        for jwk in &set.keys {
            let (Some(kid), Ok(key)) = (&jwk.common.key_id, DecodingKey::from_jwk(jwk)) else {
                continue;
            };
            by_kid.insert(kid.clone(), key);
        }
        if by_kid.is_empty() {
            return Err(format!("{file} has no usable key with a `kid`"));
        }
        return Ok((alg, Keys::ByKid(by_kid)));
    }
    Err("no secret, public_key or jwks_file".into())
}
