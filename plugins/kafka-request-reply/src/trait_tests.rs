//! kafka-request-reply through its trait and its reply table: refusals before anything
//! is produced, the status URL of an unknown request, and how replies are matched —
//! to the waiting request, or counted `late`, `duplicate` or `other` — with the waiting
//! table bounded.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders, OwnedMessage, Timestamp};
use sluice_core::testkit::{TestExchange, TestRoute};
use sluice_kafka::KafkaRuntime;

use super::*;
use crate::replies::{matched_for_tests, NotWaiting, CORRELATION};

fn runtime() -> Arc<KafkaRuntime> {
    let clusters: BTreeMap<String, sluice_core::config::ClusterConfig> =
        serde_yaml::from_str("default: { brokers: ['127.0.0.1:1'] }").unwrap();
    Arc::new(KafkaRuntime::new(&clusters))
}

fn reply(id: &str, status: &str) -> OwnedMessage {
    OwnedMessage::new(
        Some(b"answer".to_vec()),
        None,
        "replies".into(),
        Timestamp::NotAvailable,
        0,
        0,
        Some(
            OwnedHeaders::new()
                .insert(Header {
                    key: CORRELATION,
                    value: Some(id),
                })
                .insert(Header {
                    key: "sluice-status",
                    value: Some(status),
                }),
        ),
    )
}

fn unmatched(route: &str, reason: &str) -> u64 {
    metrics::metrics().map_or(0, |m| m.unmatched.with_label_values(&[route, reason]).get())
}

#[tokio::test]
async fn nothing_is_produced_while_kafka_is_not_running() {
    let r = TestRoute::new().with(
        KafkaRequestReply::new(runtime()),
        "{ topic: requests, reply_topic: replies }",
    );
    let mut req = TestExchange::post("/q", "hello");
    let out = r.exchange_in(&mut req, r.ctx(), None).await;
    assert_eq!(out.status(), Some(503));
    assert_eq!(out.header("retry-after"), Some("1"));
    assert_eq!(req.body_reads, 0, "refused before the body is read");
    assert_eq!(r.rejections("kafka_unavailable"), 1);
    let out = r
        .exchange(TestExchange::get("/q?reply_id=nope"), None)
        .await;
    assert_eq!(out.status(), Some(404));
    assert_eq!(r.rejections("unknown_reply_id"), 1);
}

#[tokio::test]
async fn replies_are_matched_or_counted_and_waiting_is_bounded() {
    let kafka = runtime();
    let cluster = kafka.cluster("default").unwrap();
    let replies = Replies::new(
        "rr-unit",
        cluster,
        "replies",
        2,
        Duration::from_secs(60),
        10,
    );
    let rx = replies.wait("one").ok().unwrap();
    let _two = replies.wait("two").ok().unwrap();
    assert!(
        matches!(replies.wait("three"), Err(NotWaiting::Full)),
        "max_pending"
    );
    matched_for_tests(&replies, &reply("one", "202"));
    let got = rx.await.unwrap();
    assert_eq!((got.status, got.body.as_ref()), (202, &b"answer"[..]));
    matched_for_tests(&replies, &reply("one", "200"));
    assert_eq!(unmatched("rr-unit", "duplicate"), 1);
    replies.give_up("two");
    matched_for_tests(&replies, &reply("two", "200"));
    assert_eq!(unmatched("rr-unit", "late"), 1);
    matched_for_tests(&replies, &reply("someone-else", "200"));
    assert_eq!(unmatched("rr-unit", "other"), 1);
    assert_eq!(replies.pending(), 0);

    replies
        .wait_async("mine", Some("alice".into()))
        .ok()
        .unwrap();
    assert!(
        matches!(
            replies.status("mine", Some("bob")),
            replies::Status::Unknown
        ),
        "another consumer's request"
    );
    assert!(matches!(
        replies.status("mine", Some("alice")),
        replies::Status::Pending
    ));
    replies.wait_async("later", None).ok().unwrap();
    assert!(matches!(
        replies.status("later", None),
        replies::Status::Pending
    ));
    matched_for_tests(&replies, &reply("later", "not-a-status"));
    match replies.status("later", None) {
        replies::Status::Done(r) => assert_eq!(r.status, 200, "an invalid status is 200"),
        _ => panic!("the reply is kept for the status URL"),
    }
}
