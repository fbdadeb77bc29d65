//! kafka-webhook against librdkafka's mock cluster (the real binary, a scripted
//! receiver): `Retry-After`, timeouts, `410 Gone`, refused private targets (literal,
//! by name, IPv4-mapped, cloud metadata), `kill -9` in the middle of a retry (nothing
//! skipped), and a subscription added by a reload.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sluice_e2e::gateway::Gateway;
use sluice_e2e::kafka::{committed, produce, read_topic};
use sluice_e2e::metrics::{scrape, wait_sum};
use sluice_e2e::receiver::{Receiver, Reply};
use sluice_e2e::wait_for;

fn mock_gateway(bootstrap: &str, subscriptions: &str) -> Gateway {
    Gateway::start(&format!(
        r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], grace_period: 0s }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
kafka: {{ clusters: {{ default: {{ brokers: ["{bootstrap}"] }} }} }}
routes: []
subscriptions:
{subscriptions}
"#
    ))
}

fn records(n: usize, key: impl Fn(usize) -> String) -> Vec<(i32, String, String)> {
    (0..n).map(|i| (0, key(i), format!("record-{i}"))).collect()
}

#[test]
fn retry_after_timeouts_gone_and_private_targets() {
    let mock = rdkafka::mocking::MockCluster::new(1).unwrap();
    for t in ["a", "a.dlq", "b", "b.dlq", "c", "c.dlq", "d", "d.dlq"] {
        mock.create_topic(t, 1, 1).unwrap();
    }
    let bootstrap = mock.bootstrap_servers();
    let receiver = Receiver::start(|seen, earlier| match (&seen.url[..2], earlier) {
        ("/a", 0) => Reply {
            status: 429,
            headers: vec![("retry-after".into(), "1".into())],
            delay: Duration::ZERO,
        },
        ("/b", 0) => Reply {
            status: 200,
            headers: vec![],
            delay: Duration::from_millis(1500),
        },
        ("/c", _) => Reply::status(410),
        _ => Reply::status(204),
    });
    let port = receiver.port;
    let gw = mock_gateway(
        &bootstrap,
        &format!(
            r#"
  - {{ id: sa, topics: [a], kafka-webhook: {{ url: "http://127.0.0.1:{port}/a", retries: [50ms, 50ms], allow_private_targets: true }} }}
  - {{ id: sb, topics: [b], kafka-webhook: {{ url: "http://127.0.0.1:{port}/b", timeout: 300ms, retries: [50ms], allow_private_targets: true }} }}
  - {{ id: sc, topics: [c], kafka-webhook: {{ url: "http://127.0.0.1:{port}/c", retries: [50ms], allow_private_targets: true }} }}
  - id: sd
    topics: [d]
    kafka-webhook: {{ url: "http://127.0.0.1:{port}/d/{{key}}", retries: [50ms] }}
"#
        ),
    );
    produce(&bootstrap, "a", &records(1, |_| "k".into()), 1);
    produce(&bootstrap, "b", &records(1, |_| "k".into()), 1);
    // One key: delivered in order, so the first 410 stops the rest.
    produce(&bootstrap, "c", &records(5, |_| "k".into()), 1);
    produce(&bootstrap, "d", &records(1, |_| "k".into()), 1);

    // 429 + Retry-After: 1 → the retry waits a second, not the 50ms of the schedule.
    wait_sum(
        gw.admin,
        "sluice_webhook_deliveries_total",
        &[("subscription", "sa"), ("outcome", "delivered")],
        1.0,
    );
    let a: Vec<_> = receiver
        .hits()
        .into_iter()
        .filter(|h| h.seen.url == "/a")
        .collect();
    assert_eq!(a.len(), 2);
    let gap = a[1].at - a[0].at;
    assert!(
        gap >= Duration::from_millis(950) && gap < Duration::from_secs(5),
        "retry after {gap:?}"
    );
    assert_eq!(
        a[0].seen.header("webhook-id"),
        a[1].seen.header("webhook-id")
    );
    assert_eq!(
        a[0].seen.header("webhook-id"),
        Some("a-0-0"),
        "records without ce_id: topic-partition-offset"
    );
    assert_eq!(
        a[0].seen.header("webhook-signature"),
        None,
        "no secrets: unsigned"
    );
    assert_eq!(
        a[0].seen.header("content-type"),
        Some("application/octet-stream")
    );

    // A timed-out attempt is retried (and its late answer ignored).
    let m = wait_sum(
        gw.admin,
        "sluice_webhook_deliveries_total",
        &[("subscription", "sb"), ("outcome", "delivered")],
        1.0,
    );
    assert_eq!(
        m.sum(
            "sluice_webhook_attempts_total",
            &[("subscription", "sb"), ("result", "timeout")]
        ),
        1.0
    );
    assert_eq!(
        receiver
            .hits()
            .iter()
            .filter(|h| h.seen.url == "/b")
            .count(),
        2
    );

    // 410 Gone disables the target: one request, all five records dead-lettered.
    let dlq = read_topic(
        &bootstrap,
        "c.dlq",
        5,
        Duration::from_millis(300),
        Duration::from_secs(30),
    );
    assert_eq!(dlq.len(), 5);
    assert!(dlq
        .iter()
        .all(|r| r.header("sluice-dlq-last-status").as_deref() == Some("410")));
    assert_eq!(
        receiver
            .hits()
            .iter()
            .filter(|h| h.seen.url == "/c")
            .count(),
        1
    );
    let m = wait_sum(
        gw.admin,
        "sluice_webhook_deliveries_total",
        &[("subscription", "sc"), ("outcome", "dead_lettered")],
        5.0,
    );
    assert_eq!(
        m.sum("sluice_webhook_target_disabled", &[("subscription", "sc")]),
        1.0
    );

    // Loopback is refused by default: nothing sent, dead-lettered at once with the reason.
    let dlq = read_topic(
        &bootstrap,
        "d.dlq",
        1,
        Duration::from_millis(300),
        Duration::from_secs(30),
    );
    let err = dlq[0].header("sluice-dlq-last-error").unwrap();
    assert!(
        err.contains("127.0.0.1") && err.contains("allow_private_targets"),
        "{err}"
    );
    assert_eq!(dlq[0].header("sluice-dlq-attempts").as_deref(), Some("1"));
    assert_eq!(
        receiver
            .hits()
            .iter()
            .filter(|h| h.seen.url.starts_with("/d"))
            .count(),
        0
    );
    let m = wait_sum(
        gw.admin,
        "sluice_webhook_attempts_total",
        &[("subscription", "sd"), ("result", "refused_target")],
        1.0,
    );
    assert_eq!(
        m.sum(
            "sluice_webhook_deliveries_total",
            &[("subscription", "sd"), ("outcome", "dead_lettered")]
        ),
        1.0
    );
    gw.stop();
}

