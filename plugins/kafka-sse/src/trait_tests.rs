//! kafka-sse through its trait, as the proxy runs it: resume tokens are checked before
//! anything is opened (another route's or a forged token is `400`, counted), and a
//! cluster that is not running is `503` at once without keeping a stream slot.

use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_core::testkit::{TestExchange, TestRoute};
use sluice_core::Phases;
use sluice_kafka::KafkaRuntime;

use super::*;

const KEY: &str = "0123456789abcdef-key";

fn route(yaml: &str) -> TestRoute {
    let clusters: BTreeMap<String, sluice_core::config::ClusterConfig> =
        serde_yaml::from_str("default: { brokers: ['127.0.0.1:1'] }").unwrap();
    let kafka = Arc::new(KafkaRuntime::new(&clusters));
    TestRoute::new().with(KafkaSse::new(kafka), yaml)
}

fn token(route: &str, topic: &str) -> String {
    sluice_kafka::position::Signer::new(&[KEY.to_string()], route, topic)
        .encode(&BTreeMap::from([(0, 7)]))
}

#[test]
fn it_answers_and_writes_the_response_itself() {
    let r = route("{ topic: ev }");
    let p = &r.chain.entries()[0].plugin;
    assert_eq!(p.phases(), Phases::REQUEST);
    assert!(p.answers_requests() && p.writes_response());
}

#[tokio::test]
async fn forged_or_foreign_resume_tokens_are_400_before_anything_opens() {
    let r = route(&format!("{{ topic: ev, token_keys: ['{KEY}'] }}"));
    let forged = format!("{}x", token(&r.id, "ev"));
    for request in [
        TestExchange::get("/s").header("last-event-id", &forged),
        TestExchange::get("/s").header("last-event-id", &token("other-route", "ev")),
        TestExchange::get("/s").header("last-event-id", &token(&r.id, "other-topic")),
        TestExchange::get(&format!("/s?last_event_id={}", token("other-route", "ev"))),
    ] {
        let mut request = request;
        let out = r.exchange_in(&mut request, r.ctx(), None).await;
        assert_eq!(out.status(), Some(400));
        assert!(request.response.is_none(), "no stream header written");
        assert!(out.upstream.is_none());
    }
    assert_eq!(r.rejections("invalid_resume_token"), 4);
}

#[tokio::test]
async fn a_cluster_that_is_not_running_is_503_and_frees_its_slot() {
    let r = route(&format!(
        "{{ topic: ev, max_streams: 1, token_keys: ['{KEY}'] }}"
    ));
    // A valid token of this route passes the check and reaches the cluster.
    let valid = token(&r.id, "ev");
    for request in [
        TestExchange::get("/s").header("last-event-id", &valid),
        TestExchange::get("/s"),
    ] {
        let out = r.exchange(request, None).await;
        assert_eq!(out.status(), Some(503));
        assert_eq!(out.header("retry-after"), Some("1"));
        assert!(
            out.json()["detail"]
                .as_str()
                .is_some_and(|d| d.contains("not available yet")),
            "not `too many streams`: the first request's slot was given back: {}",
            out.json()
        );
    }
    assert_eq!(r.rejections("invalid_resume_token"), 0);
}
