//! kafka-webhook's read bound on Apache Kafka: a key whose delivery hangs, with 1,500
//! records behind it, fills the bound (1000 records read and not finished) and no more is
//! read; the member then pauses its partitions and still answers a rebalance; the records
//! it had queued for the partition it gives up are dropped at once, so it goes on reading
//! the partition it keeps (records produced while it was stuck); once the key is released
//! everything is delivered, in order per key, and the group's offsets reach the end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_e2e::delivery::parse;
use sluice_e2e::gateway::Gateway;
use sluice_e2e::kafka::{committed, produce, Kafka};
use sluice_e2e::metrics::scrape;
use sluice_e2e::receiver::{Receiver, Reply};
use sluice_e2e::wait_for;

const HOT: usize = 1500;
const COLD_KEYS: usize = 20;
const PER_COLD_KEY: usize = 10;
const GROUP: &str = "sluice-backlog-hook";

fn config(kafka: &Kafka, receiver: &Receiver, instance: &str) -> String {
    format!(
        r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], grace_period: 0s }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
kafka: {{ clusters: {{ default: {{ brokers: ["{}"] }} }} }}
subscriptions:
  - id: backlog-hook
    topics: [backlog]
    start: earliest
    properties: {{ group.instance.id: {instance}, session.timeout.ms: 6000, heartbeat.interval.ms: 500 }}
    kafka-webhook:
      url: "http://127.0.0.1:{}/hook/{{key}}"
      concurrency: 4
      timeout: 120s
      allow_private_targets: true
"#,
        kafka.bootstrap, receiver.port
    )
}

fn gauge(gw: &Gateway, name: &str) -> f64 {
    scrape(gw.admin).sum(name, &[("subscription", "backlog-hook")])
}

#[test]
fn a_stuck_key_fills_the_bound_yet_the_member_answers_a_rebalance_and_reads_on() {
    let kafka = Kafka::start();
    kafka.create_topic("backlog", 2);
    // Partition 0: one key with 1,500 records. Its deliveries hang until released.
    let hot: Vec<_> = (0..HOT)
        .map(|seq| {
            (
                0,
                "hot".to_string(),
                format!(r#"{{"key":"hot","seq":{seq}}}"#),
            )
        })
        .collect();
    produce(&kafka.bootstrap, "backlog", &hot, 10_000);
    let released = Arc::new(AtomicBool::new(false));
    let gate = released.clone();
    let hot_arrivals = Arc::new(AtomicUsize::new(0));
    let arrivals = hot_arrivals.clone();
    let receiver = Receiver::start(move |seen, _| {
        if parse(&seen.body).0 == "hot" {
            arrivals.fetch_add(1, Ordering::AcqRel);
            let since = Instant::now();
            while !gate.load(Ordering::Acquire) && since.elapsed() < Duration::from_secs(110) {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Reply::status(200)
    });

    // Static members: the range assignor orders them by instance id, so after the join
    // `member-1` (B) owns partition 0 and `member-2` (A) keeps partition 1.
    let a = Gateway::start(&config(&kafka, &receiver, "member-2"));
    wait_for(
        "the bound filled and reading paused",
        Duration::from_secs(60),
        || (gauge(&a, "sluice_webhook_paused") == 1.0).then_some(()),
    );
    let buffered = gauge(&a, "sluice_webhook_buffered");
    assert!(
        (1000.0..=1010.0).contains(&buffered),
        "about 1000 records read and not finished, got {buffered}"
    );
    assert_eq!(
        hot_arrivals.load(Ordering::Acquire),
        1,
        "one delivery of the key in flight"
    );

    // Produced while the member is stuck: it has not read them.
    let cold: Vec<_> = (0..PER_COLD_KEY)
        .flat_map(|seq| {
            (0..COLD_KEYS).map(move |k| {
                (
                    1,
                    format!("c{k}"),
                    format!(r#"{{"key":"c{k}","seq":{seq}}}"#),
                )
            })
        })
        .collect();
    produce(&kafka.bootstrap, "backlog", &cold, 10_000);

    // A second member joins: the stuck member answers the rebalance (both are assigned).
    let b = Gateway::start(&config(&kafka, &receiver, "member-1"));
    wait_for("both members assigned", Duration::from_secs(60), || {
        (b.logs().contains("partition(s) assigned")
            && a.logs().matches("partition(s) assigned").count() >= 2)
            .then_some(())
    });
    // The first member dropped what it had queued for partition 0 and reads partition 1.
    let cold_delivered = |r: &Receiver| {
        r.hits()
            .iter()
            .map(|h| parse(&h.seen.body))
            .filter(|(key, _)| key != "hot")
            .collect::<HashSet<_>>()
            .len()
    };
    wait_for(
        "partition 1 delivered while the key still hangs",
        Duration::from_secs(60),
        || (cold_delivered(&receiver) == COLD_KEYS * PER_COLD_KEY).then_some(()),
    );
    assert!(
        gauge(&a, "sluice_webhook_buffered") <= 1.0,
        "the first member keeps only its delivery in flight"
    );
    assert!(!released.load(Ordering::Acquire));

    // Released: everything is delivered and committed, and both members drain.
    released.store(true, Ordering::Release);
    let total = HOT + COLD_KEYS * PER_COLD_KEY;
    wait_for("every record delivered", Duration::from_secs(120), || {
        let seen: HashSet<_> = receiver
            .hits()
            .iter()
            .map(|h| parse(&h.seen.body))
            .collect();
        (seen.len() == total).then_some(())
    });
    wait_for(
        "offsets committed to the end",
        Duration::from_secs(60),
        || {
            (committed(&kafka.bootstrap, GROUP, "backlog", 2)
                == vec![HOT as i64, cold.len() as i64])
            .then_some(())
        },
    );
    for gw in [&a, &b] {
        wait_for(
            "the buffer drained and reading resumed",
            Duration::from_secs(30),
            || {
                (gauge(gw, "sluice_webhook_buffered") == 0.0
                    && gauge(gw, "sluice_webhook_paused") == 0.0)
                    .then_some(())
            },
        );
    }

    // Each key's records arrive in order, counting each record's first arrival.
    let mut first: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut seen = HashSet::new();
    for h in receiver.hits() {
        let (key, seq) = parse(&h.seen.body);
        if seen.insert((key.clone(), seq)) {
            first.entry(key).or_default().push(seq);
        }
    }
    for (key, seqs) in &first {
        let n = if key == "hot" { HOT } else { PER_COLD_KEY };
        assert_eq!(*seqs, (0..n as u64).collect::<Vec<_>>(), "key {key}");
    }
}
