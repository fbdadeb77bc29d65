use sluice_core::context::Consumer;
use sluice_limits::ManualClock;

use super::*;

fn plugin(yaml: &str) -> (LimitCountPlugin, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new());
    let c: LimitCountConfig = serde_yaml::from_str(yaml).unwrap();
    let p = LimitCountPlugin::new(c, &FieldPath::root().key("limit-count"), clock.clone()).unwrap();
    (p, clock)
}

fn ctx(ip: &str, consumer: Option<&str>) -> RequestCtx {
    let mut c = RequestCtx::new();
    c.client_ip = Some(ip.parse().unwrap());
    c.consumer = consumer.map(|n| Consumer {
        name: n.into(),
        auth: "key-auth",
        auth_type: "api_key",
        claims: None,
    });
    c
}

fn header<'a>(ctx: &'a RequestCtx, name: &str) -> Option<&'a str> {
    ctx.response_headers
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn exact_count_then_429_with_headers() {
    let (p, clock) = plugin("{ count: 3, time_window: 60s }");
    let req = RequestHeader::build("GET", b"/", None).unwrap();
    for remaining in ["2", "1", "0"] {
        let mut c = ctx("10.0.0.1", None);
        assert!(p.check(&req, &mut c).is_none());
        assert_eq!(header(&c, "ratelimit-remaining"), Some(remaining));
        assert_eq!(header(&c, "ratelimit-limit"), Some("3"));
        assert_eq!(header(&c, "ratelimit-policy"), Some("3;w=60"));
    }
    clock.advance(Duration::from_millis(20_500));
    let mut c = ctx("10.0.0.1", None);
    let refusal = p.check(&req, &mut c).expect("the 4th request is refused");
    assert_eq!(refusal.status, 429);
    let retry = refusal
        .headers
        .iter()
        .find(|(n, _)| n == "retry-after")
        .unwrap();
    assert_eq!(retry.1, "40", "39.5 s left, rounded up");
    assert_eq!(header(&c, "ratelimit-remaining"), Some("0"));
    assert_eq!(header(&c, "ratelimit-reset"), Some("40"));
    // Another client has its own counter.
    assert!(p.check(&req, &mut ctx("10.0.0.2", None)).is_none());
    // The window ends 60 s after the first request.
    clock.advance(Duration::from_millis(39_499));
    assert!(p.check(&req, &mut ctx("10.0.0.1", None)).is_some());
    clock.advance(Duration::from_millis(1));
    assert!(p.check(&req, &mut ctx("10.0.0.1", None)).is_none());
}

#[test]
fn counts_by_consumer_across_addresses() {
    let (p, _) = plugin("{ count: 2, time_window: 1s, key: consumer, rejected_code: 503, rejected_msg: slow down, show_limit_quota_header: false }");
    let req = RequestHeader::build("GET", b"/", None).unwrap();
    assert!(p
        .check(&req, &mut ctx("10.0.0.1", Some("billing")))
        .is_none());
    assert!(p
        .check(&req, &mut ctx("10.0.0.2", Some("billing")))
        .is_none());
    let mut c = ctx("10.0.0.3", Some("billing"));
    let r = p.check(&req, &mut c).unwrap();
    assert_eq!(r.status, 503);
    assert!(String::from_utf8_lossy(&r.body).contains("slow down"));
    assert!(c.response_headers.is_empty());
    assert!(p
        .check(&req, &mut ctx("10.0.0.3", Some("mobile")))
        .is_none());
}

#[test]
fn config_errors() {
    let c: LimitCountConfig = serde_yaml::from_str(
        "{ count: 0, time_window: 0s, key: bogus, rejected_code: 200, max_keys: 0 }",
    )
    .unwrap();
    let errors = LimitCountPlugin::new(c, &FieldPath::root(), Arc::new(ManualClock::new()))
        .err()
        .unwrap();
    let paths: Vec<String> = errors.iter().map(|e| e.path.to_string()).collect();
    for p in ["count", "time_window", "key", "rejected_code", "max_keys"] {
        assert!(paths.iter().any(|x| x == p), "{p} in {paths:?}");
    }
}

#[test]
fn policy_chooses_the_store_and_redis_needs_its_section() {
    // Earlier versions' `policy: sliding` still means a local sliding window; it only
    // conflicts with a different `window_type`.
    let c: LimitCountConfig =
        serde_yaml::from_str("{ count: 1, time_window: 1s, policy: sliding }").unwrap();
    let p = LimitCountPlugin::new(c, &FieldPath::root(), Arc::new(ManualClock::new())).unwrap();
    assert_eq!(p.counter.policy(), Policy::Sliding);
    assert!(p.shared.is_none());
    let c: LimitCountConfig =
        serde_yaml::from_str("{ count: 1, time_window: 1s, policy: sliding, window_type: fixed }")
            .unwrap();
    let errors = LimitCountPlugin::new(c, &FieldPath::root(), Arc::new(ManualClock::new()))
        .err()
        .unwrap();
    assert_eq!(errors[0].path.to_string(), "window_type");
    let c: LimitCountConfig =
        serde_yaml::from_str("{ count: 1, time_window: 1s, policy: memcached }").unwrap();
    assert!(LimitCountPlugin::new(c, &FieldPath::root(), Arc::new(ManualClock::new())).is_err());

    // `policy: redis` without a `redis:` section.
    let consumers = Vec::new();
    let clusters = Default::default();
    let scope = BuildScope {
        route_id: "r",
        declared_clusters: &clusters,
        consumers: &consumers,
        authenticates: false,
        redis: None,
        clock: Arc::new(ManualClock::new()),
    };
    let c: LimitCountConfig =
        serde_yaml::from_str("{ count: 1, time_window: 1s, policy: redis }").unwrap();
    let factory = LimitCount::new(Default::default());
    let errors = factory
        .build(c, &FieldPath::root().key("limit-count"), &scope)
        .err()
        .unwrap();
    assert_eq!(errors[0].path.to_string(), "limit-count.policy");
    assert!(errors[0].message.contains("redis:"), "{errors:?}");
}

/// Through the trait, as the proxy runs it: the count, the `RateLimit-*` headers on
/// the upstream's answer and on the refusal, and the window's reset with the clock.
#[tokio::test]
async fn the_request_phase_counts_and_refuses_with_headers() {
    use sluice_core::testkit::{TestExchange, TestRoute};
    let r = TestRoute::new().with(
        LimitCount::new(Default::default()),
        "{ count: 2, time_window: 60s }",
    );
    let out = r.exchange(TestExchange::get("/"), None).await;
    assert_eq!(out.status(), Some(200));
    assert_eq!(out.header("ratelimit-remaining"), Some("1"));
    assert_eq!(out.header("ratelimit-limit"), Some("2"));
    let out = r.exchange(TestExchange::get("/"), None).await;
    assert_eq!(out.header("ratelimit-remaining"), Some("0"));
    let out = r.exchange(TestExchange::get("/"), None).await;
    assert_eq!(out.status(), Some(429));
    assert_eq!(out.ctx.responded_by, Some("limit-count"));
    assert_eq!(out.header("ratelimit-remaining"), Some("0"));
    assert!(out.header("retry-after").is_some());
    assert!(out.upstream.is_none());
    assert_eq!(r.rejections("quota_exceeded"), 1);
    r.clock.advance(std::time::Duration::from_secs(60));
    let out = r.exchange(TestExchange::get("/"), None).await;
    assert_eq!(out.status(), Some(200));
}
