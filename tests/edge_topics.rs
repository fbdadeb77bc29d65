//! Clients do not choose topic names: a templated topic (`ev.{path.1}`) must be on the
//! route's `topics_allowed`. Against a broker that auto-creates topics, requests naming
//! other topics get `404` (divert) or are discarded and counted (logger), and no topic
//! is created; allowed ones are produced.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sluice_e2e::client::request;
use sluice_e2e::gateway::Gateway;
use sluice_e2e::kafka::{read_topic, Kafka};
use sluice_e2e::metrics::wait_sum;
use sluice_e2e::origin::Origin;

#[test]
fn templated_topics_are_limited_to_the_allow_list() {
    let kafka = Kafka::start();
    kafka.create_topic("ev.orders", 1);
    kafka.create_topic("log.api", 1);
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
routes:
  - id: ingest
    match: {{ paths: ["/ev/*"], methods: [POST] }}
    plugins:
      kafka-divert: {{ topic: "ev.{{path.1}}", topics_allowed: [ev.orders, "ev.pay-*"], idempotency: {{ scope: client_ip }} }}
  - id: logged
    match: {{ paths: ["/*"] }}
    upstream: origin
    plugins:
      kafka-logger: {{ topic: "log.{{path.0}}", topics_allowed: [log.api] }}
"#,
        kafka.bootstrap, origin.port
    ));
    let before = kafka.topics();
    assert_eq!(
        request(gw.port, "POST", "/ev/orders", &[], b"{}").status,
        202
    );
    for i in 0..200 {
        let r = request(gw.port, "POST", &format!("/ev/made-up-{i}"), &[], b"{}");
        assert_eq!(r.status, 404, "request {i}");
        assert_eq!(r.json()["status"], 404);
    }
    assert_eq!(
        request(gw.port, "POST", "/ev/bad%20name", &[], b"{}").status,
        404,
        "an illegal topic name"
    );
    assert_eq!(request(gw.port, "GET", "/api/x", &[], b"").status, 200);
    for i in 0..100 {
        assert_eq!(
            request(gw.port, "GET", &format!("/other-{i}/x"), &[], b"").status,
            200,
            "proxied; the log event is discarded"
        );
    }
    wait_sum(
        gw.admin,
        "sluice_kafka_events_total",
        &[("route", "logged"), ("outcome", "acked")],
        1.0,
    );
    // Counted in the log phase, which runs after the response was sent: wait for it.
    let m = wait_sum(
        gw.admin,
        "sluice_kafka_events_total",
        &[("route", "logged"), ("reason", "topic_not_allowed")],
        100.0,
    );
    assert_eq!(
        m.sum(
            "sluice_divert_requests_total",
            &[("route", "ingest"), ("reason", "topic_not_allowed")]
        ),
        200.0
    );
    assert_eq!(
        m.sum(
            "sluice_http_rejections_total",
            &[("route", "ingest"), ("reason", "topic_not_allowed")]
        ),
        200.0
    );
    assert_eq!(kafka.topics(), before, "no topic was created");
    assert_eq!(
        read_topic(
            &kafka.bootstrap,
            "ev.orders",
            1,
            Duration::from_millis(500),
            Duration::from_secs(30)
        )
        .len(),
        1
    );
}
