//! The `limit-count` plugin (APISIX's `limit-count`): at most `count` requests per
//! `time_window` and key; past it, `429` with `Retry-After`. Every answer carries
//! `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset` and `RateLimit-Policy`
//! (IETF httpapi rate-limit headers draft). With `policy: local` the counters are per
//! route and per Sluice process; with `policy: redis` ([`shared`]) every instance
//! using the same Redis counts against one quota.

mod shared;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora_error::Result;
use pingora_http::RequestHeader;
use serde::Deserialize;
use sluice_core::config::decode::FieldError;
use sluice_core::config::path::FieldPath;
use sluice_core::config::units::HumanDuration;
use sluice_core::{
    BuildScope, Flow, HttpResponse, Phases, Plugin, PluginSpec, Request, RequestCtx,
};
use sluice_limits::reply::{default_code, default_key, default_max_keys};
use sluice_limits::{
    ceil_secs, Clock, CommonLimitConfig, Keyed, OnStoreError, Policy, Quota, WindowCounter,
    WindowState,
};
use sluice_store::{count_error, Stores};

use shared::Shared;

/// `plugins.limit-count:`
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitCountConfig {
    /// Requests allowed per window and key (at least 1). Required.
    pub count: u64,
    /// The window, e.g. `60s` or `1h` (1 s to 1 day). Required.
    pub time_window: HumanDuration,
    /// Where the counters live: `local` (default: in this process) or `redis` (in the
    /// top-level `redis:` server, shared by every instance that uses it). Earlier
    /// versions' `fixed` and `sliding` are still accepted: `local` with that window.
    #[serde(default = "default_policy")]
    pub policy: String,
    /// `fixed` (default: the window starts with a key's first request, as APISIX) or
    /// `sliding` (no double burst around a window boundary).
    #[serde(default)]
    pub window_type: Option<WindowType>,
    /// With `policy: redis`, when Redis does not answer within `redis.timeout`:
    /// `allow` (default: the request goes on, without `RateLimit-*` headers) or `deny`
    /// (`503` with `Retry-After: 1`). Either way it is counted in
    /// `sluice_store_errors_total{plugin="limit-count"}`.
    #[serde(default)]
    pub on_store_error: OnStoreError,
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
    /// Keys remembered at most with `policy: local`; past it, expired keys are dropped
    /// first, then arbitrary ones (that key starts over). Default `100000`. (With
    /// `policy: redis`, keys expire in Redis with their window.)
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
}

/// `window_type:`
#[derive(Debug, Clone, Copy, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WindowType {
    /// Window from a key's first request.
    #[default]
    Fixed,
    /// Sliding estimate over two clock-aligned windows.
    Sliding,
}

fn default_policy() -> String {
    "local".into()
}

const fn default_true() -> bool {
    true
}

/// The plugin factory (`limit-count`); holds the shared-store runtime for
/// `policy: redis`.
pub struct LimitCount {
    stores: Arc<Stores>,
}

impl LimitCount {
    /// A factory whose `policy: redis` instances use `stores`.
    pub fn new(stores: Arc<Stores>) -> Self {
        Self { stores }
    }
}

/// One configured instance with its counters.
pub struct LimitCountPlugin {
    keyed: Keyed<WindowState>,
    counter: WindowCounter,
    /// `RateLimit-Limit` and `RateLimit-Policy` values, when the headers are sent.
    constant_headers: Option<(String, String)>,
    /// With `policy: redis`: the shared counters.
    shared: Option<Shared>,
}

impl PluginSpec for LimitCount {
    const NAME: &'static str = "limit-count";
    // APISIX's limit-count priority: after authentication, before kafka-divert.
    const PRIORITY: i32 = 1002;
    type Config = LimitCountConfig;

    fn build(
        &self,
        c: LimitCountConfig,
        at: &FieldPath,
        scope: &BuildScope<'_>,
    ) -> std::result::Result<Arc<dyn Plugin>, Vec<FieldError>> {
        let redis = c.policy == "redis";
        let on_error = c.on_store_error;
        let mut plugin = LimitCountPlugin::new(c, at, scope.clock.clone())?;
        if redis {
            let client = self
                .stores
                .client_for(scope.redis, &at.key("policy"))
                .map_err(|e| vec![e])?;
            plugin.shared = Some(Shared::new(
                client,
                scope.route_id,
                plugin.counter,
                on_error,
            ));
        }
        Ok(Arc::new(plugin))
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
        // `policy: fixed | sliding` named the window before `policy` chose the store.
        let legacy = match c.policy.as_str() {
            "local" | "redis" => None,
            "fixed" => Some(WindowType::Fixed),
            "sliding" => Some(WindowType::Sliding),
            other => {
                errors.push(FieldError::value(
                    at.key("policy"),
                    format!("unknown policy `{other}` (known: local, redis)"),
                ));
                None
            }
        };
        let window_type = match (legacy, c.window_type) {
            (Some(l), Some(w)) if l != w => {
                errors.push(FieldError::value(
                    at.key("window_type"),
                    format!(
                        "conflicts with `policy: {}` (an earlier spelling of `window_type`)",
                        c.policy
                    ),
                ));
                w
            }
            (Some(w), _) | (None, Some(w)) => w,
            (None, None) => WindowType::Fixed,
        };
        let policy = match window_type {
            WindowType::Fixed => Policy::Fixed,
            WindowType::Sliding => Policy::Sliding,
        };
        match keyed {
            Some(keyed) if errors.is_empty() => Ok(Self {
                keyed,
                counter: WindowCounter::new(c.count, window, policy),
                shared: None,
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

    /// Count the request locally; the refusal when over the quota. The `RateLimit-*`
    /// headers go into the context, for whatever answers the request.
    pub fn check(&self, req: &RequestHeader, ctx: &mut RequestCtx) -> Option<HttpResponse> {
        let quota = self.keyed.apply(
            req,
            ctx,
            |now| self.counter.state(now),
            |s, now| self.counter.check(s, now),
        );
        self.answer(quota, ctx)
    }

    /// The `RateLimit-*` headers for `quota`, and the refusal when it is spent.
    fn answer(&self, quota: Quota, ctx: &mut RequestCtx) -> Option<HttpResponse> {
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

    /// Count the request in Redis. A store error is counted, then `on_store_error`
    /// decides: on (no headers, no refusal) or `503`.
    async fn check_shared(
        &self,
        shared: &Shared,
        req: &RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Option<HttpResponse> {
        match shared.check(&self.keyed.key_of(req, ctx)).await {
            Ok(quota) => self.answer(quota, ctx),
            Err(e) => {
                count_error(LimitCount::NAME, &e);
                shared.on_error.refusal(ctx)
            }
        }
    }
}

#[async_trait]
impl Plugin for LimitCountPlugin {
    fn phases(&self) -> Phases {
        Phases::REQUEST
    }

    async fn request(&self, req: &mut Request<'_>, ctx: &mut RequestCtx) -> Result<Flow> {
        let refusal = match &self.shared {
            None => self.check(req.header(), ctx),
            Some(shared) => self.check_shared(shared, req.header(), ctx).await,
        };
        Ok(match refusal {
            None => Flow::Continue,
            Some(r) => Flow::Respond(r),
        })
    }
}

#[cfg(test)]
mod tests;
