//! kafka-request-reply through its trait and its reply table: refusals before anything
//! is produced, the status URL of an unknown request, and how replies are matched —
//! to the waiting request, or counted `late`, `duplicate` or `other` — with the waiting
//! table bounded; and another instance's asynchronous requests, answered here too.

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

/// The reply side of `route` (on a cluster that is not started): `max_pending` waiting,
/// `max_entries` asynchronous results kept for 60 s.
fn replies_of(route: &str, max_pending: usize, max_entries: usize) -> Replies {
    let kafka = runtime();
    let bounds = replies::AsyncBounds {
        ttl: Duration::from_secs(60),
        max_entries,
        max_bytes: 1 << 20,
    };
    Replies::new(
        route,
        kafka.cluster("default").unwrap(),
        "replies",
        max_pending,
        bounds,
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
    let replies = replies_of("rr-unit", 2, 10);
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
        .wait_async("mine", async_id::owner_tag(Some("alice")))
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
    replies
        .wait_async("later", async_id::owner_tag(None))
        .ok()
        .unwrap();
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

#[tokio::test]
async fn another_instances_asynchronous_request_is_answered_here_too() {
    let replies = replies_of("rr-other", 2, 10);
    let ttl = Duration::from_secs(60);
    // Taken by another instance for alice: pending for her here, unknown to others.
    let id = async_id::new_id(Some("alice"), ttl);
    assert!(matches!(
        replies.status(&id, Some("alice")),
        Status::Pending
    ));
    assert!(matches!(replies.status(&id, Some("bob")), Status::Unknown));
    assert!(matches!(replies.status(&id, None), Status::Unknown));
    // Its reply, read by this instance's reader, is kept for the status URL.
    matched_for_tests(&replies, &reply(&id, "201"));
    match replies.status(&id, Some("alice")) {
        Status::Done(r) => assert_eq!((r.status, r.body.as_ref()), (201, &b"answer"[..])),
        _ => panic!("the other instance's reply is kept here"),
    }
    assert!(matches!(replies.status(&id, Some("bob")), Status::Unknown));
    matched_for_tests(&replies, &reply(&id, "500"));
    assert_eq!(unmatched("rr-other", "duplicate"), 1);
    match replies.status(&id, Some("alice")) {
        Status::Done(r) => assert_eq!(r.status, 201, "the first reply stays"),
        _ => panic!("kept"),
    }
    // Expired: unknown, and a reply to it is late.
    let old = format!("a1.{}.-.{}", async_id::now_ms() - 1, uuid::Uuid::now_v7());
    assert!(matches!(replies.status(&old, None), Status::Unknown));
    matched_for_tests(&replies, &reply(&old, "200"));
    assert_eq!(unmatched("rr-other", "late"), 1);
    // A synchronous reply read back at the start is nobody's here and is not counted;
    // one read live is another instance's.
    let earlier = OwnedMessage::new(
        Some(b"x".to_vec()),
        None,
        "replies".into(),
        Timestamp::CreateTime(1_000),
        0,
        1,
        Some(OwnedHeaders::new().insert(Header {
            key: CORRELATION,
            value: Some("sync-id"),
        })),
    );
    crate::matching::matched(&replies.table, &earlier, true);
    assert_eq!(unmatched("rr-other", "other"), 0);
    crate::matching::matched(&replies.table, &earlier, false);
    assert_eq!(unmatched("rr-other", "other"), 1);
    assert_eq!(replies.pending(), 0);
}

#[tokio::test]
async fn other_instances_replies_never_push_this_ones_out() {
    let ttl = Duration::from_secs(60);
    let replies = replies_of("rr-bounds", 10, 2);
    let mine = async_id::new_id(None, ttl);
    replies
        .wait_async(&mine, async_id::owner_tag(None))
        .ok()
        .unwrap();
    // A flood of other instances' replies fills only their own table.
    for _ in 0..5 {
        matched_for_tests(&replies, &reply(&async_id::new_id(None, ttl), "200"));
    }
    assert!(matches!(replies.status(&mine, None), Status::Pending));
    // This instance's own table over its bound: a pending entry pushed out still gets
    // its reply (the id says for whom and how long).
    for _ in 0..2 {
        let other = async_id::new_id(None, ttl);
        replies
            .wait_async(&other, async_id::owner_tag(None))
            .ok()
            .unwrap();
    }
    matched_for_tests(&replies, &reply(&mine, "201"));
    match replies.status(&mine, None) {
        Status::Done(r) => assert_eq!(r.status, 201),
        _ => panic!("the reply is kept although its pending entry was pushed out"),
    }
}
