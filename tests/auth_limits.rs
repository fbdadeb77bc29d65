//! key-auth, consumer-restriction, limit-count and limit-req end to end: the real binary,
//! a real origin and Kafka. Credentials must reach neither the origin nor any Kafka
//! record; refused requests must not reach the origin; limits count exactly and answer
//! `429` with `Retry-After` and `RateLimit-*` headers; `/metrics` counts every refusal.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sluice_e2e::client::request;
use sluice_e2e::gateway::Gateway;
use sluice_e2e::kafka::{read_topic, Kafka};
use sluice_e2e::metrics::scrape;
use sluice_e2e::origin::Origin;

const BILLING_KEY: &str = "billing-8f3a2c1d9e7b";
const MOBILE_KEY: &str = "mobile-5d1e0f4b7a22";
const OPS_KEY: &str = "ops-c0ffee-1234";

fn rejections(admin: u16, route: &str, reason: &str) -> f64 {
    scrape(admin).sum(
        "sluice_http_rejections_total",
        &[("route", route), ("reason", reason)],
    )
}

#[test]
fn api_keys_authenticate_authorize_and_never_leak() {
    std::env::set_var("E2E_BILLING_API_KEY", BILLING_KEY);
    let kafka = Kafka::start();
    kafka.create_topic("sec-log", 1);
    kafka.create_topic("sec-divert", 1);
    let origin = Origin::start();
    let gw = Gateway::start(&format!(
        r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], grace_period: 1s }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
kafka:
  clusters:
    default: {{ brokers: ["{}"], linger: 1ms }}
upstreams:
  origin: {{ nodes: ["127.0.0.1:{}"] }}
consumers:
  - name: billing
    key-auth: {{ key: "${{E2E_BILLING_API_KEY}}" }}
  - name: mobile
    key-auth: {{ key: "{MOBILE_KEY}" }}
  - name: ops
    key-auth: {{ key: "{OPS_KEY}" }}
routes:
  - id: api
    match: {{ paths: ["/api/*"] }}
    upstream: origin
    plugins:
      key-auth: {{}}
      consumer-restriction: {{ allow: [billing, ops] }}
      kafka-logger: {{ topic: sec-log }}
  - id: ingest
    match: {{ paths: ["/ingest/*"], methods: [POST] }}
    plugins:
      key-auth: {{ header: x-api-key }}
      consumer-restriction: {{ deny: [ops] }}
      kafka-divert: {{ topic: sec-divert, key: "{{consumer}}" }}
"#,
        kafka.bootstrap, origin.port
    ));

    // 1. No key, 2. a wrong key: 401 with a problem document, never proxied.
    let r = request(gw.port, "GET", "/api/a", &[], b"");
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(
        r.header("www-authenticate"),
        Some("ApiKey header=\"apikey\"")
    );
    let r = request(
        gw.port,
        "GET",
        "/api/a",
        &[("apikey", "not-a-key-at-all")],
        b"",
    );
    assert_eq!(r.status, 401);
    assert!(r.text().contains("invalid API key"));
    // 3. Key in the query, 4. key in the header: proxied without the key.
    let r = request(
        gw.port,
        "GET",
        &format!("/api/q?x=1&apikey={BILLING_KEY}&y=2"),
        &[],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = request(gw.port, "GET", "/api/h", &[("apikey", BILLING_KEY)], b"");
    assert_eq!(r.status, 200);
    // 5. A valid consumer that the route does not allow: 403.
    let r = request(gw.port, "GET", "/api/m", &[("apikey", MOBILE_KEY)], b"");
    assert_eq!(r.status, 403, "{}", r.text());
    let seen = origin.seen();
    let urls: Vec<&str> = seen.iter().map(|s| s.url.as_str()).collect();
    assert_eq!(
        urls,
        ["/api/q?x=1&y=2", "/api/h"],
        "only authorized requests reach the origin"
    );
    for s in &seen {
        assert!(s.header("apikey").is_none(), "the key was stripped: {s:?}");
    }

    // Divert: the consumer keys the record and is named in CloudEvents authcontext.
    let r = request(
        gw.port,
        "POST",
        "/ingest/o",
        &[("x-api-key", MOBILE_KEY)],
        b"{\"n\":1}",
    );
    assert_eq!(r.status, 202, "{}", r.text());
    let r = request(
        gw.port,
        "POST",
        "/ingest/o",
        &[("x-api-key", OPS_KEY)],
        b"{\"n\":2}",
    );
    assert_eq!(r.status, 403);
    let r = request(
        gw.port,
        "POST",
        "/ingest/o",
        &[("apikey", MOBILE_KEY)],
        b"{\"n\":3}",
    );
    assert_eq!(r.status, 401, "the route reads the key from x-api-key");
    let diverted = read_topic(
        &kafka.bootstrap,
        "sec-divert",
        1,
        Duration::from_millis(500),
        Duration::from_secs(20),
    );
    assert_eq!(diverted.len(), 1);
    let d = &diverted[0];
    assert_eq!(d.key.as_deref(), Some(b"mobile".as_slice()));
    assert_eq!(d.header("ce_authid").as_deref(), Some("mobile"));
    assert_eq!(d.header("ce_authtype").as_deref(), Some("api_key"));
    assert_eq!(d.value, b"{\"n\":1}");

    // Every /api request is logged; no record holds a real key anywhere.
    let logged = read_topic(
        &kafka.bootstrap,
        "sec-log",
        5,
        Duration::from_millis(500),
        Duration::from_secs(20),
    );
    assert_eq!(logged.len(), 5);
    for rec in logged.iter().chain(&diverted) {
        let mut all = String::from_utf8_lossy(&rec.value).into_owned();
        for (n, v) in &rec.headers {
            all.push_str(n);
            all.push_str(&String::from_utf8_lossy(v));
        }
        for key in [BILLING_KEY, MOBILE_KEY, OPS_KEY] {
            assert!(!all.contains(key), "a key leaked into a record: {all}");
        }
    }
    let consumers: Vec<(String, u64)> = logged
        .iter()
        .map(|r| {
            let j = r.json();
            (
                j["consumer"].as_str().unwrap_or("-").to_string(),
                j["response"]["status"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, u64)> = [
        ("-", 401),
        ("-", 401),
        ("billing", 200),
        ("billing", 200),
        ("mobile", 403),
    ]
    .iter()
    .map(|(c, s)| (c.to_string(), *s))
    .collect();
    assert_eq!(consumers, expected);
    assert_eq!(logged[2].json()["request"]["uri"], "/api/q?x=1&y=2");

    assert_eq!(rejections(gw.admin, "api", "missing_credentials"), 1.0);
    assert_eq!(rejections(gw.admin, "api", "invalid_credentials"), 1.0);
    assert_eq!(rejections(gw.admin, "api", "forbidden"), 1.0);
    assert_eq!(rejections(gw.admin, "ingest", "forbidden"), 1.0);
    assert_eq!(rejections(gw.admin, "ingest", "missing_credentials"), 1.0);
}

#[test]
fn limits_count_exactly_and_answer_429_with_headers() {
    let origin = Origin::start();
    let gw = Gateway::start(&format!(
        r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], grace_period: 1s }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
upstreams:
  origin: {{ nodes: ["127.0.0.1:{}"] }}
consumers:
  - {{ name: billing, key-auth: {{ key: "{BILLING_KEY}" }} }}
  - {{ name: mobile, key-auth: {{ key: "{MOBILE_KEY}" }} }}
routes:
  - id: counted
    match: {{ paths: ["/counted/*"] }}
    upstream: origin
    plugins:
      key-auth: {{}}
      limit-count: {{ count: 3, time_window: 60s, key: consumer }}
  - id: paced
    match: {{ paths: ["/paced/*"] }}
    upstream: origin
    plugins:
      limit-req: {{ rate: 0.1, burst: 1, nodelay: true, key: "{{header.x-client}}" }}
"#,
        origin.port
    ));

    let mut statuses = Vec::new();
    for i in 0..5 {
        let r = request(
            gw.port,
            "GET",
            &format!("/counted/{i}"),
            &[("apikey", BILLING_KEY)],
            b"",
        );
        statuses.push(r.status);
        assert_eq!(r.header("ratelimit-limit"), Some("3"));
        assert_eq!(r.header("ratelimit-policy"), Some("3;w=60"));
        let remaining: u64 = r.header("ratelimit-remaining").unwrap().parse().unwrap();
        assert_eq!(remaining, 2u64.saturating_sub(i), "request {i}");
        let reset: u64 = r.header("ratelimit-reset").unwrap().parse().unwrap();
        assert!((1..=60).contains(&reset), "reset {reset}");
        if r.status == 429 {
            assert_eq!(r.header("content-type"), Some("application/problem+json"));
            let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
            assert!((1..=60).contains(&retry), "retry-after {retry}");
        }
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    // The other consumer has its own quota.
    let r = request(gw.port, "GET", "/counted/m", &[("apikey", MOBILE_KEY)], b"");
    assert_eq!(
        (r.status, r.header("ratelimit-remaining")),
        (200, Some("2"))
    );

    // limit-req: 1 + burst 1 per client, then 429 until the bucket drains (10 s each).
    let paced: Vec<u16> = (0..4)
        .map(|i| {
            request(
                gw.port,
                "GET",
                &format!("/paced/{i}"),
                &[("x-client", "a")],
                b"",
            )
            .status
        })
        .collect();
    assert_eq!(paced, [200, 200, 429, 429]);
    let r = request(gw.port, "GET", "/paced/x", &[("x-client", "a")], b"");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=10).contains(&retry), "retry-after {retry}");
    assert_eq!(
        request(gw.port, "GET", "/paced/b", &[("x-client", "b")], b"").status,
        200
    );

    let proxied = origin.seen().len();
    assert_eq!(
        proxied,
        3 + 1 + 2 + 1,
        "refused requests never reach the origin"
    );
    assert_eq!(rejections(gw.admin, "counted", "quota_exceeded"), 2.0);
    assert_eq!(rejections(gw.admin, "paced", "rate_limited"), 3.0);
}

