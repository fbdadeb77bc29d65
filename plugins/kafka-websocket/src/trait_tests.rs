//! kafka-websocket through its trait, as the proxy runs it: the handshake refusals
//! (each counted), `503` while Kafka is not running, and a whole connection over the
//! test exchange — the `101` with the right accept key, a ping answered, an invalid
//! message and an unacknowledged one each answered by an error frame, and the idle
//! timeout closing with `1001`.

use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_core::testkit::{TestExchange, TestRoute};
use sluice_kafka::KafkaRuntime;
use tungstenite::protocol::{Role, WebSocketContext};
use tungstenite::Message;

use super::*;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn runtime() -> Arc<KafkaRuntime> {
    let clusters: BTreeMap<String, sluice_core::config::ClusterConfig> =
        serde_yaml::from_str("default: { brokers: ['127.0.0.1:1'], flush_timeout: 100ms }")
            .unwrap();
    Arc::new(KafkaRuntime::new(&clusters))
}

fn handshake(path: &str) -> TestExchange {
    handshake_with(path, "13", KEY)
}

fn handshake_with(path: &str, version: &str, key: &str) -> TestExchange {
    TestExchange::get(path)
        .header("connection", "keep-alive, Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", version)
        .header("sec-websocket-key", key)
}

/// Frames as a client sends them (masked).
fn client_frames(messages: &[Message]) -> Vec<u8> {
    struct Out(Vec<u8>);
    impl std::io::Read for Out {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::WouldBlock.into())
        }
    }
    impl std::io::Write for Out {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut ctx = WebSocketContext::new(Role::Client, None);
    let mut out = Out(Vec::new());
    for m in messages {
        ctx.write(&mut out, m.clone()).unwrap();
    }
    ctx.flush(&mut out).unwrap();
    out.0
}

/// The server's frames in `bytes`, as a client reads them.
fn server_frames(bytes: &[u8]) -> Vec<Message> {
    let mut ctx = WebSocketContext::new(Role::Client, None);
    let mut input = std::io::Cursor::new(bytes.to_vec());
    struct Io<'a>(&'a mut std::io::Cursor<Vec<u8>>);
    impl std::io::Read for Io<'_> {
        fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
            std::io::Read::read(self.0, b)
        }
    }
    impl std::io::Write for Io<'_> {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut out = Vec::new();
    while let Ok(m) = ctx.read(&mut Io(&mut input)) {
        out.push(m);
    }
    out
}

#[tokio::test]
async fn handshakes_are_checked_and_refusals_counted() {
    let r = TestRoute::new().with(
        KafkaWebsocket::new(runtime()),
        r#"{ subscribe: { topic: t, token_keys: ["0123456789abcdef0123"] }, allowed_origins: ["https://app.example"] }"#,
    );
    let origin = |e: TestExchange| e.header("origin", "https://app.example");
    let cases = [
        (TestExchange::get("/ws"), 426, "not_websocket"),
        (
            origin(handshake_with("/ws", "8", KEY)),
            426,
            "websocket_version",
        ),
        (
            origin(handshake_with("/ws", "13", "c2hvcnQ=")),
            400,
            "websocket_key",
        ),
        (
            handshake("/ws").header("origin", "https://evil.example"),
            403,
            "origin_not_allowed",
        ),
        (
            origin(handshake("/ws?position=v2.AAAA.AAAA")),
            400,
            "invalid_position",
        ),
    ];
    for (request, status, reason) in cases {
        let out = r.exchange(request, None).await;
        assert_eq!(out.status(), Some(status), "{reason}");
        assert_eq!(r.rejections(reason), 1, "{reason}");
    }
    let out = r.exchange(TestExchange::get("/ws"), None).await;
    assert_eq!(out.header("upgrade"), Some("websocket"));
    assert_eq!(out.header("sec-websocket-version"), Some("13"));
    let out = r.exchange(origin(handshake("/ws")), None).await;
    assert_eq!(
        out.status(),
        Some(503),
        "Kafka not running: before the upgrade"
    );

    let r = TestRoute::new().with(
        KafkaWebsocket::new(runtime()),
        "{ publish: { topic: 'rooms.{header.x-room}', topics_allowed: [rooms.a] } }",
    );
    let out = r
        .exchange(handshake("/ws").header("x-room", "b"), None)
        .await;
    assert_eq!(out.status(), Some(404));
    assert_eq!(r.rejections("topic_not_allowed"), 1);
}

/// A route on a started cluster whose broker never answers: nothing is acknowledged.
async fn started(yaml: &str) -> (Arc<KafkaRuntime>, TestRoute) {
    let kafka = runtime();
    let r = TestRoute::new().with(KafkaWebsocket::new(kafka.clone()), yaml);
    kafka.start().await.unwrap();
    (kafka, r)
}

