//! kafka-webhook through the subscription trait and its per-record phase
//! ([`Subscription::handle`]), against a real HTTP origin on loopback: what a target
//! receives (body, content type, Standard Webhooks id and signature, forwarded
//! headers), retries until a 2xx, `410 Gone` disabling the target, and a record that
//! could be neither delivered nor dead-lettered is not reported done (so its offset is
//! not committed).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage, Timestamp};
use sluice_core::testkit;
use sluice_kafka::KafkaRuntime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;
use sluice_core::plugin::Subscription as Sub;

/// One request as the origin read it: the head (lower-cased header names) and body.
#[derive(Debug, Clone)]
struct Received {
    head: String,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// An origin answering the scripted statuses in turn (then `200`), one request per
/// connection.
async fn origin(statuses: &[u16]) -> (String, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: Arc<Mutex<Vec<Received>>> = Arc::default();
    let (script, log) = (statuses.to_vec(), seen.clone());
    tokio::spawn(async move {
        for i in 0.. {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head, body) = loop {
                let n = s.read(&mut chunk).await.unwrap_or(0);
                buf.extend_from_slice(&chunk[..n]);
                if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&buf[..end]).to_string();
                    let len: usize = Received {
                        head: head.clone(),
                        body: vec![],
                    }
                    .header("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                    while buf.len() < end + 4 + len {
                        let n = s.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    break (head, buf[end + 4..].to_vec());
                }
                if n == 0 {
                    break (String::new(), Vec::new());
                }
            };
            log.lock().unwrap().push(Received { head, body });
            let status = script.get(i).copied().unwrap_or(200);
            let answer =
                format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = s.write_all(answer.as_bytes()).await;
        }
    });
    (format!("http://{addr}"), seen)
}

fn runtime() -> Arc<KafkaRuntime> {
    let clusters: BTreeMap<String, sluice_core::config::ClusterConfig> =
        serde_yaml::from_str("default: { brokers: ['127.0.0.1:1'] }").unwrap();
    Arc::new(KafkaRuntime::new(&clusters))
}

/// A subscription `id` delivering to `base` (retries 10ms apart, 2 of them).
fn subscription(kafka: &Arc<KafkaRuntime>, id: &str, base: &str) -> Arc<dyn Sub> {
    let yaml = format!(
        "{{ id: {id}, topics: [orders], kafka-webhook: {{ url: '{base}/hook/{{topic}}/{{key}}', allow_private_targets: true, secrets: ['whsec_c2VjcmV0LWtleS1mb3ItdGVzdHM='], headers: [x-tenant], retries: [10ms, 10ms] }} }}"
    );
    testkit::subscription(&KafkaWebhook::new(kafka.clone()), &yaml).unwrap()
}

/// The webhook behind the trait object, for its per-record phase.
fn webhook_of(sub: &Arc<dyn Sub>) -> &Subscription {
    sub.as_any().downcast_ref().unwrap()
}

fn record(offset: i64) -> OwnedMessage {
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: "ce_id",
            value: Some("evt-1"),
        })
        .insert(Header {
            key: "content-type",
            value: Some("application/json"),
        })
        .insert(Header {
            key: "x-tenant",
            value: Some("acme"),
        })
        .insert(Header {
            key: "x-secret",
            value: Some("not forwarded"),
        });
    OwnedMessage::new(
        Some(br#"{"order":1}"#.to_vec()),
        Some(b"k1".to_vec()),
        "orders".into(),
        Timestamp::CreateTime(1_700_000_000_000),
        0,
        offset,
        Some(headers),
    )
}

fn deliveries(id: &str, outcome: &str) -> u64 {
    webhook().map_or(0, |m| m.deliveries.with_label_values(&[id, outcome]).get())
}

#[tokio::test]
async fn a_record_reaches_the_target_signed_with_its_headers() {
    let (base, seen) = origin(&[]).await;
    let sub = subscription(&runtime(), "wh-signed", &base);
    let (_stop_tx, stop) = watch::channel(false);
    assert!(
        webhook_of(&sub).handle(&record(5), &stop).await,
        "delivered: done"
    );
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert!(
        r.head.starts_with("POST /hook/orders/k1 HTTP/1.1"),
        "{}",
        r.head
    );
    assert_eq!(r.body, br#"{"order":1}"#);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("webhook-id"), Some("evt-1"));
    assert_eq!(r.header("x-tenant"), Some("acme"));
    assert_eq!(
        r.header("x-secret"),
        None,
        "only listed headers are forwarded"
    );
    let ts = r.header("webhook-timestamp").unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"secret-key-for-tests").unwrap();
    mac.update(format!("evt-1.{ts}.").as_bytes());
    mac.update(&r.body);
    let want = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(
        r.header("webhook-signature"),
        Some(format!("v1,{want}").as_str())
    );
    assert_eq!(deliveries("wh-signed", "delivered"), 1);
}

#[tokio::test]
async fn failures_are_retried_until_a_2xx_with_the_same_id() {
    let (base, seen) = origin(&[503, 429]).await;
    let sub = subscription(&runtime(), "wh-retried", &base);
    let (_stop_tx, stop) = watch::channel(false);
    assert!(webhook_of(&sub).handle(&record(6), &stop).await);
    let got = seen.lock().unwrap().clone();
    assert_eq!(got.len(), 3, "two failures, then the 2xx");
    assert!(got.iter().all(|r| r.header("webhook-id") == Some("evt-1")));
    assert_eq!(deliveries("wh-retried", "delivered"), 1);
}

#[tokio::test]
async fn gone_disables_the_target_and_an_undelivered_record_is_not_done() {
    let (base, seen) = origin(&[410]).await;
    let kafka = runtime();
    let sub = subscription(&kafka, "wh-gone", &base);
    assert!(!sub.is_disabled());
    let (stop_tx, stop) = watch::channel(false);
    let running = tokio::spawn({
        let sub = sub.clone();
        async move { webhook_of(&sub).handle(&record(7), &stop).await }
    });
    // The dead-letter topic's cluster is not running: the record waits, unfinished.
    tokio::time::timeout(Duration::from_secs(60), async {
        while !sub.is_disabled() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the 410 disables the target");
    stop_tx.send(true).unwrap();
    assert!(
        !running.await.unwrap(),
        "neither delivered nor dead-lettered: not done"
    );
    let (_tx, stop) = watch::channel(true);
    assert!(!webhook_of(&sub).handle(&record(8), &stop).await);
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "a disabled target gets no more requests"
    );
    assert_eq!(deliveries("wh-gone", "dead_lettered"), 0);
}

#[test]
fn same_runtime_means_the_same_cluster_client() {
    let kafka = runtime();
    let a = subscription(&kafka, "a", "http://127.0.0.1:9");
    let b = subscription(&kafka, "b", "http://127.0.0.1:9");
    let other = subscription(&runtime(), "c", "http://127.0.0.1:9");
    assert_eq!(a.id(), "a");
    assert!(a.same_runtime(b.as_ref()));
    assert!(!a.same_runtime(other.as_ref()));
    assert!(a.assigned().is_empty(), "nothing owned before it runs");
}
