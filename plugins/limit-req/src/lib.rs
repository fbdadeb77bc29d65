//! The `limit-req` plugin (APISIX's `limit-req`, nginx's `limit_req`): requests per key
//! drain at `rate` per second; up to `burst` requests above the rate are accepted and
//! delayed to the rate (or let through at once with `nodelay`); beyond that, `429` with
//! `Retry-After`. With `policy: local` the buckets are per route and per Sluice
//! process; with `policy: redis` ([`shared`]) every instance using the same Redis
//! drains one bucket per key.

mod shared;

use std::sync::Arc;

use async_trait::async_trait;
use pingora_error::Result;
use pingora_http::RequestHeader;
use serde::Deserialize;
use sluice_core::config::decode::FieldError;
use sluice_core::config::path::FieldPath;
use sluice_core::{
    BuildScope, Flow, HttpResponse, Phases, Plugin, PluginSpec, Request, RequestCtx,
};
use sluice_limits::reply::{default_code, default_key, default_max_keys};
use sluice_limits::{
    Clock, CommonLimitConfig, Decision, Keyed, LeakyBucket, LeakyState, OnStoreError,
};
use sluice_store::{count_error, StorePolicy, Stores};

use shared::Shared;

/// `plugins.limit-req:`
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitReqConfig {
    /// Requests per second a key may make steadily (> 0; fractions allowed, e.g. `0.5`).
    /// Required.
    pub rate: f64,
    /// Requests above the rate accepted (and delayed) before refusing. Default `0`.
    #[serde(default)]
    pub burst: f64,
    /// Let accepted requests above the rate through at once instead of delaying them
    /// to the rate. Default `false`.
    #[serde(default)]
    pub nodelay: bool,
    /// What to count by: `remote_addr` (default), `consumer`, `route` (one bucket for
    /// everyone) or a template such as `"{header.x-tenant}"`. An empty value (no
    /// consumer, header missing) falls back to the client's IP address.
    #[serde(default = "default_key")]
    pub key: String,
    /// Status of a refused request (400-599). Default `429`.
    #[serde(default = "default_code")]
    pub rejected_code: u16,
    /// `detail` of the refusal's problem document. Default `request rate exceeded`.
    #[serde(default)]
    pub rejected_msg: Option<String>,
    /// Keys remembered at most with `policy: local`; past it, drained keys are dropped
    /// first, then arbitrary ones (that key starts over). Default `100000`. (With
    /// `policy: redis`, a bucket expires in Redis once drained.)
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
    /// Where the buckets live: `local` (default: in this process) or `redis` (in the
    /// top-level `redis:` server, shared by every instance that uses it).
    #[serde(default)]
    pub policy: StorePolicy,
    /// With `policy: redis`, when Redis does not answer within `redis.timeout`:
    /// `allow` (default: the request goes on, undelayed) or `deny` (`503` with
    /// `Retry-After: 1`). Either way it is counted in
    /// `sluice_store_errors_total{plugin="limit-req"}`.
    #[serde(default)]
    pub on_store_error: OnStoreError,
}

/// The plugin factory (`limit-req`); holds the shared-store runtime for
/// `policy: redis`.
pub struct LimitReq {
    stores: Arc<Stores>,
}

impl LimitReq {
    /// A factory whose `policy: redis` instances use `stores`.
    pub fn new(stores: Arc<Stores>) -> Self {
        Self { stores }
    }
}

/// One configured instance with its buckets.
pub struct LimitReqPlugin {
    keyed: Keyed<LeakyState>,
    bucket: LeakyBucket,
    /// With `policy: redis`: the shared buckets.
    shared: Option<Shared>,
}

impl PluginSpec for LimitReq {
    const NAME: &'static str = "limit-req";
    // APISIX's limit-req priority: after authentication and limit-count.
    const PRIORITY: i32 = 1001;
    type Config = LimitReqConfig;

