//! Finding the token in a request, choosing its consumer, verifying it, and hiding it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, decode_header, Algorithm, Validation};
use pingora_http::RequestHeader;
use serde_json::{Map, Value};
use sluice_core::context::Consumer;
use sluice_core::template::{query_arg, strip_query_arg};
use sluice_core::RequestCtx;

use crate::keys::ConsumerKey;
use crate::{JwtAuth, JwtAuthPlugin};
use sluice_core::PluginSpec as _;

/// The checks besides the signature, built once per plugin instance.
pub(crate) struct Rules {
    /// Claims that must be present besides `exp` (and `aud`/`iss` when configured).
    required: Vec<String>,
    /// `exp`/`nbf`/`aud`/`iss` validation for each algorithm the consumers use.
    validations: HashMap<Algorithm, Validation>,
}

impl Rules {
    pub(crate) fn new(
        leeway: u64,
        audience: &[String],
        issuer: &[String],
        required: Vec<String>,
        algorithms: impl Iterator<Item = Algorithm>,
    ) -> Self {
        let validation = |alg| {
            let mut v = Validation::new(alg);
            v.leeway = leeway;
            v.validate_nbf = true;
            v.required_spec_claims = HashSet::from(["exp".to_string()]);
            if audience.is_empty() {
                v.validate_aud = false;
            } else {
                v.set_audience(audience);
                v.required_spec_claims.insert("aud".into());
            }
            if !issuer.is_empty() {
                v.set_issuer(issuer);
                v.required_spec_claims.insert("iss".into());
            }
            v
        };
        Self {
            required,
            validations: algorithms.map(|a| (a, validation(a))).collect(),
        }
    }
}

/// Why a request was refused (always `401`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// `sluice_http_rejections_total` reason.
    pub reason: &'static str,
    /// Problem `detail` (fixed text).
    pub detail: &'static str,
    /// RFC 6750 `error` of the `WWW-Authenticate` header.
    pub oauth_error: &'static str,
}

const fn invalid(detail: &'static str) -> Refusal {
    Refusal {
        reason: "invalid_credentials",
        detail,
        oauth_error: "invalid_token",
    }
}

/// Where the token was found.
enum Source {
    Header,
    Query,
    Cookie,
}

impl JwtAuthPlugin {
    /// Verify the request's token; on success record the consumer and its claims and
    /// hide the token.
    pub(crate) fn authenticate(
        &self,
        req: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<(), Refusal> {
        let (token, source) = self.token(req).ok_or(Refusal {
            reason: "missing_credentials",
            detail: "missing token (Authorization: Bearer, or the jwt query argument or cookie)",
            oauth_error: "invalid_request",
        })?;
        let header = decode_header(&token).map_err(|_| invalid("malformed token"))?;
        let consumer = self
            .consumer_of(&token, header.kid.as_deref())
            .ok_or(invalid("the token names no known consumer"))?;
        if header.alg != consumer.algorithm {
            return Err(invalid("the token's algorithm is not the consumer's"));
        }
        let key = consumer
            .key(header.kid.as_deref())
            .ok_or(invalid("no key for the token's kid"))?;
        let validation = self
            .rules
            .validations
            .get(&consumer.algorithm)
            .ok_or(invalid("invalid token"))?;
        let claims = decode::<Map<String, Value>>(&token, key, validation)
            .map_err(|e| refusal_for(e.kind()))?
            .claims;
        if let Some(missing) = self
            .rules
            .required
            .iter()
            .find(|c| !claims.contains_key(*c))
        {
            log::debug!("jwt-auth: token without required claim {missing:?}");
            return Err(invalid("the token lacks a required claim"));
        }
        ctx.consumer = Some(Consumer {
            name: consumer.name.clone(),
            auth: JwtAuth::NAME,
            auth_type: "app_user",
            claims: Some(Arc::new(claims)),
        });
        if self.hide {
            match source {
                Source::Header => {
                    req.remove_header(&self.header);
                }
                Source::Query => strip_query_arg(req, &self.query),
                Source::Cookie => strip_cookie(req, &self.cookie),
            }
        }
        Ok(())
    }

    fn token(&self, req: &RequestHeader) -> Option<(String, Source)> {
        if let Some(v) = req.headers.get(&self.header).and_then(|v| v.to_str().ok()) {
            let v = v.trim();
            let t = match v.get(..7) {
                Some(p) if p.eq_ignore_ascii_case("bearer ") => v[7..].trim(),
                _ => v,
            };
            return (!t.is_empty()).then(|| (t.to_string(), Source::Header));
        }
        if let Some(t) = req.uri.query().and_then(|q| query_arg(q, &self.query)) {
            return (!t.is_empty()).then_some((t, Source::Query));
        }
        cookie(req, &self.cookie).map(|t| (t, Source::Cookie))
    }

    /// The consumer a token names: its `key` claim, else its `kid` (a consumer key, or
    /// a key id in one consumer's JWKS).
    fn consumer_of(&self, token: &str, kid: Option<&str>) -> Option<&ConsumerKey> {
        if let Some(key) = unverified_key_claim(token) {
            return self.consumers.get(&key);
        }
        let kid = kid?;
        self.consumers.get(kid).or_else(|| {
            let mut with_kid = self.consumers.values().filter(|c| c.has_kid(kid));
            match (with_kid.next(), with_kid.next()) {
                (Some(c), None) => Some(c),
                _ => None,
            }
        })
    }
}

fn refusal_for(kind: &ErrorKind) -> Refusal {
    match kind {
        ErrorKind::ExpiredSignature => Refusal {
            reason: "expired_token",
            detail: "the token has expired",
            oauth_error: "invalid_token",
        },
        ErrorKind::ImmatureSignature => invalid("the token is not valid yet (nbf)"),
        ErrorKind::InvalidSignature => invalid("the token's signature does not verify"),
        ErrorKind::InvalidAudience => invalid("the token's audience is not accepted"),
        ErrorKind::InvalidIssuer => invalid("the token's issuer is not accepted"),
        ErrorKind::MissingRequiredClaim(_) => invalid("the token lacks a required claim"),
        _ => invalid("invalid token"),
    }
}

/// The `key` claim, read before verification only to pick the consumer whose key then
/// verifies the token.
fn unverified_key_claim(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.get("key")?.as_str().map(str::to_string)
}

fn cookie(req: &RequestHeader, name: &str) -> Option<String> {
    req.headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name && !v.is_empty()).then(|| v.to_string())
        })
}

fn strip_cookie(req: &mut RequestHeader, name: &str) {
    let kept: Vec<String> = req
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|p| !p.is_empty() && p.split_once('=').map(|(k, _)| k) != Some(name))
        .map(str::to_string)
        .collect();
    req.remove_header(&http::header::COOKIE);
    if !kept.is_empty() {
        let _ = req.insert_header(http::header::COOKIE, kept.join("; "));
    }
}
