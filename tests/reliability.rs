//! Nothing lost, with the real binary and Apache Kafka (restarted on the same log
//! directory, so what it acknowledged survives): under steady load the broker is killed
//! (`kill -9`) or frozen (`SIGSTOP`) for a while and comes back; an `at_least_once` logger
//! route and an `acks: spool` divert route lose nothing, a `best_effort` route accounts
//! for every request exactly. And `kill -9` of Sluice with a spool: the next process
//! delivers what the first one spooled.
//!
//! The clusters use the idempotent producer (`acks: all`, the default). Replays from the
//! spool are at-least-once: a record whose acknowledgement was lost can be in Kafka twice
//! (same id); such duplicates are counted and printed, not hidden.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::time::Duration;

use sluice_e2e::gateway::Gateway;
use sluice_e2e::kafka::{read_topic, Kafka};
use sluice_e2e::load::{accepted_ids, try_request, Load, Planned};
use sluice_e2e::metrics::{events, scrape, Scrape};
use sluice_e2e::origin::Origin;
use sluice_e2e::wait_for;

fn config(kafka: &Kafka, origin: u16) -> String {
    format!(
        r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], grace_period: 1s }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
kafka:
  clusters:
    default:
      brokers: ["{}"]
      delivery_timeout: 2s
      spool: {{ dir: "{{DIR}}/spool", max_bytes: 256MiB, sync: batch }}
upstreams: {{ origin: {{ nodes: ["127.0.0.1:{origin}"] }} }}
routes:
  - id: audit
    match: {{ paths: ["/audit/*"] }}
    upstream: origin
    plugins: {{ kafka-logger: {{ topic: audit, delivery: at_least_once }} }}
  - id: plain
    match: {{ paths: ["/plain/*"] }}
    upstream: origin
    plugins: {{ kafka-logger: {{ topic: plain }} }}
  - id: ingest
    match: {{ paths: ["/ingest/*"], methods: [POST] }}
    plugins: {{ kafka-divert: {{ topic: ingest, acks: spool, key: "{{path.1}}", idempotency: {{ scope: global }} }} }}
"#,
        kafka.bootstrap
    )
}

/// Request n: route by n % 3, carrying its number as the request id (logger) or body.
fn plan(n: u64) -> Planned {
    let rid = vec![("X-Request-Id".to_string(), format!("req-{n}"))];
    match n % 3 {
        0 => ("GET".into(), format!("/audit/{n}"), rid, vec![]),
        1 => ("GET".into(), format!("/plain/{n}"), rid, vec![]),
        _ => (
            "POST".into(),
            format!("/ingest/k{}", n % 7),
            rid,
            format!("{{\"n\":{n}}}").into_bytes(),
        ),
    }
}

fn drained(m: &Scrape) -> bool {
    m.sum("sluice_spool_records", &[]) == 0.0
        && ["audit", "plain", "ingest"].iter().all(|r| {
            let plugin = if *r == "ingest" {
                "kafka-divert"
            } else {
                "kafka-logger"
            };
            events(m, r, plugin).4 == 0.0
        })
}

/// request_id of every logger record (with multiplicity).
fn logged_ids(bootstrap: &str, topic: &str, expect: usize) -> Vec<String> {
    read_topic(
        bootstrap,
        topic,
        expect,
        Duration::from_secs(3),
        Duration::from_secs(120),
    )
    .iter()
    .map(|r| r.json()["request_id"].as_str().unwrap().to_string())
    .collect()
}

fn duplicates(ids: &[String]) -> usize {
    ids.len() - ids.iter().collect::<HashSet<_>>().len()
}

#[test]
fn a_broker_killed_for_20s_loses_nothing_acknowledged_and_counts_the_rest() {
    outage(Outage::Kill);
}

#[test]
fn a_broker_frozen_for_20s_loses_nothing_acknowledged_and_counts_the_rest() {
    outage(Outage::Freeze);
}

enum Outage {
    /// `kill -9`, then a restart on the same log directory.
    Kill,
    /// `SIGSTOP`, then `SIGCONT`: connections stay open and nothing answers.
    Freeze,
}