#[tokio::test]
async fn at_max_in_flight_the_rest_waits_even_within_one_read() {
    let (kafka, r) = started(
        "{ publish: { topic: t, timeout: 300ms, max_in_flight: 1 }, ping_interval: 100ms, idle_timeout: 300ms }",
    )
    .await;
    // Three messages in one read: one at a time is produced, each after the previous
    // one was answered (here: timed out, the broker never answers).
    let mut req = handshake("/ws").chunks([client_frames(&[
        Message::text(r#"{"id":1,"value":"a"}"#),
        Message::text(r#"{"id":2,"value":"b"}"#),
        Message::text(r#"{"id":3,"value":"c"}"#),
    ])]);
    req.held_open = true;
    let started = std::time::Instant::now();
    r.exchange_in(&mut req, r.ctx(), None).await;
    // In parallel: 300 ms, then the idle 300 ms; one at a time: 3 x 300 ms, then 300 ms.
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(1150),
        "one at a time: {:?}",
        started.elapsed()
    );
    let answers: Vec<serde_json::Value> = server_frames(&req.response_body)
        .iter()
        .filter_map(|m| match m {
            Message::Text(t) => serde_json::from_str(t.as_str()).ok(),
            _ => None,
        })
        .collect();
    let ids: Vec<i64> = answers.iter().filter_map(|a| a["id"].as_i64()).collect();
    assert_eq!(ids, [1, 2, 3], "every message answered, in turn");
    assert!(answers.iter().all(|a| a["reason"] == "timeout"));
    kafka.shutdown();
}

#[tokio::test]
async fn a_client_that_stops_reading_is_cut_with_1008() {
    let (kafka, r) = started("{ publish: { topic: t }, slow_client_timeout: 100ms }").await;
    let mut req = handshake("/ws").chunks([client_frames(&[Message::Ping("p".into())])]);
    (req.held_open, req.write_stalled) = (true, true);
    r.exchange_in(&mut req, r.ctx(), None).await;
    let closes = metrics::metrics()
        .map(|m| m.closes.with_label_values(&[&r.id, "1008"]).get())
        .unwrap_or(0);
    assert_eq!(closes, 1);
    kafka.shutdown();
}

#[tokio::test]
async fn a_connection_answers_every_message_then_closes_when_idle() {
    let (kafka, r) = started(
        "{ publish: { topic: t, key: '{route_id}', timeout: 50ms }, ping_interval: 100ms, idle_timeout: 300ms }",
    )
    .await;
    let mut req = handshake("/ws").chunks([client_frames(&[
        Message::Ping("p".into()),
        Message::text(r#"{"id":"bad"}"#),
        Message::text(r#"{"id":"keyed","key":"k","value":"x"}"#),
        Message::text(r#"{"id":"a","value":"x"}"#),
    ])]);
    req.held_open = true;
    let out = r.exchange_in(&mut req, r.ctx(), None).await;
    assert_eq!(out.ctx.responded_by, Some("kafka-websocket"));
    let head = req.response.as_ref().unwrap();
    assert_eq!(head.status.as_u16(), 101);
    assert_eq!(
        head.headers["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
        "RFC 6455's example key"
    );
    let frames = server_frames(&req.response_body);
    let json = |m: &Message| match m {
        Message::Text(t) => serde_json::from_str::<serde_json::Value>(t.as_str()).unwrap(),
        _ => serde_json::Value::Null,
    };
    assert_eq!(frames[0], Message::Pong("p".into()));
    assert_eq!(
        (
            json(&frames[1])["id"].clone(),
            json(&frames[1])["reason"].clone()
        ),
        ("bad".into(), "invalid_message".into())
    );
    let keyed = frames
        .iter()
        .map(json)
        .find(|f| f["id"] == "keyed")
        .unwrap();
    assert_eq!(keyed["reason"], "key_not_allowed", "the route sets the key");
    assert!(
        frames.iter().any(|f| matches!(f, Message::Ping(_))),
        "pinged"
    );
    let timed_out = frames.iter().map(json).find(|f| f["id"] == "a").unwrap();
    assert_eq!(timed_out["type"], "error");
    assert_eq!(timed_out["reason"], "timeout");
    match frames.last() {
        Some(Message::Close(Some(f))) => {
            assert_eq!(
                (u16::from(f.code), f.reason.as_str()),
                (1001, "idle timeout")
            )
        }
        other => panic!("expected a close, got {other:?}"),
    }
    assert!(req.finished);
    kafka.shutdown();
}
