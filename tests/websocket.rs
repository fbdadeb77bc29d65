//! kafka-websocket end to end: the real binary, Apache Kafka, and tungstenite's own
//! client. Records become frames and a reconnect with the last position token resumes
//! with no gap and no duplicate; messages become records acknowledged with partition and
//! offset (read back with an independent client); a frozen broker gives error frames,
//! never silence; the upgrade is refused before anything opens (not a WebSocket, wrong
//! origin, no credential, a forged position, over the connection cap); an oversized
//! message closes with 1009; a shutdown closes with 1001; a client that stops reading is
//! cut and its socket shut down, on the plain and on the TLS listener.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;
use sluice_e2e::gateway::Gateway;
use sluice_e2e::kafka::{produce, read_topic, Kafka};
use sluice_e2e::metrics::wait_sum;
use sluice_e2e::websocket::{
    close, connect, connect_tls, json, next, send, server_side_state, Got,
};

const WAIT: Duration = Duration::from_secs(60);

fn gateway(kafka: &Kafka, plugin: &str) -> Gateway {
    gateway_with_grace(kafka, plugin, "2s")
}

fn gateway_with_grace(kafka: &Kafka, plugin: &str, grace: &str) -> Gateway {
    Gateway::start(&config(kafka, plugin, grace))
}

fn config(kafka: &Kafka, plugin: &str, grace: &str) -> String {
    format!(
        r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], grace_period: {grace} }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
kafka: {{ clusters: {{ default: {{ brokers: ["{}"], delivery_timeout: 2s }} }} }}
consumers:
  - {{ name: app, key-auth: {{ key: app-key-0123456789 }} }}
routes:
  - id: ws
    match: {{ paths: ["/ws"], methods: [GET] }}
    plugins:
      key-auth: {{ query: apikey }}
      kafka-websocket: {plugin}
"#,
        kafka.bootstrap
    )
}

const KEY: &str = "?apikey=app-key-0123456789";

/// Records until `values` were all seen (the position token of each kept); panics on a
/// frame that is not a record.
fn records(ws: &mut sluice_e2e::websocket::Ws, n: usize) -> Vec<serde_json::Value> {
    (0..n)
        .map(|_| {
            let f = json(ws, WAIT);
            assert_eq!(f["type"], "record", "{f}");
            f
        })
        .collect()
}

