//! Idempotency keys have a scope. On a route without authentication the scope must be
//! chosen; with `client_ip`, an attacker who sends `Idempotency-Key: order-42` first
//! neither makes the victim's request answer `422` nor shares its event id (which
//! downstream deduplication would drop). Client addresses come from a trusted proxy's
//! `X-Forwarded-For`, as behind a load balancer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sluice_e2e::client::request;
use sluice_e2e::gateway::Gateway;
use sluice_e2e::kafka::{read_topic, Kafka};

fn post(gw: &Gateway, client: &str, body: &str) -> sluice_e2e::client::Response {
    request(
        gw.port,
        "POST",
        "/orders",
        &[("x-forwarded-for", client), ("idempotency-key", "order-42")],
        body.as_bytes(),
    )
}

#[test]
fn another_client_cannot_claim_your_idempotency_key() {
    let kafka = Kafka::start();
    kafka.create_topic("orders", 1);
    let gw = Gateway::start(&format!(
        r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], grace_period: 1s, trusted_proxies: ["127.0.0.1"] }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
kafka:
  clusters:
    default: {{ brokers: ["{}"], linger: 1ms }}
routes:
  - id: orders
    match: {{ paths: ["/orders"], methods: [POST] }}
    plugins:
      kafka-divert: {{ topic: orders, idempotency: {{ scope: client_ip }} }}
"#,
        kafka.bootstrap
    ));
    let attacker = post(&gw, "203.0.113.66", r#"{"evil":true}"#);
    assert_eq!(attacker.status, 202);
    let victim = post(&gw, "198.51.100.7", r#"{"order":42}"#);
    assert_eq!(victim.status, 202, "{}", victim.text());
    assert_eq!(victim.header("idempotent-replayed"), None);
    // The victim's own retry is a replay of its own answer.
    let retry = post(&gw, "198.51.100.7", r#"{"order":42}"#);
    assert_eq!(retry.status, 202);
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(retry.json()["id"], victim.json()["id"]);
    assert_ne!(victim.json()["id"], attacker.json()["id"]);
    let records = read_topic(
        &kafka.bootstrap,
        "orders",
        1,
        Duration::from_millis(500),
        Duration::from_secs(30),
    );
    assert_eq!(records.len(), 2, "one record per client");
    let ids: Vec<Option<String>> = records.iter().map(|r| r.header("ce_id")).collect();
    assert_ne!(ids[0], ids[1], "distinct event ids");
}
