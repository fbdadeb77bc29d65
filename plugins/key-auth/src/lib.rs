//! The `key-auth` plugin: a request must carry the API key of one of the `consumers`
//! (header `apikey`, or query argument `apikey`, as in APISIX). The consumer found is
//! recorded in the request context for later plugins (authorization, rate limits, Kafka
//! events); the credential is removed from the request by default so that it reaches
//! neither the upstream nor any event or log.

mod credential;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use pingora_error::Result;
use pingora_http::RequestHeader;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use sluice_core::config::decode::FieldError;
use sluice_core::config::path::FieldPath;
use sluice_core::context::{Consumer, CredentialNames};
use sluice_core::plugin::CredentialBlock;
use sluice_core::template::{query_arg, strip_query_arg};
use sluice_core::{
    BuildScope, Flow, HttpResponse, Phases, Plugin, PluginSpec, Request, RequestCtx,
};

pub use credential::KeyAuthCredential;

/// `plugins.key-auth:`
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeyAuthConfig {
    /// Request header carrying the key. Default `apikey`.
    #[serde(default = "default_name")]
    pub header: String,
    /// Query argument carrying the key, looked at when the header is absent. Default
    /// `apikey`.
    #[serde(default = "default_name")]
    pub query: String,
    /// Remove the key from the request (header and query argument) once checked, so it
    /// reaches neither the upstream nor Kafka events. Default `true`.
    #[serde(default = "default_true")]
    pub hide_credentials: bool,
}

fn default_name() -> String {
    "apikey".into()
}
const fn default_true() -> bool {
    true
}

/// The plugin factory (`key-auth`).
pub struct KeyAuth;

/// One configured instance: the consumers' keys, by SHA-256 (lookups compare digests,
/// never the secrets themselves).
pub struct KeyAuthPlugin {
    header: http::HeaderName,
    query: String,
    /// Header and query names carrying the credential (for loggers).
    marks: (Arc<str>, Arc<str>),
    hide: bool,
    keys: HashMap<[u8; 32], Arc<str>>,
}

fn digest(key: &[u8]) -> [u8; 32] {
    Sha256::digest(key).into()
}

impl PluginSpec for KeyAuth {
    const NAME: &'static str = "key-auth";
    // APISIX's key-auth priority: before authorization (2400) and rate limits.
    const PRIORITY: i32 = 2500;
    const AUTHENTICATES: bool = true;
    type Config = KeyAuthConfig;

    fn check_credentials(&self, blocks: &[CredentialBlock<'_>]) -> Vec<FieldError> {
        credential::check(blocks)
    }

    fn build(
        &self,
        c: KeyAuthConfig,
        at: &FieldPath,
        scope: &BuildScope<'_>,
    ) -> std::result::Result<Arc<dyn Plugin>, Vec<FieldError>> {
        let keys = scope.credentials::<KeyAuthCredential>(Self::NAME);
        Ok(Arc::new(KeyAuthPlugin::new(c, at, &keys)?))
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No key in the header or the query.
    Missing,
    /// A key no consumer has.
    Invalid,
}

impl KeyAuthPlugin {
    /// An instance knowing the consumers' `keys`; errors carry paths under `at`.
    pub fn new(
        c: KeyAuthConfig,
        at: &FieldPath,
        keys: &[(&str, KeyAuthCredential)],
    ) -> std::result::Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let header = http::HeaderName::from_bytes(c.header.as_bytes());
        if header.is_err() {
            errors.push(FieldError::value(
                at.key("header"),
                "not a valid header name",
            ));
        }
        if c.query.is_empty() {
            errors.push(FieldError::value(at.key("query"), "must not be empty"));
        }
        let keys: HashMap<[u8; 32], Arc<str>> = keys
            .iter()
            .map(|(name, k)| (digest(k.key.as_bytes()), Arc::from(*name)))
            .collect();
        if keys.is_empty() {
            errors.push(FieldError::value(
                at.clone(),
                "no consumer has a `key-auth` credential (consumers[].key-auth.key): every request would be refused",
            ));
        }
        match header {
            Ok(header) if errors.is_empty() => Ok(Self {
                marks: (Arc::from(header.as_str()), Arc::from(c.query.as_str())),
                header,
                query: c.query,
                hide: c.hide_credentials,
                keys,
            }),
            _ => Err(errors),
        }
    }

    /// Check the request's key; on success record the consumer and hide the key.
    fn authenticate(
        &self,
        req: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> std::result::Result<(), Refusal> {
        // The header's bytes are hashed in place; only a query argument is decoded.
        let hashed = match req.headers.get(&self.header) {
            Some(v) => (!v.is_empty()).then(|| digest(v.as_bytes())),
            None => req
                .uri
                .query()
                .and_then(|q| query_arg(q, &self.query))
                .filter(|k| !k.is_empty())
                .map(|k| digest(k.as_bytes())),
        };
        let hashed = hashed.ok_or(Refusal::Missing)?;
        let name = self.keys.get(&hashed).ok_or(Refusal::Invalid)?;
        ctx.consumer = Some(Consumer {
            name: name.clone(),
            auth: KeyAuth::NAME,
            auth_type: "api_key",
            claims: None,
        });
        if self.hide {
            req.remove_header(&self.header);
            strip_query_arg(req, &self.query);
        }
        Ok(())
    }

    fn refuse(&self, r: Refusal, ctx: &RequestCtx) -> HttpResponse {
        let (reason, detail) = match r {
            Refusal::Missing => (
                "missing_credentials",
                format!(
                    "missing API key (header `{}` or query argument `{}`)",
                    self.header, self.query
                ),
            ),
            Refusal::Invalid => ("invalid_credentials", "invalid API key".to_string()),
        };
        HttpResponse::refusal(ctx, 401, reason, &detail).with_header(
            "www-authenticate",
            format!("ApiKey header=\"{}\"", self.header),
        )
    }
}

#[async_trait]
impl Plugin for KeyAuthPlugin {
    fn phases(&self) -> Phases {
        Phases::REQUEST
    }

    fn credential_names(&self) -> CredentialNames {
        CredentialNames {
            headers: vec![self.marks.0.clone()],
            query: vec![self.marks.1.clone()],
        }
    }

    async fn request(&self, req: &mut Request<'_>, ctx: &mut RequestCtx) -> Result<Flow> {
        match self.authenticate(req.header_mut(), ctx) {
            Ok(()) => Ok(Flow::Continue),
            Err(r) => Ok(Flow::Respond(self.refuse(r, ctx))),
        }
    }
}

#[cfg(test)]
mod tests;