    fn build(
        &self,
        c: LimitReqConfig,
        at: &FieldPath,
        scope: &BuildScope<'_>,
    ) -> std::result::Result<Arc<dyn Plugin>, Vec<FieldError>> {
        let (policy, on_error) = (c.policy, c.on_store_error);
        let mut plugin = LimitReqPlugin::new(c, at, scope.clock.clone())?;
        if policy == StorePolicy::Redis {
            let client = self
                .stores
                .client_for(scope.redis, &at.key("policy"))
                .map_err(|e| vec![e])?;
            plugin.shared = Some(Shared::new(client, scope.route_id, plugin.bucket, on_error));
        }
        Ok(Arc::new(plugin))
    }
}

impl LimitReqPlugin {
    /// An instance timed by `clock`; errors carry paths under `at`.
    pub fn new(
        c: LimitReqConfig,
        at: &FieldPath,
        clock: Arc<dyn Clock>,
    ) -> std::result::Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        if !(c.rate.is_finite() && c.rate > 0.0 && c.rate <= 1e9) {
            errors.push(FieldError::value(
                at.key("rate"),
                "must be a number above 0",
            ));
        }
        if !(c.burst.is_finite() && c.burst >= 0.0) {
            errors.push(FieldError::value(at.key("burst"), "must be 0 or more"));
        }
        let common = CommonLimitConfig {
            key: c.key,
            rejected_code: c.rejected_code,
            rejected_msg: c.rejected_msg,
            max_keys: c.max_keys,
        };
        match Keyed::new(common, at, clock, &mut errors) {
            Some(keyed) if errors.is_empty() => Ok(Self {
                keyed,
                bucket: LeakyBucket::new(c.rate, c.burst, c.nodelay),
                shared: None,
            }),
            _ => Err(errors),
        }
    }

    /// Account the request: how long to delay it, or its refusal.
    pub fn check(
        &self,
        req: &RequestHeader,
        ctx: &RequestCtx,
    ) -> std::result::Result<std::time::Duration, HttpResponse> {
        let decision = self.keyed.apply(
            req,
            ctx,
            |now| self.bucket.state(now),
            |s, now| self.bucket.check(s, now),
        );
        self.answer(decision, ctx)
    }

    /// The delay, or the refusal.
    fn answer(
        &self,
        decision: Decision,
        ctx: &RequestCtx,
    ) -> std::result::Result<std::time::Duration, HttpResponse> {
        match decision {
            Decision::Allow(delay) => Ok(delay),
            Decision::Reject(wait) => {
                Err(self
                    .keyed
                    .common
                    .refuse(ctx, "rate_limited", "request rate exceeded", wait))
            }
        }
    }

    /// Account the request in Redis. A store error is counted, then `on_store_error`
    /// decides: on, undelayed, or `503`.
    async fn check_shared(
        &self,
        shared: &Shared,
        req: &RequestHeader,
        ctx: &RequestCtx,
    ) -> std::result::Result<std::time::Duration, HttpResponse> {
        match shared.check(&self.keyed.key_of(req, ctx)).await {
            Ok(decision) => self.answer(decision, ctx),
            Err(e) => {
                count_error(LimitReq::NAME, &e);
                match shared.on_error.refusal(ctx) {
                    None => Ok(std::time::Duration::ZERO),
                    Some(r) => Err(r),
                }
            }
        }
    }
}

#[async_trait]
impl Plugin for LimitReqPlugin {
    fn phases(&self) -> Phases {
        Phases::REQUEST
    }

