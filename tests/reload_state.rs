//! State across a configuration reload: a route's idempotency store is kept across a
//! `SIGHUP` while the route and its key space are unchanged (a replayed key is answered
//! from the store, not produced again), and starts empty, saying so, when the store's
//! settings changed. A Server-Sent Events stream whose cluster a reload replaced ends
//! after the grace period (with a `retry:` hint), instead of keeping the retired cluster
//! alive. Reloads that change a divert route's timeout ten times leave one producer per
//! timeout in use, not one per timeout ever configured (the process's thread count).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sluice_e2e::client::request;
use sluice_e2e::gateway::Gateway;
use sluice_e2e::kafka::{read_topic, Kafka};
use sluice_e2e::metrics::scrape;
use sluice_e2e::sse::read_until;
use sluice_e2e::wait_for;

fn yaml(bootstrap: &str, ttl: &str) -> String {
    format!(
        r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], grace_period: 1s }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
kafka: {{ clusters: {{ default: {{ brokers: ["{bootstrap}"], linger: 1ms }} }} }}
routes:
  - id: orders
    match: {{ paths: ["/orders"], methods: [POST] }}
    plugins:
      kafka-divert: {{ topic: orders, idempotency: {{ scope: global, ttl: {ttl} }} }}
"#
    )
}

fn post(gw: &Gateway) -> sluice_e2e::client::Response {
    request(
        gw.port,
        "POST",
        "/orders",
        &[("idempotency-key", "order-42")],
        br#"{"id":42}"#,
    )
}

#[test]
fn a_reload_keeps_the_idempotency_store() {
    let kafka = Kafka::start();
    kafka.create_topic("orders", 1);
    let gw = Gateway::start(&yaml(&kafka.bootstrap, "1h"));
    let first = post(&gw);
    assert_eq!(first.status, 202);
    // A reload that changes nothing: the key is still known.
    gw.reload(&yaml(&kafka.bootstrap, "1h"), 1.0);
    let again = post(&gw);
    assert_eq!(again.status, 202);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.json()["offset"], first.json()["offset"]);
    // Another ttl is another store: it starts empty and says so.
    gw.reload(&yaml(&kafka.bootstrap, "2h"), 2.0);
    assert!(gw
        .logs()
        .contains("route `orders`: idempotency settings changed; its store starts empty"));
    let fresh = post(&gw);
    assert_eq!(fresh.status, 202);
    assert_eq!(fresh.header("idempotent-replayed"), None);
    let records = read_topic(
        &kafka.bootstrap,
        "orders",
        1,
        Duration::from_millis(500),
        Duration::from_secs(30),
    );
    assert_eq!(
        records.len(),
        2,
        "produced once before and once after the change"
    );
}

#[test]
fn a_reload_that_replaces_the_cluster_ends_its_sse_streams() {
    let kafka = Kafka::start();
    kafka.create_topic("news", 1);
    let yaml = |linger: &str| {
        format!(
            r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], grace_period: 0s }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
kafka: {{ clusters: {{ default: {{ brokers: ["{}"], linger: {linger} }} }} }}
routes:
  - id: news
    match: {{ paths: ["/news"], methods: [GET] }}
    plugins:
      kafka-sse: {{ topic: news, start: latest, keepalive: 300ms }}
"#,
            kafka.bootstrap
        )
    };
    let gw = Gateway::start(&yaml("5ms"));
    let stream = {
        let port = gw.port;
        std::thread::spawn(move || {
            read_until(port, "/news", None, Duration::from_secs(60), |_| false)
        })
    };
    wait_for("the stream is open", Duration::from_secs(30), || {
        (scrape(gw.admin).sum("sluice_sse_streams", &[("route", "news")]) == 1.0).then_some(())
    });
    // Another linger: the cluster is replaced, and flushed after the grace period.
    gw.reload(&yaml("1ms"), 1.0);
    let ended = stream.join().unwrap();
    assert!(
        ended
            .comments
            .iter()
            .any(|c| c.contains("configuration reloaded")),
        "{:?}",
        ended.comments
    );
    assert!(
        ended.retry.contains(&"100".to_string()),
        "{:?}",
        ended.retry
    );
    wait_for("the disconnect counted", Duration::from_secs(30), || {
        (scrape(gw.admin).sum(
            "sluice_sse_disconnects_total",
            &[("route", "news"), ("reason", "reload")],
        ) == 1.0)
            .then_some(())
    });
}

/// Threads of process `pid` (every librdkafka producer has several).
fn threads(pid: i32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn reloads_that_change_a_timeout_do_not_pile_up_producers() {
    let kafka = Kafka::start();
    kafka.create_topic("orders", 1);
    let config = |timeout_ms: u64| {
        yaml(&kafka.bootstrap, "1h").replace(
            "kafka-divert: {",
            &format!("kafka-divert: {{ timeout: {timeout_ms}ms,"),
        )
    };
    let gw = Gateway::start(&config(3000));
    let accepted = |gw: &Gateway| {
        let r = request(gw.port, "POST", "/orders", &[], br#"{"id":1}"#);
        assert_eq!(r.status, 202, "{}", r.text());
    };
    accepted(&gw);
    let before = threads(gw.pid());
    for i in 1..=10u64 {
        gw.reload(&config(3000 + i * 100), i as f64);
        accepted(&gw);
    }
    // The old profiles' producers are retired once their routes' instances are gone.
    let settled = wait_for("old producers retired", Duration::from_secs(60), || {
        let n = threads(gw.pid());
        (n <= before + 4).then_some(n)
    });
    assert!(
        gw.logs()
            .matches("retired: nothing uses it any more")
            .count()
            >= 10,
        "{}",
        gw.logs()
    );
    eprintln!("threads: {before} before the reloads, {settled} after");
}