#[test]
fn private_names_and_metadata_addresses_are_refused() {
    let mock = rdkafka::mocking::MockCluster::new(1).unwrap();
    for t in ["m", "m.dlq"] {
        mock.create_topic(t, 1, 1).unwrap();
    }
    let bootstrap = mock.bootstrap_servers();
    let receiver = Receiver::start(|_, _| Reply::status(200));
    let port = receiver.port;
    // `localhost` resolves to loopback (refused by the resolver, not by the literal
    // check); the metadata address is refused before any connection attempt.
    let gw = mock_gateway(
        &bootstrap,
        &format!(
            r#"
  - {{ id: by-name, topics: [m], group: g1, kafka-webhook: {{ url: "http://localhost:{port}/x", retries: [] }} }}
  - {{ id: metadata, topics: [m], group: g2, kafka-webhook: {{ url: "http://169.254.169.254/latest/meta-data/", retries: [], timeout: 30s, dlq_topic: m.dlq }} }}
  - {{ id: mapped, topics: [m], group: g3, kafka-webhook: {{ url: "http://[::ffff:127.0.0.1]:{port}/x", retries: [] }} }}
"#
        ),
    );
    produce(&bootstrap, "m", &records(2, |i| format!("k{i}")), 1);
    let dlq = read_topic(
        &bootstrap,
        "m.dlq",
        6,
        Duration::from_millis(300),
        Duration::from_secs(30),
    );
    assert_eq!(dlq.len(), 6);
    for id in ["by-name", "metadata", "mapped"] {
        let mine: Vec<_> = dlq
            .iter()
            .filter(|r| r.header("sluice-dlq-subscription").as_deref() == Some(id))
            .collect();
        assert_eq!(mine.len(), 2, "{id}");
        for r in mine {
            let err = r.header("sluice-dlq-last-error").unwrap();
            assert!(err.contains("allow_private_targets"), "{id}: {err}");
        }
    }
    assert_eq!(receiver.count(), 0);
    let m = scrape(gw.admin);
    assert_eq!(
        m.sum(
            "sluice_webhook_attempts_total",
            &[("result", "refused_target")]
        ),
        6.0
    );
    assert_eq!(
        m.sum(
            "sluice_webhook_attempts_total",
            &[("result", "connect_error")]
        ),
        0.0
    );
    gw.stop();
}

