//! The Kafka record of a diverted request: the body as the value, CloudEvents binary
//! content mode headers (`ce_id`, `ce_source`, `ce_type`, `ce_specversion`, `ce_time`,
//! `content-type`), `traceparent`/`tracestate`, and the allow-listed request headers.

use std::time::SystemTime;

use http::HeaderName;
use pingora_http::RequestHeader;
use sha2::{Digest, Sha256};
use sluice_core::context::Consumer;
use sluice_kafka::OutgoingEvent;

/// Headers that describe one connection, never copied (RFC 9110 §7.6.1).
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "expect",
];

/// Namespace of the UUIDv5 event ids derived from idempotency keys.
const EVENT_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6c1d_7f3e_2a4b_5c8d_9e0f_1a2b_3c4d_5e6f);

/// The event id: derived from route and idempotency key when there is one (the same on
/// every retry and across restarts, so consumers can deduplicate), else a UUIDv7.
pub fn event_id(route_id: &str, idempotency_key: Option<&str>) -> String {
    match idempotency_key {
        Some(k) => {
            let name = format!("{route_id}\n{k}");
            uuid::Uuid::new_v5(&EVENT_ID_NAMESPACE, name.as_bytes()).to_string()
        }
        None => uuid::Uuid::now_v7().to_string(),
    }
}

/// The payload fingerprint an idempotency key is bound to: method, target, content type
/// and body.
pub fn fingerprint(req: &RequestHeader, body: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(req.method.as_str().as_bytes());
    h.update(b"\n");
    h.update(req.uri.to_string().as_bytes());
    h.update(b"\n");
    h.update(
        req.headers
            .get(http::header::CONTENT_TYPE)
            .map(|v| v.as_bytes())
            .unwrap_or_default(),
    );
    h.update(b"\n");
    h.update(body);
    h.finalize().into()
}

/// The fixed parts of every record of a route.
pub struct RecordSpec {
    /// `ce_source`.
    pub ce_source: String,
    /// `ce_type`.
    pub ce_type: String,
    /// Request headers copied as record headers.
    pub forward: Vec<HeaderName>,
}

/// Everything that varies per request.
pub struct RecordInput<'a> {
    /// Rendered topic.
    pub topic: String,
    /// Rendered key, if any.
    pub key: Option<Vec<u8>>,
    /// Event id.
    pub id: &'a str,
    /// Request time.
    pub time: SystemTime,
    /// The request header.
    pub req: &'a RequestHeader,
    /// The body, exactly as received.
    pub body: Vec<u8>,
    /// The authenticated consumer (`ce_authtype`, `ce_authid`), if any.
    pub consumer: Option<&'a Consumer>,
}

/// Build the record.
pub fn build(spec: &RecordSpec, x: RecordInput<'_>) -> OutgoingEvent {
    let time = humantime::format_rfc3339_millis(x.time).to_string();
    let mut headers: Vec<(String, Vec<u8>)> = vec![
        ("ce_specversion".into(), b"1.0".to_vec()),
        ("ce_id".into(), x.id.as_bytes().to_vec()),
        ("ce_source".into(), spec.ce_source.as_bytes().to_vec()),
        ("ce_type".into(), spec.ce_type.as_bytes().to_vec()),
        ("ce_time".into(), time.into_bytes()),
    ];
    let h = &x.req.headers;
    if let Some(ct) = h.get(http::header::CONTENT_TYPE) {
        headers.push(("content-type".into(), ct.as_bytes().to_vec()));
    }
    headers.extend(sluice_core::trace::trace_headers(x.req));
    if let Some(c) = x.consumer {
        headers.extend(c.cloudevents_headers());
    }
    for name in &spec.forward {
        for v in h.get_all(name) {
            headers.push((name.as_str().to_string(), v.as_bytes().to_vec()));
        }
    }
    OutgoingEvent {
        topic: x.topic,
        key: x.key,
        value: x.body,
        headers,
        timestamp_ms: x
            .time
            .duration_since(SystemTime::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_millis() as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> RequestHeader {
        let mut r = RequestHeader::build("POST", b"/orders?x=1", None).unwrap();
        r.append_header("Content-Type", "application/json").unwrap();
        r.append_header("Authorization", "Bearer secret").unwrap();
        r.append_header("X-Tenant", "acme").unwrap();
        r.append_header("X-Tag", "a").unwrap();
        r.append_header("X-Tag", "b").unwrap();
        r.append_header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .unwrap();
        r
    }

    fn spec(forward: &[&'static str]) -> RecordSpec {
        RecordSpec {
            ce_source: "/routes/orders".into(),
            ce_type: "io.sluice.request.diverted".into(),
            forward: forward.iter().map(|h| HeaderName::from_static(h)).collect(),
        }
    }

    fn header<'a>(e: &'a OutgoingEvent, k: &str) -> Vec<&'a str> {
        e.headers
            .iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| std::str::from_utf8(v).unwrap())
            .collect()
    }

    #[test]
    fn cloudevents_binary_mode_headers_and_allow_list() {
        let r = req();
        let e = build(
            &spec(&["x-tenant", "x-tag"]),
            RecordInput {
                topic: "orders".into(),
                key: Some(b"k1".to_vec()),
                id: "id-1",
                time: SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123),
                req: &r,
                consumer: None,
                body: b"{\"qty\":1}".to_vec(),
            },
        );
        assert_eq!(e.value, b"{\"qty\":1}");
        assert_eq!(e.key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(e.timestamp_ms, Some(1_700_000_000_123));
        assert_eq!(header(&e, "ce_specversion"), ["1.0"]);
        assert_eq!(header(&e, "ce_id"), ["id-1"]);
        assert_eq!(header(&e, "ce_source"), ["/routes/orders"]);
        assert_eq!(header(&e, "ce_type"), ["io.sluice.request.diverted"]);
        assert_eq!(header(&e, "ce_time"), ["2023-11-14T22:13:20.123Z"]);
        assert_eq!(header(&e, "content-type"), ["application/json"]);
        assert_eq!(header(&e, "traceparent").len(), 1);
        assert_eq!(header(&e, "x-tenant"), ["acme"]);
        assert_eq!(header(&e, "x-tag"), ["a", "b"]);
        assert!(
            header(&e, "authorization").is_empty(),
            "credentials only when listed"
        );
        let with_auth = build(
            &spec(&["authorization"]),
            RecordInput {
                topic: "t".into(),
                key: None,
                id: "i",
                time: SystemTime::now(),
                req: &r,
                consumer: None,
                body: vec![],
            },
        );
        assert_eq!(header(&with_auth, "authorization"), ["Bearer secret"]);
    }

    #[test]
    fn event_ids_are_deterministic_per_route_and_key() {
        let a = event_id("orders", Some("key-1"));
        assert_eq!(a, event_id("orders", Some("key-1")));
        assert_ne!(a, event_id("orders", Some("key-2")));
        assert_ne!(a, event_id("payments", Some("key-1")));
        assert_ne!(event_id("orders", None), event_id("orders", None));
        assert_eq!(uuid::Uuid::parse_str(&a).unwrap().get_version_num(), 5);
    }

    #[test]
    fn fingerprints_bind_method_target_type_and_body() {
        let r = req();
        let f = fingerprint(&r, b"x");
        assert_eq!(f, fingerprint(&r, b"x"));
        assert_ne!(f, fingerprint(&r, b"y"));
        let mut other = req();
        other.set_uri("/orders?x=2".parse().unwrap());
        assert_ne!(f, fingerprint(&other, b"x"));
    }
}