    async fn request(&self, req: &mut Request<'_>, ctx: &mut RequestCtx) -> Result<Flow> {
        let checked = match &self.shared {
            None => self.check(req.header(), ctx),
            Some(shared) => self.check_shared(shared, req.header(), ctx).await,
        };
        match checked {
            Ok(delay) => {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                Ok(Flow::Continue)
            }
            Err(r) => Ok(Flow::Respond(r)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sluice_limits::ManualClock;

    use super::*;

    fn plugin(yaml: &str) -> (LimitReqPlugin, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new());
        let c: LimitReqConfig = serde_yaml::from_str(yaml).unwrap();
        let p = LimitReqPlugin::new(c, &FieldPath::root(), clock.clone()).unwrap();
        (p, clock)
    }

    fn ctx(ip: &str) -> RequestCtx {
        let mut c = RequestCtx::new();
        c.client_ip = Some(ip.parse().unwrap());
        c
    }

    #[test]
    fn burst_is_delayed_then_refused_with_retry_after() {
        let (p, clock) = plugin("{ rate: 2, burst: 2 }");
        let req = RequestHeader::build("GET", b"/", None).unwrap();
        let c = ctx("10.0.0.1");
        assert_eq!(p.check(&req, &c).unwrap(), Duration::ZERO);
        assert_eq!(p.check(&req, &c).unwrap(), Duration::from_millis(500));
        assert_eq!(p.check(&req, &c).unwrap(), Duration::from_secs(1));
        let r = p.check(&req, &c).unwrap_err();
        assert_eq!(r.status, 429);
        assert!(r
            .headers
            .iter()
            .any(|(n, v)| n == "retry-after" && v == "1"));
        // Another address has its own bucket.
        assert_eq!(p.check(&req, &ctx("10.0.0.2")).unwrap(), Duration::ZERO);
        clock.advance(Duration::from_millis(500));
        assert_eq!(p.check(&req, &c).unwrap(), Duration::from_secs(1));
    }

    #[test]
    fn nodelay_counts_exactly() {
        let (p, clock) = plugin("{ rate: 10, burst: 5, nodelay: true, key: '{header.x-tenant}' }");
        let mut req = RequestHeader::build("GET", b"/", None).unwrap();
        req.insert_header("x-tenant", "acme").unwrap();
        let ok = (0..20)
            .filter(|_| p.check(&req, &ctx("10.0.0.1")).is_ok())
            .count();
        assert_eq!(ok, 6);
        // The same tenant from another address shares the bucket.
        assert!(p.check(&req, &ctx("10.0.0.9")).is_err());
        clock.advance(Duration::from_millis(300));
        let ok = (0..20)
            .filter(|_| p.check(&req, &ctx("10.0.0.1")).is_ok())
            .count();
        assert_eq!(ok, 3);
    }

    #[test]
    fn config_errors() {
        for (yaml, path) in [
            ("{ rate: 0 }", "rate"),
            ("{ rate: 1, burst: -1 }", "burst"),
            ("{ rate: 1, key: nope }", "key"),
        ] {
            let c: LimitReqConfig = serde_yaml::from_str(yaml).unwrap();
            let e = LimitReqPlugin::new(c, &FieldPath::root(), Arc::new(ManualClock::new()))
                .err()
                .unwrap();
            assert_eq!(e[0].path.to_string(), path, "{yaml}");
        }
    }

    #[test]
    fn redis_policy_needs_the_redis_section() {
        let (consumers, clusters) = (Vec::new(), Default::default());
        let scope = BuildScope {
            route_id: "r",
            declared_clusters: &clusters,
            consumers: &consumers,
            authenticates: false,
            redis: None,
            clock: Arc::new(ManualClock::new()),
        };
        let c: LimitReqConfig = serde_yaml::from_str("{ rate: 1, policy: redis }").unwrap();
        let e = LimitReq::new(Default::default())
            .build(c, &FieldPath::root(), &scope)
            .err()
            .unwrap();
        assert_eq!(e[0].path.to_string(), "policy");
    }
}

/// limit-req through its trait, as the proxy runs it.
#[cfg(test)]
mod trait_tests {
    use sluice_core::testkit::{TestExchange, TestRoute};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn excess_is_refused_with_429_and_the_window_refills_with_the_clock() {
        let r = TestRoute::new().with(
            LimitReq::new(Default::default()),
            "{ rate: 2, burst: 1, nodelay: true }",
        );
        let mut statuses = Vec::new();
        for _ in 0..3 {
            let out = r.exchange(TestExchange::get("/"), None).await;
            statuses.push(out.status().unwrap());
        }
        assert_eq!(statuses, [200, 200, 429]);
        let out = r.exchange(TestExchange::get("/"), None).await;
        assert_eq!(out.ctx.responded_by, Some("limit-req"));
        assert_eq!(out.header("retry-after"), Some("1"));
        assert!(out.upstream.is_none());
        assert_eq!(r.rejections("rate_limited"), 2);
        r.clock.advance(Duration::from_millis(500));
        let out = r.exchange(TestExchange::get("/"), None).await;
        assert_eq!(out.status(), Some(200));
    }
}
