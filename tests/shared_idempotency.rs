//! `kafka-divert` with `idempotency.policy: redis`: three `sluice` processes, one
//! Apache Kafka and one `redis-server`. The same `Idempotency-Key`, sent to all three
//! at once and again later, becomes exactly one record; every instance answers its
//! later requests with the same stored `202`; another payload is `422` everywhere. A
//! request refused after its key was claimed frees the key, also when Redis was frozen
//! (`SIGSTOP`) and ran the claim after Sluice stopped waiting. With Redis gone, keyed
//! requests are `503` with `Retry-After` (never produced unchecked), counted, while
//! requests without a key still go through.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sluice_e2e::client::{request, Response};
use sluice_e2e::gateway::Gateway;
use sluice_e2e::kafka::{read_topic, Kafka};
use sluice_e2e::metrics::{scrape, wait_sum};
use sluice_e2e::redis::Redis;

fn post(gw: &Gateway, path: &str, key: Option<&str>, body: &str) -> Response {
    let mut headers = vec![("x-topic", "nope")];
    if let Some(k) = key {
        headers.push(("idempotency-key", k));
    }
    request(gw.port, "POST", path, &headers, body.as_bytes())
}

#[test]
fn one_key_is_one_record_whichever_instance_is_asked() {
    let kafka = Kafka::start();
    kafka.create_topic("orders", 1);
    let mut redis = Redis::start();
    let yaml = format!(
        r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], grace_period: 1s }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
redis: {{ address: "{}", timeout: 300ms, connect_timeout: 300ms }}
kafka:
  clusters:
    default: {{ brokers: ["{}"], linger: 1ms }}
routes:
  - id: orders
    match: {{ paths: ["/orders"], methods: [POST] }}
    plugins:
      kafka-divert: {{ topic: orders, idempotency: {{ scope: global, policy: redis }} }}
  - id: any
    match: {{ paths: ["/any"], methods: [POST] }}
    plugins:
      kafka-divert:
        topic: "{{header.x-topic}}"
        topics_allowed: [orders]
        idempotency: {{ scope: global, policy: redis }}
"#,
        redis.address(),
        kafka.bootstrap
    );
    let gateways: Vec<Gateway> = (0..3).map(|_| Gateway::start(&yaml)).collect();

    // All three at once, five times each.
    let answers: Vec<Response> = std::thread::scope(|s| {
        let handles: Vec<_> = gateways
            .iter()
            .map(|g| {
                s.spawn(move || {
                    (0..5)
                        .map(|_| post(g, "/orders", Some("order-42"), r#"{"order":42}"#))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    for a in &answers {
        assert!(matches!(a.status, 202 | 409), "{} {}", a.status, a.text());
    }
    let originals: Vec<&Response> = answers
        .iter()
        .filter(|a| a.status == 202 && a.header("idempotent-replayed").is_none())
        .collect();
    assert_eq!(originals.len(), 1, "one request produced");
    let original = originals[0].json();

    // Later, each instance replays the stored answer.
    for g in &gateways {
        let r = post(g, "/orders", Some("order-42"), r#"{"order":42}"#);
        assert_eq!(r.status, 202);
        assert_eq!(r.header("idempotent-replayed"), Some("true"));
        assert_eq!(r.json(), original, "the same 202 on every instance");
        let other = post(g, "/orders", Some("order-42"), r#"{"order":43}"#);
        assert_eq!(other.status, 422, "{}", other.text());
    }
    let records = read_topic(
        &kafka.bootstrap,
        "orders",
        1,
        Duration::from_millis(500),
        Duration::from_secs(30),
    );
    assert_eq!(records.len(), 1, "exactly one record");
    assert_eq!(
        records[0].header("ce_id").as_deref(),
        original["id"].as_str()
    );

    // Refused after the claim (a topic not allowed): the key is free again.
    let r = post(&gateways[0], "/any", Some("order-7"), "{}");
    assert_eq!(r.status, 404, "{}", r.text());
    sluice_e2e::wait_for("the claim to be released", Duration::from_secs(10), || {
        (redis.key_count("sluice:idempotency:any:*") == 0).then_some(())
    });
    assert_eq!(redis.key_count("sluice:idempotency:orders:*"), 1);

    // Redis frozen (SIGSTOP): the claim is sent and not answered in time, so the
    // request is refused; when Redis resumes, the late claim must not hold the key.
    redis.signal(libc::SIGSTOP);
    let r = post(&gateways[2], "/orders", Some("order-50"), r#"{"order":50}"#);
    assert_eq!(r.status, 503, "{}", r.text());
    redis.signal(libc::SIGCONT);
    sluice_e2e::wait_for("Redis to answer again", Duration::from_secs(30), || {
        (redis.command(&["PING"]).ok()? == "+PONG").then_some(())
    });
    sluice_e2e::wait_for("the late claim released", Duration::from_secs(10), || {
        (redis.key_count("sluice:idempotency:orders:*") == 1).then_some(())
    });
    let r = post(&gateways[2], "/orders", Some("order-50"), r#"{"order":50}"#);
    assert_eq!(r.status, 202, "the key is free: {}", r.text());
    assert_eq!(r.header("idempotent-replayed"), None);

    // Redis gone: keyed requests are refused, unkeyed ones still produce.
    redis.stop();
    let r = post(&gateways[1], "/orders", Some("order-99"), r#"{"order":99}"#);
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    let r = post(&gateways[1], "/orders", None, r#"{"order":100}"#);
    assert_eq!(r.status, 202, "{}", r.text());
    wait_sum(
        gateways[1].admin,
        "sluice_divert_requests_total",
        &[
            ("route", "orders"),
            ("outcome", "rejected"),
            ("reason", "idempotency_store_unavailable"),
        ],
        1.0,
    );
    assert!(
        scrape(gateways[1].admin).sum("sluice_store_errors_total", &[("plugin", "kafka-divert")])
            >= 1.0
    );
    let records = read_topic(
        &kafka.bootstrap,
        "orders",
        3,
        Duration::from_millis(500),
        Duration::from_secs(30),
    );
    assert_eq!(
        records.len(),
        3,
        "order-50 once, then the unkeyed request only"
    );
}