#[test]
fn records_become_frames_and_a_reconnect_resumes_with_no_gap_and_no_duplicate() {
    let kafka = Kafka::start();
    kafka.create_topic("ws-feed", 2);
    let gw = gateway(
        &kafka,
        r#"{ subscribe: { topic: ws-feed, token_keys: ["ws-key-0123456789abcdef"] } }"#,
    );
    let mut ws = connect(gw.port, &format!("/ws{KEY}"), &[]).unwrap();
    let hello = json(&mut ws, WAIT);
    assert_eq!(hello["type"], "subscribed");
    let at = |i: i32| (i % 2, format!("k{i}"), format!("v{i}"));
    produce(
        &kafka.bootstrap,
        "ws-feed",
        &(0..4).map(at).collect::<Vec<_>>(),
        1,
    );
    let first = records(&mut ws, 2);
    assert!(first
        .iter()
        .all(|r| r["value"].as_str().unwrap().starts_with('v')));
    assert_eq!(first[0]["topic"], "ws-feed");
    assert!(first[0]["key"].as_str().unwrap().starts_with('k'));
    let position = first[1]["position"].as_str().unwrap().to_string();
    drop(ws); // dropped without a close, two records unread
    produce(
        &kafka.bootstrap,
        "ws-feed",
        &(4..6).map(at).collect::<Vec<_>>(),
        1,
    );
    let mut again = connect(gw.port, &format!("/ws{KEY}&position={position}"), &[]).unwrap();
    assert_eq!(json(&mut again, WAIT)["type"], "subscribed");
    // Everything after the token, once: the two unread and the two new.
    let rest = records(&mut again, 4);
    let seen: BTreeSet<String> = first
        .iter()
        .chain(&rest)
        .map(|r| r["value"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(seen.len(), 6, "no duplicate: {first:?} {rest:?}");
    // Nothing more: a sentinel is the very next frame.
    produce(
        &kafka.bootstrap,
        "ws-feed",
        &[(0, "end".into(), "end".into())],
        1,
    );
    assert_eq!(json(&mut again, WAIT)["value"], "end");
    close(again);
    // The first connection may have sent its last two records before it saw the drop.
    sluice_e2e::wait_for("the records sent, counted", WAIT, || {
        let out = sluice_e2e::metrics::scrape(gw.admin).sum(
            "sluice_websocket_messages_total",
            &[("route", "ws"), ("direction", "out")],
        );
        (7.0..=9.0).contains(&out).then_some(())
    });
}

#[test]
fn messages_become_records_acknowledged_after_the_broker_did() {
    let kafka = Kafka::start();
    kafka.create_topic("ws-in", 1);
    let gw = gateway(&kafka, r#"{ publish: { topic: ws-in, timeout: 1s } }"#);
    let mut ws = connect(gw.port, &format!("/ws{KEY}"), &[]).unwrap();
    send(
        &mut ws,
        r#"{"id":"c1","key":"order-1","headers":{"source":"test"},"value":{"qty":2}}"#,
    );
    let ack = json(&mut ws, WAIT);
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["id"], "c1");
    let got = read_topic(&kafka.bootstrap, "ws-in", 1, Duration::ZERO, WAIT);
    assert_eq!(got.len(), 1);
    assert_eq!(json!(got[0].offset), ack["offset"]);
    assert_eq!(got[0].key.as_deref(), Some(&b"order-1"[..]));
    assert_eq!(got[0].value, br#"{"qty":2}"#);
    assert_eq!(got[0].header("source").as_deref(), Some("test"));
    send(&mut ws, r#"{"id":"c2"}"#);
    let err = json(&mut ws, WAIT);
    assert_eq!(
        (
            err["type"].clone(),
            err["reason"].clone(),
            err["id"].clone()
        ),
        (json!("error"), json!("invalid_message"), json!("c2"))
    );

    // A frozen broker: every message gets an error frame, none is acknowledged falsely.
    kafka.pause();
    for i in 0..3 {
        send(&mut ws, &format!(r#"{{"id":"down-{i}","value":"x"}}"#));
    }
    let mut ids = BTreeSet::new();
    for _ in 0..3 {
        let f = json(&mut ws, WAIT);
        assert_eq!(f["type"], "error", "{f}");
        assert!(
            ["timeout", "broker_error"].contains(&f["reason"].as_str().unwrap()),
            "{f}"
        );
        ids.insert(f["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 3, "one error per message");
    kafka.resume();
    let ack = sluice_e2e::wait_for("an ack once the broker is back", WAIT, || {
        send(&mut ws, r#"{"id":"back","value":"y"}"#);
        let f = json(&mut ws, WAIT);
        (f["type"] == "ack").then_some(f)
    });
    assert_eq!(ack["id"], "back");
    wait_sum(
        gw.admin,
        "sluice_websocket_publish_total",
        &[("route", "ws"), ("result", "invalid_message")],
        1.0,
    );
}

#[test]
fn the_upgrade_is_refused_before_anything_opens() {
    let kafka = Kafka::start();
    kafka.create_topic("ws-lim", 1);
    let plugin = r#"{ subscribe: { topic: ws-lim }, publish: { topic: ws-lim }, max_connections: 1, max_message_bytes: 1KiB, allowed_origins: ["https://app.example"] }"#;
    let gw = gateway(&kafka, plugin);
    let origin = [("origin", "https://app.example")];
    assert_eq!(
        connect(gw.port, "/ws", &origin).err(),
        Some(401),
        "no credential"
    );
    assert_eq!(
        connect(
            gw.port,
            &format!("/ws{KEY}"),
            &[("origin", "https://evil.example")]
        )
        .err(),
        Some(403)
    );
    assert_eq!(
        connect(gw.port, &format!("/ws{KEY}&position=v2.forged.x"), &origin).err(),
        Some(400)
    );
    let plain = sluice_e2e::client::get(gw.port, &format!("/ws{KEY}"));
    assert_eq!(plain.status, 426, "a plain GET");
    assert_eq!(plain.header("upgrade"), Some("websocket"));
    let mut ws = connect(gw.port, &format!("/ws{KEY}"), &origin).unwrap();
    assert_eq!(json(&mut ws, WAIT)["type"], "subscribed");
    assert_eq!(
        connect(gw.port, &format!("/ws{KEY}"), &origin).err(),
        Some(503),
        "over the cap"
    );
    // The cap is the route's: a reload (the connection stays open on the unchanged
    // cluster) does not lift it.
    let more = config(&kafka, plugin, "2s")
        + "  - { id: other, match: { paths: [\"/other\"] }, plugins: { mocking: { status: 204 } } }\n";
    gw.reload(&more, 1.0);
    assert_eq!(
        connect(gw.port, &format!("/ws{KEY}"), &origin).err(),
        Some(503),
        "over the cap after a reload"
    );
    // A message over the limit closes the connection with 1009, and frees the slot.
    send(&mut ws, &"x".repeat(2048));
    assert_eq!(
        next(&mut ws, WAIT),
        Got::Closed(1009, "message too big".into())
    );
    let mut again = sluice_e2e::wait_for("the slot is free", WAIT, || {
        connect(gw.port, &format!("/ws{KEY}"), &origin).ok()
    });
    assert_eq!(json(&mut again, WAIT)["type"], "subscribed");
    let s = wait_sum(
        gw.admin,
        "sluice_websocket_closes_total",
        &[("route", "ws"), ("code", "1009")],
        1.0,
    );
    assert_eq!(
        s.sum(
            "sluice_http_rejections_total",
            &[("route", "ws"), ("reason", "origin_not_allowed")]
        ),
        1.0
    );
    assert_eq!(
        s.sum(
            "sluice_http_rejections_total",
            &[("route", "ws"), ("reason", "invalid_position")]
        ),
        1.0
    );
    // At least the one above (the wait for the slot may have been refused too).
    assert!(
        s.sum(
            "sluice_http_rejections_total",
            &[("route", "ws"), ("reason", "too_many_connections")]
        ) >= 1.0
    );
    close(again);
}

#[test]
fn a_shutdown_closes_with_going_away() {
    let kafka = Kafka::start();
    kafka.create_topic("ws-bye", 1);
    let mut gw = gateway(
        &kafka,
        r#"{ subscribe: { topic: ws-bye }, ping_interval: 200ms }"#,
    );
    let mut ws = connect(gw.port, &format!("/ws{KEY}"), &[]).unwrap();
    assert_eq!(json(&mut ws, WAIT)["type"], "subscribed");
    let mut talker = connect(gw.port, &format!("/ws{KEY}"), &[]).unwrap();
    assert_eq!(json(&mut talker, WAIT)["type"], "subscribed");
    send(&mut talker, "hello");
    assert_eq!(
        next(&mut talker, WAIT),
        Got::Closed(1003, "this route does not take messages".into())
    );
    gw.signal(libc::SIGTERM);
    assert_eq!(next(&mut ws, WAIT), Got::Closed(1001, "going away".into()));
    let (exited, _) = gw.wait_exit(WAIT);
    assert!(exited);
}

#[test]
fn a_client_that_stops_reading_is_cut_and_its_slot_freed() {
    let kafka = Kafka::start();
    kafka.create_topic("ws-slow", 1);
    let gw = gateway(
        &kafka,
        r#"{ subscribe: { topic: ws-slow, format: raw }, slow_client_timeout: 500ms, max_connections: 1 }"#,
    );
    let stalled = connect(gw.port, &format!("/ws{KEY}"), &[]).unwrap();
    // Far more than the socket buffers on both sides hold; the client reads nothing.
    let big = "x".repeat(64 << 10);
    let records: Vec<_> = (0..480)
        .map(|_| (0, "k".to_string(), big.clone()))
        .collect();
    produce(&kafka.bootstrap, "ws-slow", &records, 16);
    wait_sum(
        gw.admin,
        "sluice_websocket_closes_total",
        &[("route", "ws"), ("code", "1008")],
        1.0,
    );
    let mut again = sluice_e2e::wait_for("the slot is free", WAIT, || {
        connect(gw.port, &format!("/ws{KEY}"), &[]).ok()
    });
    produce(
        &kafka.bootstrap,
        "ws-slow",
        &[(0, "k".into(), "after".into())],
        1,
    );
    assert_eq!(next(&mut again, WAIT), Got::Binary(b"after".to_vec()));
    let s = wait_sum(
        gw.admin,
        "sluice_websocket_connections",
        &[("route", "ws")],
        1.0,
    );
    assert_eq!(
        s.sum(
            "sluice_websocket_closes_total",
            &[("route", "ws"), ("code", "1008")]
        ),
        1.0
    );
    // The cut connection really ends: what was already in flight, then end of stream.
    let mut stalled = stalled;
    let ended = (0..1000).find_map(|_| match next(&mut stalled, WAIT) {
        Got::Closed(code, _) => Some(code),
        _ => None,
    });
    assert_eq!(
        ended,
        Some(1006),
        "ended without a close frame (the client was cut)"
    );
}

#[test]
fn a_message_in_flight_at_shutdown_is_answered_before_the_close() {
    let kafka = Kafka::start();
    kafka.create_topic("ws-drain", 1);
    // Answered within the grace period: the broker is frozen, so the answer is the
    // error at `timeout`, sent before the close.
    let mut gw = gateway_with_grace(
        &kafka,
        r#"{ publish: { topic: ws-drain, timeout: 2s } }"#,
        "6s",
    );
    let mut ws = connect(gw.port, &format!("/ws{KEY}"), &[]).unwrap();
    send(&mut ws, r#"{"id":"warm","value":"w"}"#);
    assert_eq!(json(&mut ws, WAIT)["type"], "ack");
    kafka.pause();
    send(&mut ws, r#"{"id":"last","value":"x"}"#);
    gw.signal(libc::SIGTERM);
    let answer = json(&mut ws, WAIT);
    assert_eq!(
        (answer["id"].clone(), answer["type"].clone()),
        (json!("last"), json!("error")),
        "{answer}"
    );
    assert_eq!(next(&mut ws, WAIT), Got::Closed(1001, "going away".into()));
    kafka.resume();
    let (exited, _) = gw.wait_exit(WAIT);
    assert!(exited);
}

/// Over TLS too, a client that stops reading is cut: the socket is shut down at once
/// (not left open until the client reads or leaves), so the connection ends.
#[test]
fn a_client_that_stops_reading_over_tls_is_cut_and_its_socket_shut_down() {
    let kafka = Kafka::start();
    kafka.create_topic("ws-slow-tls", 1);
    let dir = sluice_e2e::scratch_dir("ws-tls");
    let (ca, cert, key) = sluice_e2e::certs::ca_and_certificate(&dir, "ws");
    let https = sluice_e2e::free_port();
    let plugin =
        r#"{ subscribe: { topic: ws-slow-tls, format: raw }, slow_client_timeout: 500ms }"#;
    let tls = format!(
        "server:\n  listen: [\"127.0.0.1:{{PORT}}\"]\n  grace_period: 2s\n  tls:\n    listen: [\"127.0.0.1:{https}\"]\n    certificates: [{{ cert: \"{cert}\", key: \"{key}\" }}]\n"
    );
    let yaml = config(&kafka, plugin, "2s");
    let rest = &yaml[yaml.find("admin:").unwrap()..];
    let gw = Gateway::start(&format!("{tls}{rest}"));
    let mut stalled = connect_tls(https, &format!("/ws{KEY}"), &ca, "localhost");
    let client_port = stalled.get_ref().sock.local_addr().unwrap().port();
    assert_eq!(
        server_side_state(https, client_port),
        Some(1),
        "established"
    );
    // Far more than the socket buffers on both sides hold; the client reads nothing.
    let big = "x".repeat(64 << 10);
    let records: Vec<_> = (0..480)
        .map(|_| (0, "k".to_string(), big.clone()))
        .collect();
    produce(&kafka.bootstrap, "ws-slow-tls", &records, 16);
    wait_sum(
        gw.admin,
        "sluice_websocket_closes_total",
        &[("route", "ws"), ("code", "1008")],
        1.0,
    );
    // The server's side leaves ESTABLISHED (shut down: FIN-WAIT, or gone) while the client
    // still reads nothing.
    let state = sluice_e2e::wait_for("the server side shut down", WAIT, || {
        let st = server_side_state(https, client_port);
        (st != Some(1)).then_some(st)
    });
    eprintln!("server side after the cut: {state:?}");
    let s = wait_sum(
        gw.admin,
        "sluice_websocket_connections",
        &[("route", "ws")],
        0.0,
    );
    assert_eq!(
        s.sum(
            "sluice_websocket_closes_total",
            &[("route", "ws"), ("code", "1008")]
        ),
        1.0
    );
    // The client ends up at the end of the stream (after what was already in flight).
    let ended = (0..1000).find_map(|_| match next(&mut stalled, WAIT) {
        Got::Closed(code, _) => Some(code),
        _ => None,
    });
    assert_eq!(ended, Some(1006));
}

/// A reload that replaces the route's cluster closes its connections with `1012`
/// (`service restart`), so clients reconnect to the new configuration.
#[test]
fn a_reload_that_replaces_the_cluster_closes_with_1012() {
    let kafka = Kafka::start();
    kafka.create_topic("ws-reload", 1);
    let plugin = r#"{ subscribe: { topic: ws-reload } }"#;
    let gw = gateway_with_grace(&kafka, plugin, "0s");
    let mut ws = connect(gw.port, &format!("/ws{KEY}"), &[]).unwrap();
    assert_eq!(json(&mut ws, WAIT)["type"], "subscribed");
    // Another delivery timeout: the cluster is replaced.
    let replaced =
        config(&kafka, plugin, "0s").replace("delivery_timeout: 2s", "delivery_timeout: 3s");
    gw.reload(&replaced, 1.0);
    assert_eq!(
        next(&mut ws, WAIT),
        Got::Closed(1012, "configuration reloaded".into())
    );
    wait_sum(
        gw.admin,
        "sluice_websocket_closes_total",
        &[("route", "ws"), ("code", "1012")],
        1.0,
    );
}
