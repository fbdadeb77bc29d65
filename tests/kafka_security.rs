//! TLS and SASL towards Kafka, end to end with the real binary and Apache Kafka's own
//! listeners: SCRAM-SHA-512 and SCRAM-SHA-256 against a listener that requires them (a
//! wrong password or no credentials: 503 on divert within the route's timeout, never a
//! 202 nor a hang; a logger route counts its events failed), and TLS with certificate and
//! host-name verification on by default (a broker certificate from an unknown CA is
//! refused; `verify: false` accepts it). Certificates are made by the test with openssl;
//! records are read back on the broker's plaintext listener by an independent client.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sluice_e2e::certs::ca_and_certificate;
use sluice_e2e::client::request;
use sluice_e2e::gateway::Gateway;
use sluice_e2e::kafka::{read_topic, Kafka, Options};
use sluice_e2e::metrics::wait_sum;
use sluice_e2e::origin::Origin;
use sluice_e2e::scratch_dir;

/// A gateway with a divert route (`/d/*`, 3 s timeout) and a logger route (`/l/*`) on
/// one cluster; `cluster` is the cluster's YAML (indented six spaces).
fn gateway(cluster: &str, origin: &Origin) -> Gateway {
    Gateway::start(&format!(
        r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], grace_period: 0s }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
kafka:
  clusters:
    default:
      delivery_timeout: 3s
{cluster}
upstreams: {{ origin: {{ nodes: ["127.0.0.1:{}"] }} }}
routes:
  - id: d
    match: {{ paths: ["/d/*"], methods: [POST] }}
    plugins: {{ kafka-divert: {{ topic: secured, timeout: 3s, idempotency: {{ scope: global }} }} }}
  - id: l
    match: {{ paths: ["/l/*"] }}
    upstream: origin
    plugins: {{ kafka-logger: {{ topic: secured-log }} }}
"#,
        origin.port
    ))
}

/// POST `body` to the divert route: the status, after checking the wait was bounded.
fn post(gw: &Gateway, body: &str) -> u16 {
    let r = request(gw.port, "POST", "/d/x", &[], body.as_bytes());
    assert!(
        r.elapsed < Duration::from_secs(10),
        "the 3 s timeout bounds the wait: {:?}",
        r.elapsed
    );
    r.status
}

/// A GET through the logger route must be proxied (200) whatever Kafka does; its event
/// must end counted with `outcome`.
fn log_one_and_expect(gw: &Gateway, outcome: &str) {
    assert_eq!(request(gw.port, "GET", "/l/x", &[], b"").status, 200);
    wait_sum(
        gw.admin,
        "sluice_kafka_events_total",
        &[("route", "l"), ("outcome", outcome)],
        1.0,
    );
}

/// The divert record values in `secured`, read on the plaintext listener.
fn values(kafka: &Kafka, expect: usize) -> Vec<String> {
    read_topic(
        &kafka.bootstrap,
        "secured",
        expect,
        Duration::from_secs(1),
        Duration::from_secs(60),
    )
    .iter()
    .map(|r| String::from_utf8(r.value.clone()).unwrap())
    .collect()
}

#[test]
fn sasl_scram_authenticates_and_a_wrong_password_never_gets_202() {
    let kafka = Kafka::start_with(Options {
        scram_users: vec![("sluice".into(), "sluice-scram-password".into())],
        tls: None,
    });
    kafka.create_topic("secured", 1);
    kafka.create_topic("secured-log", 1);
    let b = kafka.sasl_bootstrap.clone().unwrap();
    let origin = Origin::start();
    let sasl = |mechanism: &str, password: &str| {
        format!(
            "      brokers: [\"{b}\"]\n      sasl: {{ mechanism: {mechanism}, username: sluice, password: {password} }}"
        )
    };

    let gw = gateway(&sasl("SCRAM-SHA-512", "sluice-scram-password"), &origin);
    assert_eq!(post(&gw, "{\"n\":1}"), 202);
    log_one_and_expect(&gw, "acked");
    let sha256 = gateway(&sasl("SCRAM-SHA-256", "sluice-scram-password"), &origin);
    assert_eq!(post(&sha256, "{\"n\":2}"), 202);

    let bad = gateway(&sasl("SCRAM-SHA-512", "wrong"), &origin);
    assert_eq!(post(&bad, "{\"n\":3}"), 503, "wrong password");
    log_one_and_expect(&bad, "failed");
    let none = gateway(&format!("      brokers: [\"{b}\"]"), &origin);
    assert_eq!(post(&none, "{\"n\":4}"), 503, "no credentials");
    log_one_and_expect(&none, "failed");
    drop((bad, none));
    assert_eq!(post(&gw, "{\"n\":5}"), 202);

    assert_eq!(
        values(&kafka, 3),
        ["{\"n\":1}", "{\"n\":2}", "{\"n\":5}"],
        "only the authenticated requests reached the topic"
    );
}

#[test]
fn tls_verifies_the_broker_certificate_by_default() {
    let dir = scratch_dir("kafka-tls");
    let (ca, cert, key) = ca_and_certificate(&dir, "broker");
    let (other_ca, _, _) = ca_and_certificate(&dir, "other");
    let kafka = Kafka::start_with(Options {
        scram_users: vec![],
        tls: Some((cert.into(), key.into())),
    });
    kafka.create_topic("secured", 1);
    kafka.create_topic("secured-log", 1);
    let tls_bootstrap = kafka.tls_bootstrap.clone().unwrap();
    let origin = Origin::start();
    let tls = |extra: &str| {
        format!("      brokers: [\"{tls_bootstrap}\"]\n      tls: {{ ca_file: \"{extra}\" }}")
    };

    let gw = gateway(&tls(&ca), &origin);
    assert_eq!(post(&gw, "{\"tls\":1}"), 202);
    log_one_and_expect(&gw, "acked");
    let untrusted = gateway(&tls(&other_ca), &origin);
    assert_eq!(
        post(&untrusted, "{\"tls\":2}"),
        503,
        "a broker certificate from an unknown CA"
    );
    log_one_and_expect(&untrusted, "failed");
    let insecure = gateway(
        &format!(
            "      brokers: [\"{tls_bootstrap}\"]\n      tls: {{ ca_file: \"{other_ca}\", verify: false }}"
        ),
        &origin,
    );
    assert_eq!(post(&insecure, "{\"tls\":3}"), 202, "verify: false");
    let plain = gateway(&format!("      brokers: [\"{tls_bootstrap}\"]"), &origin);
    assert_eq!(
        post(&plain, "{\"tls\":4}"),
        503,
        "plaintext to a TLS listener"
    );

    assert_eq!(
        values(&kafka, 2),
        ["{\"tls\":1}", "{\"tls\":3}"],
        "only the verified (or explicitly unverified) connections produced"
    );
}
