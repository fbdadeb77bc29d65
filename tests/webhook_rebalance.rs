//! kafka-webhook through rebalances on Apache Kafka, with both consumer-group protocols
//! Kafka 4 offers: `classic` and KIP-848's `consumer` (librdkafka's `group.protocol`).
//! One subscription (one group) on one Sluice process, a second process joins while
//! deliveries are in flight and every delivery slot of the first is held by the receiver
//! (the partitions are split), then the first is killed with `kill -9` in the middle of
//! deliveries (the second takes everything over). Every record is delivered at least
//! once, each key's records arrive in order (counting each record's first arrival), the
//! committed offsets, sampled every 200 ms, never move backwards, and in the end the
//! group's offsets reach the end of every partition.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_e2e::delivery::{assert_each_key_in_order, keyed_records, parse, CommitSampler};
use sluice_e2e::gateway::Gateway;
use sluice_e2e::kafka::{committed, produce, Kafka};
use sluice_e2e::metrics::scrape;
use sluice_e2e::receiver::{Receiver, Reply};
use sluice_e2e::wait_for;

const PARTITIONS: i32 = 4;
const KEYS: usize = 12;
const PER_KEY: usize = 50;
const GROUP: &str = "sluice-events-hook";

#[test]
fn classic_group_protocol_survives_a_join_and_a_kill_9_mid_delivery() {
    rebalance(
        "classic",
        "session.timeout.ms: 6000, heartbeat.interval.ms: 500",
    );
}

#[test]
fn kip_848_consumer_group_protocol_survives_a_join_and_a_kill_9_mid_delivery() {
    // Session and heartbeat are the broker's (group.consumer.*) with this protocol.
    rebalance("consumer", "");
}

fn rebalance(protocol: &str, extra: &str) {
    let kafka = Kafka::start();
    kafka.create_topic("events", PARTITIONS as u32);
    let records = keyed_records(KEYS, PER_KEY, PARTITIONS);
    produce(&kafka.bootstrap, "events", &records, 10_000);
    let total = records.len();

    // Each delivery takes a while, so there are always some in flight. The receiver holds
    // back deliveries by stage: at stage 0 the second half of every key, at stage 1 the
    // last quarter, at stage 2 nothing. So the first member is certainly mid-work when the
    // second joins (stage 0 until then) and when it is killed (stage 1 until then).
    let stage = Arc::new(AtomicUsize::new(0));
    let held = stage.clone();
    let receiver = Receiver::start(move |seen, _| {
        let seq = parse(&seen.body).1 as usize;
        let since = Instant::now();
        loop {
            let from = match held.load(Ordering::Acquire) {
                0 => PER_KEY / 2,
                1 => PER_KEY * 3 / 4,
                _ => PER_KEY,
            };
            if seq < from || since.elapsed() > Duration::from_secs(60) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Reply {
            delay: Duration::from_millis(30),
            ..Reply::status(200)
        }
    });
    let sep = if extra.is_empty() { "" } else { ", " };
    let config = format!(
        r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], grace_period: 0s }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
kafka: {{ clusters: {{ default: {{ brokers: ["{}"] }} }} }}
subscriptions:
  - id: events-hook
    topics: [events]
    start: earliest
    properties: {{ group.protocol: {protocol}{sep}{extra} }}
    kafka-webhook:
      url: "http://127.0.0.1:{}/hook/{{key}}"
      concurrency: 4
      timeout: 120s
      allow_private_targets: true
"#,
        kafka.bootstrap, receiver.port
    );
    let distinct = |r: &Receiver| {
        r.hits()
            .iter()
            .map(|h| parse(&h.seen.body))
            .collect::<HashSet<_>>()
            .len()
    };

    // Committed offsets, sampled all along: none may move backwards.
    let sampler = CommitSampler::start(&kafka.bootstrap, GROUP, "events", PARTITIONS);

    let mut a = Gateway::start(&config);
    wait_for("first deliveries", Duration::from_secs(120), || {
        (distinct(&receiver) >= total / 6).then_some(())
    });
    // A second member joins while the first is delivering (its deliveries of the second
    // halves are held): the partitions are split. The first member keeps polling its
    // consumer while every delivery slot is busy, so the rebalance completes.
    let b = Gateway::start(&config);
    wait_for(
        "the second member's assignment",
        Duration::from_secs(120),
        || b.logs().contains("partition(s) assigned").then_some(()),
    );
    stage.store(1, Ordering::Release);
    let delivered = |gw: &Gateway| {
        scrape(gw.admin).sum(
            "sluice_webhook_deliveries_total",
            &[("outcome", "delivered")],
        )
    };
    wait_for(
        "the second member delivers",
        Duration::from_secs(120),
        || (delivered(&b) >= 20.0).then_some(()),
    );
    // The first member dies mid-delivery; the second takes its partitions over.
    let by_a = delivered(&a);
    a.kill9();
    let at_kill = distinct(&receiver);
    stage.store(2, Ordering::Release);
    assert!(
        by_a > 0.0 && at_kill < total,
        "the kill came in the middle of the work: {by_a} delivered by the first member, {at_kill} of {total} in all"
    );
    wait_for("every record delivered", Duration::from_secs(180), || {
        (distinct(&receiver) == total).then_some(())
    });
    wait_for(
        "offsets committed to the end",
        Duration::from_secs(60),
        || {
            let c = committed(&kafka.bootstrap, GROUP, "events", PARTITIONS);
            (c.iter().sum::<i64>() == total as i64).then_some(())
        },
    );
    let samples = sampler.finish();

    // Each key's records arrive in order, counting each record's first arrival.
    let hits = receiver.hits();
    assert_each_key_in_order(&hits, parse, KEYS, PER_KEY);
    eprintln!(
        "{protocol}: {total} records, {} deliveries ({} again after the rebalances), {} offset samples",
        hits.len(),
        hits.len() - total,
        samples
    );
}
