//! The `limit-count` plugin (APISIX's `limit-count`, local policy): at most `count`
//! requests per `time_window` and key; past it, `429` with `Retry-After`. Every answer
//! carries `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` and
//! `RateLimit-Policy` (IETF httpapi rate-limit headers draft). Counters are per route
//! and per Sluice process (see the README for several instances).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora_error::Result;
use pingora_http::RequestHeader;
use pingora_proxy::Session;
use serde::Deserialize;
use sluice_core::config::decode::FieldError;
use sluice_core::config::path::FieldPath;
use sluice_core::config::units::HumanDuration;
use sluice_core::{BuildScope, Flow, HttpResponse, Plugin, PluginSpec, RequestCtx};
use sluice_limits::reply::{default_code, default_key, default_max_keys};
use sluice_limits::{
    ceil_secs, Clock, CommonLimitConfig, Keyed, MonotonicClock, Policy, WindowCounter, WindowState,
};

/// `plugins.limit-count:`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitCountConfig {
    /// Requests allowed per window and key (at least 1). Required.
    pub count: u64,
    /// The window, e.g. `60s` or `1h` (1 s to 1 day). Required.
    pub time_window: HumanDuration,
    /// `fixed` (default: the window starts with a key's first request, as APISIX) or
    /// `sliding` (no double burst around a window boundary).
    #[serde(default)]
    pub policy: PolicyConfig,
    /// What to count by: `remote_addr` (default), `consumer`, `route` (one counter for
    /// everyone) or a template such as `"{header.x-tenant}"`. An empty value (no
    /// consumer, header missing) falls back to the client's IP address.
    #[serde(default = "default_key")]
    pub key: String,
    /// Status of a refused request (400-599). Default `429`.
    #[serde(default = "default_code")]
    pub rejected_code: u16,
    /// `detail` of the refusal's problem document. Default `request quota exceeded`.
    #[serde(default)]
    pub rejected_msg: Option<String>,
    /// Send the `RateLimit-*` headers. Default `true`.
    #[serde(default = "default_true")]
    pub show_limit_quota_header: bool,
    /// Keys remembered at most; past it, expired keys are dropped first, then arbitrary
    /// ones (that key starts over). Default `100000`.
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
}

/// `policy:`
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum PolicyConfig {
    /// Window from a key's first request.
    #[default]
    Fixed,
    /// Sliding estimate over two clock-aligned windows.
    Sliding,
}

const fn default_true() -> bool {
    true
}

/// The plugin factory (`limit-count`).
pub struct LimitCount;

/// One configured instance with its counters.
pub struct LimitCountPlugin {
    keyed: Keyed<WindowState>,
    counter: WindowCounter,
    /// `RateLimit-Limit` and `RateLimit-Policy` values, when the headers are sent.
    constant_headers: Option<(String, String)>,
}

impl PluginSpec for LimitCount {
    const NAME: &'static str = "limit-count";
    type Config = LimitCountConfig;

    fn build(
        &self,
        c: LimitCountConfig,
        at: &FieldPath,
        _scope: &BuildScope<'_>,
    ) -> std::result::Result<Arc<dyn Plugin>, Vec<FieldError>> {
        Ok(Arc::new(LimitCountPlugin::new(
            c,
            at,
            Arc::new(MonotonicClock::new()),
        )?))
    }
}

impl LimitCountPlugin {
    /// An instance counting with `clock`; errors carry paths under `at`.
    pub fn new(
        c: LimitCountConfig,
        at: &FieldPath,
        clock: Arc<dyn Clock>,
    ) -> std::result::Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        if c.count == 0 {
            errors.push(FieldError::value(at.key("count"), "must be at least 1"));
        }
        let window = c.time_window.0;
        if !(Duration::from_secs(1)..=Duration::from_secs(86_400)).contains(&window) {
            errors.push(FieldError::value(
                at.key("time_window"),
                "must be between 1s and 1 day",
            ));
        }
        let common = CommonLimitConfig {
            key: c.key,
            rejected_code: c.rejected_code,
            rejected_msg: c.rejected_msg,
            max_keys: c.max_keys,
        };
        let keyed = Keyed::new(common, at, clock, &mut errors);
        let policy = match c.policy {
            PolicyConfig::Fixed => Policy::Fixed,
            PolicyConfig::Sliding => Policy::Sliding,
        };
        match keyed {
            Some(keyed) if errors.is_empty() => Ok(Self {
                keyed,
                counter: WindowCounter::new(c.count, window, policy),
                constant_headers: c.show_limit_quota_header.then(|| {
                    (
                        c.count.to_string(),
                        format!("{};w={}", c.count, window.as_secs()),
                    )
                }),
            }),
            _ => Err(errors),
        }
    }

    /// Count the request; the refusal when over the quota. The `RateLimit-*` headers go
    /// into the context, for whatever answers the request.
    pub fn check(&self, req: &RequestHeader, ctx: &mut RequestCtx) -> Option<HttpResponse> {
        let quota = self.keyed.apply(
            req,
            ctx,
            |now| self.counter.state(now),
            |s, now| self.counter.check(s, now),
        );
        if let Some((limit, policy)) = &self.constant_headers {
            let h = &mut ctx.response_headers;
            h.push(("ratelimit-limit", limit.clone()));
            h.push(("ratelimit-remaining", quota.remaining.to_string()));
            h.push(("ratelimit-reset", ceil_secs(quota.reset).to_string()));
            h.push(("ratelimit-policy", policy.clone()));
        }
        if quota.allowed {
            return None;
        }
        Some(
            self.keyed
                .common
                .refuse(ctx, "quota_exceeded", "request quota exceeded", quota.reset),
        )
    }
}

#[async_trait]
impl Plugin for LimitCountPlugin {
    fn name(&self) -> &'static str {
        LimitCount::NAME
    }

    fn priority(&self) -> i32 {
        // APISIX's limit-count priority: after authentication, before kafka-divert.
        1002
    }

    async fn request(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<Flow> {
        Ok(match self.check(session.req_header(), ctx) {
            None => Flow::Continue,
            Some(r) => Flow::Respond(r),
        })
    }
}

#[cfg(test)]
mod tests;
