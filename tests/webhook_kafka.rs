//! kafka-webhook end to end on Apache Kafka: the real binary consumes with a consumer group
//! and delivers to a scripted receiver. Records diverted over HTTP arrive signed, in key
//! order, once each, with their content type and forwarded headers; a failing key is
//! retried without holding up the others and ends in the dead-letter topic with its
//! `sluice-dlq-*` headers; offsets are committed to the end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use sluice_e2e::client::request;
use sluice_e2e::gateway::Gateway;
use sluice_e2e::kafka::{committed, read_topic, Kafka};
use sluice_e2e::metrics::{scrape, wait_sum};
use sluice_e2e::receiver::{verify, Receiver, Reply};
use sluice_e2e::wait_for;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const KEYS: usize = 6;
const PER_KEY: usize = 15;

fn json(body: &[u8]) -> serde_json::Value {
    serde_json::from_slice(body).unwrap()
}

#[test]
fn diverted_records_arrive_signed_in_key_order_and_failures_go_to_the_dead_letter_topic() {
    let kafka = Kafka::start();
    kafka.create_topic("orders", 3);
    kafka.create_topic("orders.dlq", 1);
    let receiver =
        Receiver::start(|seen, _| Reply::status(if seen.url.contains("/bad") { 500 } else { 200 }));
    let gw = Gateway::start(&format!(
        r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], grace_period: 0s }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
kafka: {{ clusters: {{ default: {{ brokers: ["{bootstrap}"] }} }} }}
routes:
  - id: divert
    match: {{ paths: ["/orders/*"], methods: [POST] }}
    plugins:
      kafka-divert: {{ topic: orders, key: "{{path.1}}", forward_headers: [x-tenant], idempotency: {{ scope: global }} }}
subscriptions:
  - id: orders-hook
    topics: [orders]
    properties: {{ session.timeout.ms: 6000, heartbeat.interval.ms: 500 }}
    kafka-webhook:
      url: "http://127.0.0.1:{port}/hook/{{key}}?offset={{offset}}"
      secrets: ["{SECRET}"]
      headers: [x-tenant]
      retries: [5s, 5s]          # long enough that all good records arrive before the first DLQ, even on a loaded machine
      allow_private_targets: true
"#,
        bootstrap = kafka.bootstrap,
        port = receiver.port,
    ));
    // 90 records over 6 keys, posted one after the other, then 3 for a failing key.
    let mut posted = 0;
    for seq in 0..PER_KEY {
        for k in 0..KEYS {
            let body = format!(r#"{{"key":"k{k}","seq":{seq}}}"#);
            let r = request(
                gw.port,
                "POST",
                &format!("/orders/k{k}"),
                &[("content-type", "application/json"), ("x-tenant", "acme")],
                body.as_bytes(),
            );
            assert_eq!(r.status, 202, "{}", r.text());
            posted += 1;
        }
    }
    for seq in 0..3 {
        let r = request(
            gw.port,
            "POST",
            "/orders/bad",
            &[("content-type", "application/json")],
            format!(r#"{{"key":"bad","seq":{seq}}}"#).as_bytes(),
        );
        assert_eq!(r.status, 202);
    }

    // Every good record arrives while the failing key is still being retried.
    let good = |r: &Receiver| {
        r.hits()
            .into_iter()
            .filter(|h| !h.seen.url.contains("/bad"))
            .count()
    };
    wait_for("good records delivered", Duration::from_secs(60), || {
        (good(&receiver) >= posted).then_some(())
    });
    let m = scrape(gw.admin);
    assert_eq!(
        m.sum(
            "sluice_webhook_deliveries_total",
            &[
                ("subscription", "orders-hook"),
                ("outcome", "dead_lettered")
            ]
        ),
        0.0,
        "the failing key did not hold up the others"
    );

    let hits = receiver.hits();
    let mut per_key: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for h in hits.iter().filter(|h| !h.seen.url.contains("/bad")) {
        assert!(verify(SECRET, &h.seen), "signature of {:?}", h.seen);
        assert_eq!(h.seen.method, "POST");
        assert_eq!(h.seen.header("content-type"), Some("application/json"));
        assert_eq!(h.seen.header("x-tenant"), Some("acme"));
        let v = json(&h.seen.body);
        let key = v["key"].as_str().unwrap().to_string();
        assert!(
            h.seen.url.starts_with(&format!("/hook/{key}?offset=")),
            "{}",
            h.seen.url
        );
        per_key
            .entry(key)
            .or_default()
            .push(v["seq"].as_u64().unwrap());
    }
    assert_eq!(per_key.len(), KEYS);
    for (key, seqs) in &per_key {
        assert_eq!(
            *seqs,
            (0..PER_KEY as u64).collect::<Vec<_>>(),
            "key {key}: once each, in order"
        );
    }

    // The failing key: 3 attempts per record with a stable webhook-id, then the DLQ.
    let dlq = read_topic(
        &kafka.bootstrap,
        "orders.dlq",
        3,
        Duration::from_millis(300),
        Duration::from_secs(60),
    );
    assert_eq!(dlq.len(), 3);
    let bad: Vec<_> = receiver
        .hits()
        .into_iter()
        .filter(|h| h.seen.url.contains("/bad"))
        .collect();
    assert_eq!(bad.len(), 9, "1 attempt + 2 retries per record");
    let mut by_id: HashMap<String, usize> = HashMap::new();
    for h in &bad {
        *by_id
            .entry(h.seen.header("webhook-id").unwrap().to_string())
            .or_default() += 1;
    }
    assert!(
        by_id.len() == 3 && by_id.values().all(|n| *n == 3),
        "{by_id:?}"
    );
    for (i, r) in dlq.iter().enumerate() {
        assert_eq!(
            json(&r.value)["seq"],
            i as u64,
            "the dead-letter topic keeps the key's order"
        );
        assert_eq!(r.key.as_deref(), Some(&b"bad"[..]));
        assert_eq!(r.header("sluice-dlq-topic").as_deref(), Some("orders"));
        assert_eq!(r.header("sluice-dlq-attempts").as_deref(), Some("3"));
        assert_eq!(r.header("sluice-dlq-last-status").as_deref(), Some("500"));
        assert_eq!(
            r.header("sluice-dlq-subscription").as_deref(),
            Some("orders-hook")
        );
        assert!(r
            .header("sluice-dlq-offset")
            .unwrap()
            .parse::<i64>()
            .is_ok());
        // The original headers are kept: the CloudEvents id is the webhook-id.
        assert!(by_id.contains_key(&r.header("ce_id").unwrap()));
    }

    let labels = [("subscription", "orders-hook")];
    let m = wait_sum(
        gw.admin,
        "sluice_webhook_deliveries_total",
        &[
            ("subscription", "orders-hook"),
            ("outcome", "dead_lettered"),
        ],
        3.0,
    );
    assert_eq!(
        m.sum(
            "sluice_webhook_deliveries_total",
            &[("subscription", "orders-hook"), ("outcome", "delivered")]
        ),
        posted as f64
    );
    assert_eq!(
        m.sum(
            "sluice_webhook_attempts_total",
            &[("subscription", "orders-hook"), ("result", "5xx")]
        ),
        9.0
    );
    assert_eq!(
        m.sum(
            "sluice_webhook_attempts_total",
            &[("subscription", "orders-hook"), ("result", "2xx")]
        ),
        posted as f64
    );
    assert_eq!(
        m.sum("sluice_webhook_attempt_duration_seconds_count", &labels),
        posted as f64 + 9.0
    );

    // Everything done is committed: the group's offsets reach the end of each partition.
    wait_for(
        "offsets committed to the end",
        Duration::from_secs(20),
        || {
            let c = committed(&kafka.bootstrap, "sluice-orders-hook", "orders", 3);
            (c.iter().sum::<i64>() == posted as i64 + 3).then_some(())
        },
    );
    gw.stop();
}
