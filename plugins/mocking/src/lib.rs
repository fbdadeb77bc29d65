//! The `mocking` plugin: the route answers every request itself with a configured
//! status, headers and body, without an upstream (as APISIX's `mocking`). The
//! quickstart uses it as its demo origin; it also stubs endpoints in tests.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use pingora_error::Result;
use serde::Deserialize;
use sluice_core::config::decode::FieldError;
use sluice_core::config::path::FieldPath;
use sluice_core::{
    BuildScope, Flow, HttpResponse, Phases, Plugin, PluginSpec, Request, RequestCtx,
};

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
    // Answers the request like an upstream would: after authentication (2500),
    // authorization and rate limits (1001-2400). (APISIX's 10900 runs it before
    // authentication, which makes a mocked route public.)
    const PRIORITY: i32 = 900;
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
    fn phases(&self) -> Phases {
        Phases::REQUEST
    }

    fn answers_requests(&self) -> bool {
        true
    }

    async fn request(&self, _req: &mut Request<'_>, _ctx: &mut RequestCtx) -> Result<Flow> {
        Ok(Flow::Respond(self.response.clone()))
    }
}

#[cfg(test)]
mod tests {
    use sluice_core::testkit::{TestExchange, TestRoute};

    use super::*;

    #[tokio::test]
    async fn answers_with_the_configured_response_and_the_headers_added_for_it() {
        let r = TestRoute::new().with(
            Mocking,
            "{ status: 201, body: '{\"ok\":true}', headers: { x-mock: yes } }",
        );
        let mut ctx = r.ctx();
        ctx.response_headers
            .push(("ratelimit-remaining", "4".into()));
        let out = r
            .exchange_in(&mut TestExchange::post("/x", "ignored"), ctx, None)
            .await;
        assert_eq!(out.status(), Some(201));
        assert_eq!(out.json()["ok"], true);
        assert_eq!(out.header("x-mock"), Some("yes"));
        assert_eq!(out.header("ratelimit-remaining"), Some("4"));
        assert_eq!(out.header("content-length"), Some("11"));
        assert_eq!(out.ctx.responded_by, Some("mocking"));
        assert!(out.upstream.is_none());
    }

    #[test]
    fn config_errors_carry_paths() {
        let e = TestRoute::new()
            .try_with(Mocking, "{ status: 99, headers: { 'bad name': x } }")
            .err()
            .unwrap();
        assert_eq!(
            e,
            [
                "mocking.status: must be an HTTP status (100-599)",
                "mocking.headers.bad name: not a valid header",
            ]
        );
    }
}
