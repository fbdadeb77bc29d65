//! The `jwt-auth` plugin: a request must carry a JSON Web Token signed for one of the
//! `consumers` (APISIX's `jwt-auth`, with HS*, RS* and ES* keys from the config, PEM or a
//! JWKS file). The token names its consumer with the `key` claim or the `kid` header;
//! only that consumer's algorithm and key are accepted (no `alg` confusion, no `none`).
//! `exp` is required and `nbf` checked, both with `leeway`; `aud`, `iss` and further
//! claims can be required. The consumer and its verified claims go into the request
//! context (`{consumer}`, `{claim.NAME}` in templates); the token is removed from the
//! request by default.

mod credential;
pub mod keys;
mod verify;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use pingora_error::Result;
use serde::Deserialize;
use sluice_core::config::decode::FieldError;
use sluice_core::config::path::FieldPath;
use sluice_core::config::units::HumanDuration;
use sluice_core::context::CredentialNames;
use sluice_core::plugin::CredentialBlock;
use sluice_core::{
    BuildScope, Flow, HttpResponse, Phases, Plugin, PluginSpec, Request, RequestCtx,
};

pub use credential::JwtCredential;
pub use verify::Refusal;

/// `plugins.jwt-auth:`
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct JwtAuthConfig {
    /// Header carrying the token (`Bearer <token>`, or the bare token). Default
    /// `authorization`.
    #[serde(default = "default_header")]
    pub header: String,
    /// Query argument carrying the token when the header is absent. Default `jwt`.
    #[serde(default = "default_jwt")]
    pub query: String,
    /// Cookie carrying the token when header and query are absent. Default `jwt`.
    #[serde(default = "default_jwt")]
    pub cookie: String,
    /// Clock skew allowed on `exp` and `nbf`. Default `0s`.
    #[serde(default = "default_leeway")]
    pub leeway: HumanDuration,
    /// Accepted `aud` values; empty = `aud` not checked. Default empty.
    #[serde(default)]
    pub audience: Vec<String>,
    /// Accepted `iss` values; empty = `iss` not checked. Default empty.
    #[serde(default)]
    pub issuer: Vec<String>,
    /// Claims that must be present besides `exp`. Default none.
    #[serde(default)]
    pub required_claims: Vec<String>,
    /// Remove the token from the request (header, query argument, cookie) once
    /// checked. Default `true`.
    #[serde(default = "default_true")]
    pub hide_credentials: bool,
}

fn default_header() -> String {
    "authorization".into()
}
fn default_jwt() -> String {
    "jwt".into()
}
const fn default_leeway() -> HumanDuration {
    HumanDuration(std::time::Duration::ZERO)
}
const fn default_true() -> bool {
    true
}

/// The plugin factory (`jwt-auth`).
pub struct JwtAuth;

/// One configured instance.
pub struct JwtAuthPlugin {
    header: http::HeaderName,
    query: String,
    /// Header and query names carrying the credential (for loggers).
    marks: (Arc<str>, Arc<str>),
    cookie: String,
    hide: bool,
    rules: verify::Rules,
    consumers: HashMap<String, keys::ConsumerKey>,
}

impl PluginSpec for JwtAuth {
    const NAME: &'static str = "jwt-auth";
    // APISIX's jwt-auth priority: before authorization (2400) and rate limits.
    const PRIORITY: i32 = 2510;
    const AUTHENTICATES: bool = true;
    type Config = JwtAuthConfig;

    fn check_credentials(&self, blocks: &[CredentialBlock<'_>]) -> Vec<FieldError> {
        credential::check(blocks)
    }

    fn build(
        &self,
        c: JwtAuthConfig,
        at: &FieldPath,
        scope: &BuildScope<'_>,
    ) -> std::result::Result<Arc<dyn Plugin>, Vec<FieldError>> {
        let consumers = scope.credentials::<JwtCredential>(Self::NAME);
        Ok(Arc::new(JwtAuthPlugin::new(c, at, &consumers)?))
    }
}

impl JwtAuthPlugin {
    /// An instance verifying the tokens of `consumers` (name, credential); errors carry
    /// paths under `at`.
    pub fn new(
        c: JwtAuthConfig,
        at: &FieldPath,
        consumers: &[(&str, JwtCredential)],
    ) -> std::result::Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let header = http::HeaderName::from_bytes(c.header.as_bytes());
        if header.is_err() {
            errors.push(FieldError::value(
                at.key("header"),
                "not a valid header name",
            ));
        }
        if c.leeway.0 > std::time::Duration::from_secs(600) {
            errors.push(FieldError::value(at.key("leeway"), "at most 10m"));
        }
        let loaded = match keys::load(consumers) {
            Ok(k) => k,
            Err(es) => {
                errors.extend(es.into_iter().map(|e| FieldError::value(at.clone(), e)));
                HashMap::new()
            }
        };
        if loaded.is_empty() && errors.is_empty() {
            errors.push(FieldError::value(
                at.clone(),
                "no consumer has a `jwt-auth` credential (consumers[].jwt-auth): every request would be refused",
            ));
        }
        match header {
            Ok(header) if errors.is_empty() => Ok(Self {
                marks: (Arc::from(header.as_str()), Arc::from(c.query.as_str())),
                header,
                query: c.query,
                cookie: c.cookie,
                hide: c.hide_credentials,
                rules: verify::Rules::new(
                    c.leeway.0.as_secs(),
                    &c.audience,
                    &c.issuer,
                    c.required_claims,
                    loaded.values().map(|k| k.algorithm),
                ),
                consumers: loaded,
            }),
            _ => Err(errors),
        }
    }

    fn refuse(&self, r: &Refusal, ctx: &RequestCtx) -> HttpResponse {
        HttpResponse::refusal(ctx, 401, r.reason, r.detail).with_header(
            "www-authenticate",
            format!("Bearer error=\"{}\"", r.oauth_error),
        )
    }
}

#[async_trait]
impl Plugin for JwtAuthPlugin {
    fn phases(&self) -> Phases {
        Phases::REQUEST
    }

    fn credential_names(&self) -> CredentialNames {
        let mut headers = vec![self.marks.0.clone()];
        if !self.cookie.is_empty() {
            headers.push(Arc::from("cookie"));
        }
        CredentialNames {
            headers,
            query: vec![self.marks.1.clone()],
        }
    }

    async fn request(&self, req: &mut Request<'_>, ctx: &mut RequestCtx) -> Result<Flow> {
        match self.authenticate(req.header_mut(), ctx) {
            Ok(()) => Ok(Flow::Continue),
            Err(r) => Ok(Flow::Respond(self.refuse(&r, ctx))),
        }
    }
}

#[cfg(test)]
mod tests;