#[test]
fn kill_9_in_the_middle_of_a_retry_skips_nothing_and_a_reload_adds_a_subscription() {
    const N: usize = 20;
    const STUCK: &str = "record-7";
    let mock = rdkafka::mocking::MockCluster::new(1).unwrap();
    mock.create_topic("orders", 1, 1).unwrap();
    let bootstrap = mock.bootstrap_servers();
    let healthy = Arc::new(AtomicBool::new(false));
    let h = healthy.clone();
    let receiver = Receiver::start(move |seen, _| {
        let stuck = seen.body == STUCK.as_bytes() && !h.load(Ordering::SeqCst);
        Reply::status(if stuck { 503 } else { 200 })
    });
    let subscription = format!(
        r#"
  - id: orders-hook
    topics: [orders]
    properties: {{ session.timeout.ms: 3000, heartbeat.interval.ms: 300 }}
    kafka-webhook: {{ url: "http://127.0.0.1:{}/hook", retries: [60s], allow_private_targets: true }}
"#,
        receiver.port
    );
    let mut gw = mock_gateway(&bootstrap, &subscription);
    produce(
        &bootstrap,
        "orders",
        &records(N, |i| format!("k{}", i % 4)),
        1,
    );

    // Record 7 (key k3) waits out a long retry; 11, 15 and 19 (also k3) wait behind it;
    // the other keys are delivered; the committed position stops at 7.
    let tried = |r: &Receiver| {
        r.hits()
            .into_iter()
            .map(|h| String::from_utf8(h.seen.body).unwrap())
            .collect::<BTreeSet<_>>()
    };
    let expected: BTreeSet<String> = (0..N)
        .filter(|i| i % 4 != 3 || *i <= 7)
        .map(|i| format!("record-{i}"))
        .collect();
    wait_for("other keys delivered", Duration::from_secs(30), || {
        (tried(&receiver) == expected).then_some(())
    });
    wait_for(
        "position held at the stuck record",
        Duration::from_secs(10),
        || (committed(&bootstrap, "sluice-orders-hook", "orders", 1) == [7]).then_some(()),
    );
    gw.kill9();
    let before = receiver.count();
    healthy.store(true, Ordering::SeqCst);

    // The next process resumes at 7: the stuck record is delivered, nothing is skipped,
    // and the position reaches the end.
    let gw = gw.restart_like(&[], true);
    wait_for("position at the end", Duration::from_secs(60), || {
        (committed(&bootstrap, "sluice-orders-hook", "orders", 1) == [N as i64]).then_some(())
    });
    let after: Vec<String> = receiver.hits()[before..]
        .iter()
        .map(|h| String::from_utf8(h.seen.body.clone()).unwrap())
        .collect();
    let expected: Vec<String> = (7..N).map(|i| format!("record-{i}")).collect();
    let mut got = after.clone();
    got.sort_by_key(|r| r[7..].parse::<usize>().unwrap());
    assert_eq!(
        got, expected,
        "records from the committed position on are delivered again, once each"
    );

    // A reload adds a subscription: it starts, with its own group, from the beginning.
    let text = std::fs::read_to_string(&gw.config).unwrap();
    let audit = format!(
        "  - {{ id: audit, topics: [orders], kafka-webhook: {{ url: \"http://127.0.0.1:{}/audit\", allow_private_targets: true }} }}\n",
        receiver.port
    );
    std::fs::write(&gw.config, format!("{text}{audit}")).unwrap();
    gw.signal(libc::SIGHUP);
    wait_for(
        "the added subscription delivers",
        Duration::from_secs(60),
        || {
            (receiver
                .hits()
                .iter()
                .filter(|h| h.seen.url == "/audit")
                .count()
                == N)
                .then_some(())
        },
    );
    wait_for("its group committed", Duration::from_secs(20), || {
        (committed(&bootstrap, "sluice-audit", "orders", 1) == [N as i64]).then_some(())
    });
    // The unchanged subscription kept running: nothing was redelivered to it.
    assert_eq!(
        receiver
            .hits()
            .iter()
            .filter(|h| h.seen.url == "/hook")
            .count(),
        before + after.len()
    );
    gw.stop();
}