fn outage(kind: Outage) {
    let mut kafka = Kafka::start();
    for t in ["audit", "plain", "ingest"] {
        kafka.create_topic(t, 1);
    }
    let origin = Origin::start();
    let gw = Gateway::start(&config(&kafka, origin.port));
    let load = Load::start(gw.port, 3, Duration::from_millis(10), plan);
    wait_for("load before the outage", Duration::from_secs(60), || {
        (load.count() > 100).then_some(())
    });
    match kind {
        Outage::Kill => kafka.kill(),
        Outage::Freeze => kafka.pause(),
    }
    // The outage lasts until the spool holds plenty (the 2 s delivery timeout moves
    // events there), and at least 20 s.
    let started = std::time::Instant::now();
    let spooled = wait_for(
        "the outage to fill the spool",
        Duration::from_secs(120),
        || {
            let s = scrape(gw.admin).sum("sluice_spool_records", &[]);
            (s > 100.0 && started.elapsed() > Duration::from_secs(20)).then_some(s)
        },
    );
    match kind {
        Outage::Kill => kafka.restart(),
        Outage::Freeze => kafka.resume(),
    }
    let before = load.count();
    wait_for("load after the outage", Duration::from_secs(60), || {
        (load.count() > before + 100).then_some(())
    });
    let outcomes = load.stop();
    let m = wait_for("the spool to drain", Duration::from_secs(120), || {
        let m = scrape(gw.admin);
        drained(&m).then_some(m)
    });

    // Every request was answered: proxied 200s, divert 202s (spooled, never 503).
    let by_route = |p: &str| {
        outcomes
            .iter()
            .filter(move |o| o.path.starts_with(p))
            .collect::<Vec<_>>()
    };
    for o in &outcomes {
        assert!(matches!(o.status, Some(200 | 202)), "{o:?}");
    }
    let audit = by_route("/audit/");
    let plain = by_route("/plain/");
    let ingest = by_route("/ingest/");

    // at_least_once: every request is in Kafka.
    let audit_ids = logged_ids(&kafka.bootstrap, "audit", audit.len());
    let audit_set: HashSet<&String> = audit_ids.iter().collect();
    let missing: Vec<u64> = audit
        .iter()
        .map(|o| o.n)
        .filter(|n| !audit_set.contains(&format!("req-{n}")))
        .collect();
    assert!(
        missing.is_empty(),
        "at_least_once lost {} of {}: {:?}",
        missing.len(),
        audit.len(),
        &missing[..missing.len().min(10)]
    );

    // acks: spool: every 202 id is in Kafka.
    let records = read_topic(
        &kafka.bootstrap,
        "ingest",
        ingest.len(),
        Duration::from_secs(3),
        Duration::from_secs(120),
    );
    let ce_ids: Vec<String> = records.iter().filter_map(|r| r.header("ce_id")).collect();
    let ce_set: HashSet<&String> = ce_ids.iter().collect();
    for o in &ingest {
        let v: serde_json::Value = serde_json::from_str(&o.body).unwrap();
        assert_eq!(v["spooled"], true);
        assert!(
            ce_set.contains(&v["id"].as_str().unwrap().to_string()),
            "202 id {} is in Kafka",
            v["id"]
        );
    }

    // best_effort: in Kafka or counted — exactly.
    let (attempted, acked, failed, discarded, in_flight) = events(&m, "plain", "kafka-logger");
    // At least the acknowledged ones are there: read until they all arrived.
    let plain_ids = logged_ids(&kafka.bootstrap, "plain", acked as usize);
    let plain_set: HashSet<&String> = plain_ids.iter().collect();
    assert_eq!(in_flight, 0.0);
    assert_eq!(attempted, plain.len() as f64, "one event per request");
    assert_eq!(
        attempted,
        acked + failed + discarded,
        "every event accounted for"
    );
    // Acknowledged events are in Kafka; failed ones may be (the broker can persist a
    // record whose acknowledgement was lost); discarded ones are not.
    let in_kafka = plain_set.len() as f64;
    assert!(
        in_kafka >= acked && in_kafka <= acked + failed,
        "in Kafka {in_kafka}, acked {acked}, failed {failed}"
    );
    let not_in_kafka = plain.len() as f64 - in_kafka;
    assert!(
        not_in_kafka <= failed + discarded,
        "{not_in_kafka} plain requests are not in Kafka but only {} were counted as failed/discarded",
        failed + discarded
    );

    eprintln!(
        "outage: {} requests; audit {} ({} duplicates in Kafka), ingest {} ({} duplicates), plain {} (acked {acked}, failed {failed}, discarded {discarded}); spool peak {spooled}",
        outcomes.len(),
        audit.len(),
        duplicates(&audit_ids),
        ingest.len(),
        duplicates(&ce_ids),
        plain.len()
    );
    gw.stop();
}

#[test]
fn kill_9_with_a_spool_then_restart_delivers_what_was_spooled() {
    let mut kafka = Kafka::start();
    for t in ["audit", "plain", "ingest"] {
        kafka.create_topic(t, 1);
    }
    kafka.kill();
    let origin = Origin::start();
    let gw = Gateway::start(&config(&kafka, origin.port));
    // at_least_once logger events go to the spool once their delivery times out (2 s).
    for n in 0..30u64 {
        let (method, path, headers, body) = plan(n * 3);
        assert_eq!(
            try_request(gw.port, &method, &path, &headers, &body)
                .unwrap()
                .0,
            200
        );
    }
    let spooled = wait_for("audit events spooled", Duration::from_secs(20), || {
        let m = scrape(gw.admin);
        let s = m.sum(
            "sluice_kafka_events_total",
            &[("route", "audit"), ("outcome", "spooled")],
        );
        (s == 30.0).then_some(s)
    });
    assert_eq!(spooled, 30.0);
    // With the broker down, divert answers 202 once the event is synced to the spool;
    // kill -9 in the middle of that load.
    let load = Load::start(gw.port, 3, Duration::ZERO, |n| plan(n * 3 + 2));
    wait_for("divert load", Duration::from_secs(20), || {
        (load.count() > 300).then_some(())
    });
    let mut gw = gw;
    gw.kill9();
    let accepted = accepted_ids(&load.stop());
    assert!(accepted.len() > 300);
    // The broker is back; a new process on the same config adopts the dead one's spool
    // directory and replays it.
    kafka.restart();
    let _gw2 = gw.restart_like(&[], true);
    let records = read_topic(
        &kafka.bootstrap,
        "ingest",
        accepted.len(),
        Duration::from_secs(2),
        Duration::from_secs(120),
    );
    let in_kafka: HashSet<String> = records.iter().filter_map(|r| r.header("ce_id")).collect();
    for id in &accepted {
        assert!(
            in_kafka.contains(id),
            "acknowledged (202) event {id} was lost"
        );
    }
    let audit = logged_ids(&kafka.bootstrap, "audit", 30);
    let audit_set: HashSet<&String> = audit.iter().collect();
    assert_eq!(
        audit_set.len(),
        30,
        "every spooled at_least_once event is delivered"
    );
}