#[test]
fn jwt_tokens_authenticate_and_claims_key_the_limits() {
    use jsonwebtoken::{encode, EncodingKey, Header};
    const SECRET: &str = "e2e-mobile-secret-0123456789abcdef";
    let origin = Origin::start();
    let gw = Gateway::start(&format!(
        r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], grace_period: 1s }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
upstreams:
  origin: {{ nodes: ["127.0.0.1:{}"] }}
consumers:
  - name: mobile
    jwt-auth: {{ key: mobile-app, secret: "{SECRET}" }}
routes:
  - id: app
    match: {{ paths: ["/app/*"] }}
    upstream: origin
    plugins:
      jwt-auth: {{ required_claims: [tenant] }}
      limit-count: {{ count: 2, time_window: 60s, key: "{{claim.tenant}}" }}
  - id: acme-only
    match: {{ paths: ["/acme/*"] }}
    upstream: origin
    plugins:
      jwt-auth: {{}}
      consumer-restriction: {{ claims: {{ tenant: [acme] }} }}
"#,
        origin.port
    ));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = |tenant: &str, exp: u64| {
        let claims = serde_json::json!({"key": "mobile-app", "tenant": tenant, "exp": exp});
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    };
    let call = |t: &str| {
        let auth = format!("Bearer {t}");
        request(
            gw.port,
            "GET",
            "/app/x",
            &[("authorization", auth.as_str())],
            b"",
        )
    };

    let acme = token("acme", now + 300);
    assert_eq!(call(&acme).status, 200);
    assert_eq!(call(&acme).status, 200);
    let r = call(&acme);
    assert_eq!(r.status, 429, "the third request of tenant acme");
    assert_eq!(
        call(&token("beta", now + 300)).status,
        200,
        "another tenant"
    );

    let r = call(&token("acme", now - 120));
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\"")
    );
    assert!(r.text().contains("expired"));
    let r = request(gw.port, "GET", "/app/x", &[], b"");
    assert_eq!(r.status, 401);
    let forged = encode(
        &Header::default(),
        &serde_json::json!({"key": "mobile-app", "tenant": "acme", "exp": now + 300}),
        &EncodingKey::from_secret(b"not-the-secret-not-the-secret-xxx"),
    )
    .unwrap();
    assert_eq!(call(&forged).status, 401);

    // Authorization by claim.
    let acme_only = |t: &str| {
        let auth = format!("Bearer {t}");
        request(
            gw.port,
            "GET",
            "/acme/x",
            &[("authorization", auth.as_str())],
            b"",
        )
        .status
    };
    assert_eq!(acme_only(&acme), 200);
    assert_eq!(acme_only(&token("beta", now + 300)), 403);

    let seen = origin.seen();
    assert_eq!(seen.len(), 4, "only the accepted requests reach the origin");
    assert!(
        seen.iter().all(|s| s.header("authorization").is_none()),
        "token stripped"
    );
    assert_eq!(rejections(gw.admin, "app", "expired_token"), 1.0);
    assert_eq!(rejections(gw.admin, "app", "missing_credentials"), 1.0);
    assert_eq!(rejections(gw.admin, "app", "invalid_credentials"), 1.0);
    assert_eq!(rejections(gw.admin, "app", "quota_exceeded"), 1.0);
}
