//! One record Kafka will never take does not stall the spool: an `acks: spool` event
//! larger than the producer's `message.max.bytes`, among hundreds of small ones, is set
//! aside in the quarantine file (counted) and every other event is delivered, with the
//! broker up and across a `kill -9` and restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use sluice_e2e::client::request;
use sluice_e2e::gateway::Gateway;
use sluice_e2e::kafka::{read_topic, Kafka};
use sluice_e2e::metrics::scrape;
use sluice_e2e::{scratch_dir, wait_for};

const POISON: usize = 1_500_000;

fn gateway(kafka: &Kafka, spool: &Path) -> Gateway {
    Gateway::start(&format!(
        r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], grace_period: 1s }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
kafka:
  clusters:
    default:
      brokers: ["{}"]
      delivery_timeout: 2s
      spool: {{ dir: "{}", max_bytes: 256MiB }}
routes:
  - id: ingest
    match: {{ paths: ["/ingest"], methods: [POST] }}
    plugins:
      kafka-divert: {{ topic: ingest, acks: spool, max_body_bytes: 2MiB, idempotency: {{ scope: global }} }}
"#,
        kafka.bootstrap,
        spool.display()
    ))
}

/// POST `small` events named `tag-i`, with the poison record in the middle.
fn post_with_poison(gw: &Gateway, tag: &str, small: usize) {
    for i in 0..small {
        if i == small / 2 {
            let r = request(gw.port, "POST", "/ingest", &[], &vec![b'p'; POISON]);
            assert_eq!(r.status, 202, "the spool takes it: {}", r.text());
        }
        let r = request(
            gw.port,
            "POST",
            "/ingest",
            &[],
            format!("{tag}-{i}").as_bytes(),
        );
        assert_eq!(r.status, 202);
    }
}

fn quarantined(gw: &Gateway) -> f64 {
    scrape(gw.admin).sum("sluice_spool_quarantined_total", &[])
}

/// Wait until `name{labels}` sums to `expected` (replay waits out the broker's start and
/// retries with backoff, so allow a minute).
fn wait_sum(admin: u16, name: &str, labels: &[(&str, &str)], expected: f64) {
    wait_for(
        &format!("{name}{labels:?} == {expected}"),
        Duration::from_secs(90),
        || (scrape(admin).sum(name, labels) == expected).then_some(()),
    );
}

#[test]
fn a_poison_record_is_set_aside_and_the_rest_is_delivered() {
    let kafka = Kafka::start();
    kafka.create_topic("ingest", 1);
    let root = scratch_dir("poison").join("spool");

    // Broker up: 400 small events around one poison record.
    let gw = gateway(&kafka, &root);
    post_with_poison(&gw, "up", 400);
    wait_sum(gw.admin, "sluice_spool_replayed_total", &[], 400.0);
    wait_sum(
        gw.admin,
        "sluice_spool_quarantined_total",
        &[("reason", "message_size_too_large")],
        1.0,
    );
    wait_sum(gw.admin, "sluice_spool_records", &[], 0.0);
    // A clean stop persists the acknowledgements (after a `kill -9` the set-aside record
    // would be set aside again by the next process: at least once).
    gw.stop();

    // Broker frozen while 200 more and a poison record are spooled; Sluice dies.
    kafka.pause();
    let mut gw = gateway(&kafka, &root);
    post_with_poison(&gw, "restart", 200);
    gw.kill9();
    kafka.resume();
    // A new process adopts the spool, sets the poison aside and delivers the rest.
    let gw = gateway(&kafka, &root);
    wait_sum(gw.admin, "sluice_spool_replayed_total", &[], 200.0);
    wait_sum(gw.admin, "sluice_spool_quarantined_total", &[], 1.0);
    wait_sum(gw.admin, "sluice_spool_records", &[], 0.0);
    assert_eq!(quarantined(&gw), 1.0);

    let values: BTreeSet<String> = read_topic(
        &kafka.bootstrap,
        "ingest",
        1,
        Duration::from_millis(500),
        Duration::from_secs(60),
    )
    .iter()
    .map(|r| String::from_utf8_lossy(&r.value).into_owned())
    .collect();
    let expected: BTreeSet<String> = (0..400)
        .map(|i| format!("up-{i}"))
        .chain((0..200).map(|i| format!("restart-{i}")))
        .collect();
    assert_eq!(values, expected, "every small event, no poison");
    // Both poison records are in the quarantine file, framed as in the spool (at least
    // once: the second one may have been set aside by the process killed with `kill -9`
    // too, before its acknowledgement was persisted).
    let q = root.join("sluice-quarantine-default.seg");
    let len = std::fs::metadata(&q).unwrap().len() as usize;
    assert!((2 * POISON..4 * POISON).contains(&len), "{len} bytes");
}
