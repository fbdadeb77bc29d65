//! The two records' shapes: the request record (the body as value, correlation and
//! reply-to headers, method, path, content type and the headers the route forwards) and
//! the HTTP response made of a reply record (status from `sluice-status`, the record's
//! headers that are valid HTTP headers, the value as body).

use http::{HeaderName, HeaderValue};
use pingora_http::RequestHeader;
use sluice_core::HttpResponse;
use sluice_kafka::OutgoingEvent;

use crate::replies::{Reply, CORRELATION, REPLY_TO};

/// Headers never copied between HTTP and Kafka.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
];

/// What a request record is made of.
pub struct RequestRecord<'a> {
    /// The topic.
    pub topic: String,
    /// The key.
    pub key: Option<Vec<u8>>,
    /// The correlation id.
    pub id: &'a str,
    /// Where the reply goes.
    pub reply_to: &'a str,
    /// The HTTP request.
    pub req: &'a RequestHeader,
    /// Its body.
    pub body: Vec<u8>,
    /// Request headers to copy.
    pub forward: &'a [HeaderName],
}

/// The request record.
pub fn request_record(r: RequestRecord<'_>) -> OutgoingEvent {
    let mut headers = vec![
        (CORRELATION.to_string(), r.id.as_bytes().to_vec()),
        (REPLY_TO.to_string(), r.reply_to.as_bytes().to_vec()),
        (
            "sluice-method".to_string(),
            r.req.method.as_str().as_bytes().to_vec(),
        ),
        (
            "sluice-path".to_string(),
            r.req
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .as_bytes()
                .to_vec(),
        ),
    ];
    if let Some(ct) = r.req.headers.get(http::header::CONTENT_TYPE) {
        headers.push(("content-type".into(), ct.as_bytes().to_vec()));
    }
    for name in r.forward {
        for v in r.req.headers.get_all(name) {
            headers.push((name.as_str().to_string(), v.as_bytes().to_vec()));
        }
    }
    OutgoingEvent {
        topic: r.topic,
        key: r.key,
        value: r.body,
        headers,
        timestamp_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_millis() as i64),
    }
}

/// The HTTP response for `reply` to request `id`.
pub fn response(reply: &Reply, id: &str) -> HttpResponse {
    let mut r = HttpResponse::new(reply.status, "application/octet-stream", reply.body.clone());
    r.headers
        .retain(|(n, _)| !n.eq_ignore_ascii_case("content-type"));
    for (name, value) in &reply.headers {
        let lower = name.to_ascii_lowercase();
        let repeated =
            lower == "content-type" && r.headers.iter().any(|(n, _)| n == "content-type");
        if lower.starts_with("sluice-")
            || lower.starts_with(':')
            || lower == "x-correlation-id"
            || repeated
            || HOP_BY_HOP.contains(&lower.as_str())
        {
            continue;
        }
        let valid = HeaderName::from_bytes(lower.as_bytes()).is_ok()
            && HeaderValue::from_bytes(value).is_ok();
        if let (true, Ok(v)) = (valid, std::str::from_utf8(value)) {
            r.headers.push((lower, v.to_string()));
        }
    }
    if !r.headers.iter().any(|(n, _)| n == "content-type") {
        r.headers
            .push(("content-type".into(), "application/octet-stream".into()));
    }
    r.with_header("x-correlation-id", id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_become_responses_without_unsafe_headers() {
        let reply = Reply {
            status: 201,
            headers: vec![
                ("sluice-correlation-id".into(), b"id".to_vec()),
                ("content-type".into(), b"application/json".to_vec()),
                ("x-order".into(), b"42".to_vec()),
                ("transfer-encoding".into(), b"chunked".to_vec()),
                ("x-bad".into(), b"a\r\nset-cookie: x".to_vec()),
                ("bad name".into(), b"v".to_vec()),
            ],
            body: bytes::Bytes::from_static(b"{}"),
        };
        let r = response(&reply, "id-1");
        assert_eq!(r.status, 201);
        let names: Vec<&str> = r.headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["content-type", "x-order", "x-correlation-id"]);
        assert_eq!(r.headers[0].1, "application/json");
    }

    #[test]
    fn request_records_carry_correlation_and_forwarded_headers() {
        let mut req = RequestHeader::build("POST", b"/quote?x=1", None).unwrap();
        req.insert_header("content-type", "application/json")
            .unwrap();
        req.insert_header("x-tenant", "acme").unwrap();
        req.insert_header("authorization", "secret").unwrap();
        let e = request_record(RequestRecord {
            topic: "q".into(),
            key: None,
            id: "c-1",
            reply_to: "replies",
            req: &req,
            body: b"{}".to_vec(),
            forward: &[HeaderName::from_static("x-tenant")],
        });
        let h = |n: &str| {
            e.headers
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.as_slice())
        };
        assert_eq!(h(CORRELATION), Some(&b"c-1"[..]));
        assert_eq!(h(REPLY_TO), Some(&b"replies"[..]));
        assert_eq!(h("sluice-path"), Some(&b"/quote?x=1"[..]));
        assert_eq!(h("x-tenant"), Some(&b"acme"[..]));
        assert_eq!(h("authorization"), None, "only listed headers");
    }
}
