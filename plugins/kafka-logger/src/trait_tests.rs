//! kafka-logger through its trait, as the proxy runs it: the phases it asks for follow
//! its config, the exchange it mirrors passes through unchanged, and an event Kafka
//! cannot take (cluster not running, topic not allowed) is counted, never waited for.

use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_core::testkit::{TestExchange, TestRoute, TestUpstream};
use sluice_core::Phases;
use sluice_kafka::KafkaRuntime;

use super::*;

/// A route with the logger on a cluster that is not running.
fn route(yaml: &str) -> TestRoute {
    let clusters: BTreeMap<String, sluice_core::config::ClusterConfig> =
        serde_yaml::from_str("default: { brokers: ['127.0.0.1:1'] }").unwrap();
    let kafka = Arc::new(KafkaRuntime::new(&clusters));
    TestRoute::new().with(KafkaLogger::new(kafka), yaml)
}

fn discarded(r: &TestRoute, reason: &str) -> u64 {
    sluice_kafka::metrics::kafka()
        .map(|m| {
            m.outcomes
                .with_label_values(&[&r.id, "kafka-logger", "discarded", reason])
                .get()
        })
        .unwrap_or(0)
}

fn phases(r: &TestRoute) -> Phases {
    r.chain.entries()[0].plugin.phases()
}

#[test]
fn body_phases_only_when_bodies_are_logged() {
    assert_eq!(phases(&route("{ topic: t }")), Phases::LOG);
    assert_eq!(
        phases(&route("{ topic: t, include_req_body: true }")),
        Phases::LOG | Phases::REQUEST_BODY
    );
    assert_eq!(
        phases(&route("{ topic: t, include_resp_body: true }")),
        Phases::LOG | Phases::RESPONSE_BODY
    );
}

#[tokio::test]
async fn the_exchange_passes_unchanged_and_an_unsent_event_is_counted() {
    let r = route("{ topic: t, include_req_body: true, include_resp_body: true, max_req_body_bytes: 4, max_resp_body_bytes: 4 }");
    let request = TestExchange::new("POST", "/orders?x=1")
        .header("authorization", "Bearer secret")
        .chunks(["0123", "4567"]);
    let mut upstream = TestUpstream::new(201, "created-long-body");
    upstream.body.push("-more".into());
    let out = r.exchange(request, Some(upstream)).await;
    assert_eq!(out.status(), Some(201));
    assert_eq!(
        out.body, b"created-long-body-more",
        "capture cuts the copy, not the response"
    );
    let up = out.upstream.expect("proxied");
    assert_eq!(up.uri, "/orders?x=1");
    assert_eq!(
        up.headers.get("authorization").map(|v| v.as_bytes()),
        Some(&b"Bearer secret"[..]),
        "redaction is for the log entry only"
    );
    assert_eq!(out.ctx.request_body_bytes, 8);
    assert_eq!(discarded(&r, "not_started"), 1, "counted, not waited for");
    let again = r.exchange(TestExchange::get("/"), None).await;
    assert_eq!(again.status(), Some(200));
    assert_eq!(discarded(&r, "not_started"), 2);
}

#[tokio::test]
async fn a_topic_from_request_data_off_the_allow_list_is_counted_not_sent() {
    let r = route("{ topic: 'ev.{header.x-tenant}', topics_allowed: ['ev.a*'] }");
    let ok = r
        .exchange(TestExchange::get("/").header("x-tenant", "acme"), None)
        .await;
    assert_eq!(ok.status(), Some(200));
    assert_eq!(discarded(&r, "not_started"), 1, "ev.acme is allowed");
    let out = r
        .exchange(TestExchange::get("/").header("x-tenant", "other"), None)
        .await;
    assert_eq!(out.status(), Some(200), "the request itself is not refused");
    assert_eq!(discarded(&r, "topic_not_allowed"), 1);
    r.exchange(TestExchange::get("/").header("x-tenant", "a/../b"), None)
        .await;
    assert_eq!(discarded(&r, "invalid_topic"), 1);
}

#[test]
fn config_errors_point_at_their_fields() {
    let errors = TestRoute::new()
        .try_with(
            KafkaLogger::new(Arc::new(KafkaRuntime::default())),
            "{ cluster: nope, topic: 'ev.{path.1}', delivery: at_least_once, redact_headers: ['bad header'] }",
        )
        .err()
        .expect("refused");
    let text = errors.join("\n");
    for want in [
        "cluster: unknown cluster `nope`",
        "topic: a topic rendered from request data needs `topics_allowed`",
        "redact_headers[0]: \"bad header\" is not a header name",
    ] {
        assert!(text.contains(want), "{want:?} not in:\n{text}");
    }
}
