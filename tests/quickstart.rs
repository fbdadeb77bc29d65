//! The README's first command keeps working: `conf/quickstart.yaml` (ports moved to free
//! ones) starts with its embedded dev broker, proxies to its demo origin, and the
//! mirrored event can be read from the dev broker; its divert route answers 202 and the
//! event is delivered by the webhook subscription to the `inbox` route.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sluice_e2e::client::request;
use sluice_e2e::gateway::Gateway;
use sluice_e2e::kafka::read_topic;
use sluice_e2e::metrics::{events, scrape};
use sluice_e2e::{free_port, wait_for};

#[test]
fn quickstart_config_mirrors_a_request_to_the_dev_broker() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf/quickstart.yaml");
    let broker = free_port();
    let yaml = std::fs::read_to_string(path)
        .unwrap()
        .replace("127.0.0.1:8080", "127.0.0.1:{PORT}")
        .replace("127.0.0.1:9180", "127.0.0.1:{ADMIN}")
        .replace("127.0.0.1:19092", &format!("127.0.0.1:{broker}"));
    let gw = Gateway::start(&yaml);
    assert!(
        gw.logs().contains(&format!(
            "embedded dev broker listening on 127.0.0.1:{broker}"
        )),
        "the dev broker address is printed at start-up:\n{}",
        gw.logs()
    );
    let r = request(
        gw.port,
        "POST",
        "/api/orders",
        &[("Content-Type", "application/json")],
        b"{\"item\":\"coffee\"}",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text().contains("coffee"),
        "the demo origin answered: {}",
        r.text()
    );
    wait_for("the event to be acked", Duration::from_secs(20), || {
        (events(&scrape(gw.admin), "orders-api", "kafka-logger").1 == 1.0).then_some(())
    });
    let records = read_topic(
        &format!("127.0.0.1:{broker}"),
        "http-log",
        1,
        Duration::from_millis(500),
        Duration::from_secs(30),
    );
    assert_eq!(records.len(), 1);
    let v = records[0].json();
    assert_eq!(v["route_id"], "orders-api");
    assert_eq!(v["request"]["body"], "{\"item\":\"coffee\"}");
    assert_eq!(records[0].key.as_deref(), Some(&b"orders-api"[..]));
    let m = scrape(gw.admin);
    assert_eq!(
        events(&m, "orders-api", "kafka-logger"),
        (1.0, 1.0, 0.0, 0.0, 0.0)
    );

    // A diverted event is delivered by the `events-to-inbox` webhook subscription to the
    // `inbox` route, signed; that route logs what it received to `inbox-log`.
    let r = request(
        gw.port,
        "POST",
        "/events/orders",
        &[("Content-Type", "application/json")],
        b"{\"id\":42}",
    );
    assert_eq!(r.status, 202, "{}", r.text());
    wait_for("the webhook delivery", Duration::from_secs(30), || {
        let m = scrape(gw.admin);
        (m.sum(
            "sluice_webhook_deliveries_total",
            &[("outcome", "delivered")],
        ) == 1.0
            && events(&m, "inbox", "kafka-logger").1 == 1.0)
            .then_some(())
    });
    let inbox = read_topic(
        &format!("127.0.0.1:{broker}"),
        "inbox-log",
        1,
        Duration::from_millis(500),
        Duration::from_secs(30),
    );
    assert_eq!(inbox.len(), 1);
    let v = inbox[0].json();
    assert_eq!(v["request"]["path"], "/inbox/orders");
    assert_eq!(v["response"]["status"], 204);
    assert!(v["request"]["headers"]["webhook-signature"]
        .as_str()
        .unwrap()
        .starts_with("v1,"));
    assert_eq!(v["request"]["headers"]["content-type"], "application/json");
}
