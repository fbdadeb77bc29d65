//! The `mocking` plugin: the route answers every request itself with a configured
//! status, headers and body, without an upstream (as APISIX's `mocking`). The
//! quickstart uses it as its demo origin; it also stubs endpoints in tests.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use pingora_error::Result;
use pingora_proxy::Session;
use serde::Deserialize;
use sluice_core::config::decode::FieldError;
use sluice_core::config::path::FieldPath;
use sluice_core::{BuildScope, Flow, HttpResponse, Plugin, PluginSpec, RequestCtx};

/// `plugins.mocking:`
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct MockingConfig {
    /// Response status. Default `200`.
    #[serde(default = "default_status")]
    pub status: u16,
    /// `content-type` of the response. Default `application/json`.
    #[serde(default = "default_content_type")]
    pub content_type: String,
    /// Response body. Default `{"ok":true}`.
    #[serde(default = "default_body")]
    pub body: String,
    /// Extra response headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

const fn default_status() -> u16 {
    200
}
fn default_content_type() -> String {
    "application/json".into()
}
fn default_body() -> String {
    "{\"ok\":true}".into()
}

/// The plugin factory (`mocking`).
pub struct Mocking;

/// One configured instance.
pub struct MockingPlugin {
    response: HttpResponse,
}

impl PluginSpec for Mocking {
    const NAME: &'static str = "mocking";
    type Config = MockingConfig;

    fn build(
        &self,
        c: MockingConfig,
        at: &FieldPath,
        _scope: &BuildScope<'_>,
    ) -> std::result::Result<Arc<dyn Plugin>, Vec<FieldError>> {
        let mut errors = Vec::new();
        if !(100..=599).contains(&c.status) {
            errors.push(FieldError::value(
                at.key("status"),
                "must be an HTTP status (100-599)",
            ));
        }
        if http::HeaderValue::from_str(&c.content_type).is_err() {
            errors.push(FieldError::value(
                at.key("content_type"),
                "not a valid header value",
            ));
        }
        for (name, value) in &c.headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err()
                || http::HeaderValue::from_str(value).is_err()
            {
                errors.push(FieldError::value(
                    at.key("headers").key(name),
                    "not a valid header",
                ));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut response = HttpResponse::new(c.status, &c.content_type, c.body.into_bytes());
        for (name, value) in c.headers {
            response = response.with_header(&name, value);
        }
        Ok(Arc::new(MockingPlugin { response }))
    }
}

#[async_trait]
impl Plugin for MockingPlugin {
    fn name(&self) -> &'static str {
        Mocking::NAME
    }

    fn priority(&self) -> i32 {
        // Answers the request like an upstream would: after authentication (2500),
        // authorization and rate limits (1001-2400). (APISIX's 10900 runs it before
        // authentication, which makes a mocked route public.)
        900
    }

    fn answers_requests(&self) -> bool {
        true
    }

    async fn request(&self, _session: &mut Session, _ctx: &mut RequestCtx) -> Result<Flow> {
        Ok(Flow::Respond(self.response.clone()))
    }
}
