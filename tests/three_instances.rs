//! Three `sluice` processes on one Apache Kafka behave as one gateway on the consume
//! side. One webhook subscription (one consumer group, KIP-848 protocol) runs on all
//! three: the admin API shows each instance owning its own share of the partitions,
//! together all of them once; one instance is killed with `kill -9` while its
//! deliveries are held by the receiver; every record is still delivered at least once,
//! each key in order, no committed offset moves backwards, and the group's offsets
//! reach the end. An SSE client that read part of a topic on one instance resumes on
//! another with its `Last-Event-ID`: no gap, no duplicate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_e2e::client::get;
use sluice_e2e::delivery::{assert_each_key_in_order, keyed_records, parse, CommitSampler};
use sluice_e2e::gateway::Gateway;
use sluice_e2e::kafka::{committed, produce, Kafka};
use sluice_e2e::receiver::{Receiver, Reply};
use sluice_e2e::sse::read_until;
use sluice_e2e::wait_for;

const PARTITIONS: i32 = 6;
const KEYS: usize = 12;
const PER_KEY: usize = 20;
const GROUP: &str = "sluice-orders-hook";
const WAIT: Duration = Duration::from_secs(120);

/// The partitions `gw` owns, from `GET /v1/subscriptions`.
fn owned(gw: &Gateway) -> Vec<i64> {
    let v = get(gw.admin, "/v1/subscriptions").json();
    v["subscriptions"][0]["assigned"]
        .as_array()
        .map(|a| a.iter().map(|p| p["partition"].as_i64().unwrap()).collect())
        .unwrap_or_default()
}

#[test]
fn one_subscription_on_three_instances_survives_a_kill_9() {
    let kafka = Kafka::start();
    kafka.create_topic("orders", PARTITIONS as u32);
    let records = keyed_records(KEYS, PER_KEY, PARTITIONS);
    produce(&kafka.bootstrap, "orders", &records, 10_000);
    let total = records.len();

    // Until released, the receiver holds each key's second half: every instance is
    // mid-work (its delivery slots busy) when one of them is killed.
    let released = Arc::new(AtomicBool::new(false));
    let held = released.clone();
    let receiver = Receiver::start(move |seen, _| {
        let seq = parse(&seen.body).1 as usize;
        let since = Instant::now();
        while seq >= PER_KEY / 2
            && !held.load(Ordering::Acquire)
            && since.elapsed() < Duration::from_secs(60)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        Reply {
            delay: Duration::from_millis(10),
            ..Reply::status(200)
        }
    });
    let config = format!(
        r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], grace_period: 0s }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
kafka: {{ clusters: {{ default: {{ brokers: ["{}"] }} }} }}
subscriptions:
  - id: orders-hook
    topics: [orders]
    start: earliest
    properties: {{ group.protocol: consumer }}
    kafka-webhook:
      url: "http://127.0.0.1:{}/hook/{{key}}"
      concurrency: 2
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
    let sampler = CommitSampler::start(&kafka.bootstrap, GROUP, "orders", PARTITIONS);

    let mut gateways: Vec<Gateway> = (0..3).map(|_| Gateway::start(&config)).collect();
    // Every instance owns a share; together they own every partition exactly once.
    let shares = wait_for("the partitions split over three", WAIT, || {
        let shares: Vec<Vec<i64>> = gateways.iter().map(owned).collect();
        let all: Vec<i64> = shares.iter().flatten().copied().collect();
        let distinct: BTreeSet<i64> = all.iter().copied().collect();
        (shares.iter().all(|s| !s.is_empty())
            && all.len() == PARTITIONS as usize
            && distinct.len() == PARTITIONS as usize)
            .then_some(shares)
    });
    let victim_share = shares[0].clone();
    // The first halves are delivered; the second halves are held in every slot.
    wait_for("the first halves", WAIT, || {
        (distinct(&receiver) >= total / 2).then_some(())
    });
    let at_kill = distinct(&receiver);
    gateways[0].kill9();
    released.store(true, Ordering::Release);
    assert!(at_kill < total, "killed mid-work: {at_kill} of {total}");
    // The survivors take the victim's partitions over.
    wait_for("the victim's partitions taken over", WAIT, || {
        let mut now: Vec<i64> = gateways[1..].iter().flat_map(owned).collect();
        now.sort();
        (now == (0..PARTITIONS as i64).collect::<Vec<_>>()).then_some(())
    });
    wait_for("every record delivered", Duration::from_secs(180), || {
        (distinct(&receiver) == total).then_some(())
    });
    wait_for("offsets committed to the end", WAIT, || {
        let c = committed(&kafka.bootstrap, GROUP, "orders", PARTITIONS);
        (c.iter().sum::<i64>() == total as i64).then_some(())
    });
    sampler.finish();
    assert!(!victim_share.is_empty());

    assert_each_key_in_order(&receiver.hits(), parse, KEYS, PER_KEY);
}

#[test]
fn an_sse_client_resumes_on_another_instance_without_gap_or_duplicate() {
    let kafka = Kafka::start();
    kafka.create_topic("feed", 3);
    let config = format!(
        r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], grace_period: 0s }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
kafka: {{ clusters: {{ default: {{ brokers: ["{}"] }} }} }}
routes:
  - id: feed
    match: {{ paths: ["/feed"], methods: [GET] }}
    plugins:
      kafka-sse: {{ topic: feed, start: earliest, keepalive: 300ms, token_keys: ["feed-key-0123456789abcdef"] }}
"#,
        kafka.bootstrap
    );
    let records: Vec<(i32, String, String)> = (0..60)
        .map(|i| (i % 3, format!("k{}", i % 3), format!("e{i}")))
        .collect();
    produce(&kafka.bootstrap, "feed", &records, 1000);
    let gateways: Vec<Gateway> = (0..3).map(|_| Gateway::start(&config)).collect();

    // A third of the events on the first instance, the next third on the second (from
    // the first's last id), the rest on the third.
    let mut got: Vec<String> = Vec::new();
    let mut last: Option<String> = None;
    for (i, gw) in gateways.iter().enumerate() {
        let want = if i < 2 { 20 } else { 60 - got.len() };
        let r = read_until(gw.port, "/feed", last.as_deref(), WAIT, |r| {
            r.events.len() >= want
        });
        assert_eq!(r.status, 200, "{}", r.error);
        assert_eq!(r.events.len(), want, "instance {i}");
        got.extend(r.events.iter().map(|e| e.data.clone()));
        last = r.events.last().and_then(|e| e.id.clone());
        assert!(last.is_some(), "events carry ids");
    }
    let unique: BTreeSet<&String> = got.iter().collect();
    assert_eq!(unique.len(), 60, "no duplicate");
    let expected: BTreeSet<String> = (0..60).map(|i| format!("e{i}")).collect();
    assert_eq!(
        unique.into_iter().cloned().collect::<BTreeSet<_>>(),
        expected,
        "no gap"
    );
    // Per partition, in order.
    for p in 0..3 {
        let seq: Vec<usize> = got
            .iter()
            .map(|d| d[1..].parse::<usize>().unwrap())
            .filter(|i| i % 3 == p)
            .collect();
        assert!(
            seq.windows(2).all(|w| w[0] < w[1]),
            "partition {p} in order"
        );
    }
}
