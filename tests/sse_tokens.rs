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

    // A live reader gets the next record, with a signed id.
    let reader = {
        let port = gw.port;
        std::thread::spawn(move || read(port, "/live", None, 1, WAIT))
    };
    sluice_e2e::wait_for("the stream is open", WAIT, || {
        (scrape(gw.admin).sum("sluice_sse_streams", &[("route", "live")]) == 1.0).then_some(())
    });
    one(&kafka.bootstrap, 0, "new-1");
    let first = reader.join().unwrap();
    assert_eq!(first.events[0].data, "new-1");
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
    // exactly after `new-1`, and nothing older comes back.
    let gw = gateway(&kafka.bootstrap, &format!("{NEW_KEY}, {OLD_KEY}"));
    one(&kafka.bootstrap, 1, "new-2");
    let r = read_until(gw.port, "/live", Some(&id), WAIT, |r| !r.events.is_empty());
    assert_eq!(r.status, 200, "{}", r.error);
    let data: Vec<&str> = r.events.iter().map(|e| e.data.as_str()).collect();
    assert_eq!(data, ["new-2"]);
    // Once the old key is dropped, its ids are refused.
    drop(gw);
    let gw = gateway(&kafka.bootstrap, NEW_KEY);
    assert_eq!(read(gw.port, "/live", Some(&id), 1, WAIT).status, 400);
}
