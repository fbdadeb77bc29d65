//! kafka-divert through its trait, as the proxy runs it: the refusals that happen before
//! anything is produced (and read no more of the body than needed), and a cluster that
//! is not running (`503`, counted, no wait).

use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_core::testkit::{TestExchange, TestRoute};
use sluice_kafka::KafkaRuntime;

use super::*;

fn route(yaml: &str) -> TestRoute {
    let clusters: BTreeMap<String, sluice_core::config::ClusterConfig> =
        serde_yaml::from_str("default: { brokers: ['127.0.0.1:1'] }").unwrap();
    let kafka = Arc::new(KafkaRuntime::new(&clusters));
    TestRoute::new().with(KafkaDivert::new(kafka, Arc::default()), yaml)
}

fn counted(r: &TestRoute, reason: &str) -> u64 {
    metrics::divert()
        .map(|m| {
            m.requests
                .with_label_values(&[&r.id, "rejected", reason])
                .get()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn a_declared_oversized_body_is_refused_unread_and_the_connection_closed() {
    let r = route("{ topic: orders, max_body_bytes: 10, idempotency: { scope: client_ip } }");
    let mut req = TestExchange::post("/o", "0123456789abcdef").header("expect", "100-continue");
    let out = r.exchange_in(&mut req, r.ctx(), None).await;
    assert_eq!(out.status(), Some(413));
    assert_eq!(out.ctx.responded_by, Some("kafka-divert"));
    assert_eq!(req.body_reads, 0, "nothing read");
    assert!(
        !req.continue_sent,
        "no 100 Continue for a body that is refused"
    );
    assert!(
        req.closed,
        "the unread body must not be taken for a next request"
    );
    assert_eq!(counted(&r, "body_too_large"), 1);
}

#[tokio::test]
async fn an_undeclared_body_is_capped_while_streaming() {
    let r = route("{ topic: orders, max_body_bytes: 10, idempotency: { scope: client_ip } }");
    let mut req = TestExchange::new("POST", "/o").chunks(["01234567", "89abcdef", "rest"]);
    let out = r.exchange_in(&mut req, r.ctx(), None).await;
    assert_eq!(out.status(), Some(413));
    assert_eq!(req.body_reads, 2, "stops at the chunk that crosses the cap");
    assert!(req.closed);
}

#[tokio::test]
async fn empty_bodies_and_missing_required_keys_are_400() {
    let r = route("{ topic: orders, idempotency: { scope: client_ip } }");
    let out = r.exchange(TestExchange::new("POST", "/o"), None).await;
    assert_eq!(out.status(), Some(400));
    assert_eq!(counted(&r, "empty_body"), 1);
    let r = route("{ topic: orders, idempotency: { required: true, scope: client_ip } }");
    let mut req = TestExchange::post("/o", "{}");
    let out = r.exchange_in(&mut req, r.ctx(), None).await;
    assert_eq!(out.status(), Some(400));
    assert_eq!(req.body_reads, 0, "refused before the body is read");
}

#[tokio::test]
async fn a_cluster_that_is_not_running_gives_503_at_once() {
    let r = route("{ topic: orders, idempotency: { scope: client_ip } }");
    let out = r
        .exchange(TestExchange::post("/o", "{\"id\":1}"), None)
        .await;
    assert_eq!(out.status(), Some(503));
    assert!(out.header("retry-after").is_some());
    assert!(out.upstream.is_none());
}