#[test]
fn a_record_is_committed_only_after_the_dead_letter_topic_took_it() {
    use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
    let mock = rdkafka::mocking::MockCluster::new(1).unwrap();
    for t in ["orders", "orders.dlq"] {
        mock.create_topic(t, 1, 1).unwrap();
    }
    let bootstrap = mock.bootstrap_servers();
    produce(&bootstrap, "orders", &records(3, |_| "k".into()), 1);
    // The next three produce requests (the dead-letter attempts) are refused.
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 3],
    );
    let receiver = Receiver::start(|_, _| Reply::status(400));
    let gw = mock_gateway(
        &bootstrap,
        &format!(
            r#"
  - {{ id: refused, topics: [orders], kafka-webhook: {{ url: "http://127.0.0.1:{}/x", allow_private_targets: true }} }}
"#,
            receiver.port
        ),
    );
    // A 400 is permanent: straight to the dead-letter topic, which refuses it for a while.
    let failed = [
        ("route", "refused"),
        ("plugin", "kafka-webhook"),
        ("outcome", "failed"),
    ];
    wait_for(
        "dead-letter attempts refused",
        Duration::from_secs(30),
        || (scrape(gw.admin).sum("sluice_kafka_events_total", &failed) >= 2.0).then_some(()),
    );
    assert_eq!(receiver.count(), 1, "one record at a time for one key");
    assert_eq!(
        committed(&bootstrap, "sluice-refused", "orders", 1),
        [-1],
        "nothing committed while the dead-letter topic refuses"
    );
    // Then it takes them: all three are dead-lettered, then committed.
    let dlq = read_topic(
        &bootstrap,
        "orders.dlq",
        3,
        Duration::from_millis(300),
        Duration::from_secs(60),
    );
    assert_eq!(
        dlq.iter()
            .map(|r| r.header("sluice-dlq-offset").unwrap())
            .collect::<Vec<_>>(),
        ["0", "1", "2"]
    );
    assert!(dlq
        .iter()
        .all(|r| r.header("sluice-dlq-last-status").as_deref() == Some("400")));
    wait_for(
        "committed after the dead-letter topic took them",
        Duration::from_secs(20),
        || (committed(&bootstrap, "sluice-refused", "orders", 1) == [3]).then_some(()),
    );
    let m = scrape(gw.admin);
    assert_eq!(m.sum("sluice_kafka_events_total", &failed), 3.0);
    assert_eq!(
        m.sum(
            "sluice_webhook_deliveries_total",
            &[("subscription", "refused"), ("outcome", "dead_lettered")]
        ),
        3.0
    );
    assert_eq!(
        m.sum(
            "sluice_webhook_attempts_total",
            &[("subscription", "refused"), ("result", "4xx")]
        ),
        3.0
    );
    gw.stop();
}
