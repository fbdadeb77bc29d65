//! kafka-sse event ids are signed: on a `start: latest` route a hand-made
//! `Last-Event-ID` (offset 0 on every partition, the old unsigned format, a bogus
//! signature, another route's id) is refused with `400` and counted, so it cannot
//! replay older events; a real id still resumes after a restart with rotated keys.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sluice_e2e::gateway::Gateway;
use sluice_e2e::kafka::{produce, Kafka};
use sluice_e2e::metrics::scrape;
use sluice_e2e::sse::{read, read_until};

const WAIT: Duration = Duration::from_secs(60);
const OLD_KEY: &str = "sse-key-2026-11-0123456789";
const NEW_KEY: &str = "sse-key-2026-12-9876543210";

fn gateway(bootstrap: &str, keys: &str) -> Gateway {
    Gateway::start(&format!(
        r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], grace_period: 0s }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
kafka: {{ clusters: {{ default: {{ brokers: ["{bootstrap}"] }} }} }}
routes:
  - id: live
    match: {{ paths: ["/live"], methods: [GET] }}
    plugins:
      kafka-sse: {{ topic: news, start: latest, keepalive: 300ms, token_keys: [{keys}] }}
  - id: other
    match: {{ paths: ["/other"], methods: [GET] }}
    plugins:
      kafka-sse: {{ topic: news, start: latest, keepalive: 300ms, token_keys: [{keys}] }}
"#
    ))
}

fn one(bootstrap: &str, partition: i32, value: &str) {
    produce(
        bootstrap,
        "news",
        &[(partition, "k".into(), value.into())],
        1,
    );
}

#[test]
fn forged_resume_ids_are_refused_and_real_ones_survive_key_rotation() {
    let kafka = Kafka::start();
    kafka.create_topic("news", 2);
    let old: Vec<(i32, String, String)> = (0..20)
        .map(|i| (i % 2, "k".to_string(), format!("old-{i}")))
        .collect();
    produce(&kafka.bootstrap, "news", &old, 100);
    let gw = gateway(&kafka.bootstrap, OLD_KEY);

    // A live reader gets the next record, with a signed id. (Records are produced until
    // it has one: the stream only sees records after its `latest` start resolved.)
    let reader = {
        let port = gw.port;
        std::thread::spawn(move || read(port, "/live", None, 1, WAIT))
    };
    let mut produced = 0;
    while !reader.is_finished() {
        produced += 1;
        one(&kafka.bootstrap, 0, &format!("new-{produced}"));
        std::thread::sleep(Duration::from_millis(300));
    }
    let first = reader.join().unwrap();
    let seen: usize = first.events[0]
        .data
        .strip_prefix("new-")
        .and_then(|n| n.parse().ok())
        .unwrap();
    let id = first.events[0].id.clone().unwrap();

    // Hand-made ids asking for offset 0 everywhere, an unsigned v1 id, a bogus tag, the
    // real id with its signature cut, the real id on another route: all refused.
    let positions = URL_SAFE_NO_PAD.encode("0=0;1=0");
    let forged = [
        format!("v1.{positions}"),
        format!("v2.{positions}.AAAAAAAAAAAAAAAAAAAAAA"),
        format!("v2.{positions}"),
        id[..id.len() - 3].to_string(),
    ];
    for f in &forged {
        let r = read(gw.port, "/live", Some(f), 1, WAIT);
        assert_eq!(r.status, 400, "{f}");
        assert!(r.events.is_empty());
    }
    assert_eq!(read(gw.port, "/other", Some(&id), 1, WAIT).status, 400);
    let counted = scrape(gw.admin).sum(
        "sluice_http_rejections_total",
        &[("reason", "invalid_resume_token")],
    );
    assert_eq!(counted, 5.0);
    drop(gw);

    // Restart with a new signing key, the old one still accepted: the real id resumes
    // exactly after the event it labels, and nothing older comes back.
    let gw = gateway(&kafka.bootstrap, &format!("{NEW_KEY}, {OLD_KEY}"));
    one(&kafka.bootstrap, 1, "after");
    let r = read_until(gw.port, "/live", Some(&id), WAIT, |r| {
        r.events.iter().any(|e| e.data == "after")
    });
    assert_eq!(r.status, 200, "{}", r.error);
    let mut data: Vec<String> = r.events.iter().map(|e| e.data.clone()).collect();
    data.sort();
    let mut expected: Vec<String> = (seen + 1..=produced).map(|i| format!("new-{i}")).collect();
    expected.push("after".into());
    expected.sort();
    assert_eq!(data, expected);
    // Once the old key is dropped, its ids are refused.
    drop(gw);
    let gw = gateway(&kafka.bootstrap, NEW_KEY);
    assert_eq!(read(gw.port, "/live", Some(&id), 1, WAIT).status, 400);
}
