use super::*;
use crate::config::{default_redact, default_redact_query};

static NO_CREDENTIALS: CredentialNames = CredentialNames {
    headers: Vec::new(),
    query: Vec::new(),
};

fn opts(format: Format) -> EncodeOptions {
    EncodeOptions {
        redact: default_redact(),
        redact_query: default_redact_query(),
        include_headers: true,
        format,
        ce_type: "io.sluice.http.exchange".into(),
        ce_source: "/routes/orders".into(),
    }
}

fn request() -> RequestHeader {
    let mut r = RequestHeader::build("POST", b"/api/orders?x=1", None).unwrap();
    r.append_header("Host", "api.example").unwrap();
    r.append_header("Authorization", "Bearer secret-token")
        .unwrap();
    r.append_header("Cookie", "session=abc").unwrap();
    r.append_header("X-Multi", "a").unwrap();
    r.append_header("X-Multi", "b").unwrap();
    r.append_header(
        "traceparent",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )
    .unwrap();
    r
}

fn exchange<'a>(
    req: &'a RequestHeader,
    resp: &'a ResponseHeader,
    body: &'a Captured,
) -> Exchange<'a> {
    Exchange {
        id: "0190e0a0-0000-7000-8000-000000000001",
        started_at: SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123),
        route_id: "orders",
        request_id: "req-1",
        client_ip: Some("192.0.2.7".parse().unwrap()),
        consumer: None,
        credentials: &NO_CREDENTIALS,
        request: req,
        request_size: 11,
        request_body: Some(body),
        response: Some(resp),
        response_size: 2,
        response_body: None,
        upstream: Some("127.0.0.1:9000"),
        error: None,
        total_seconds: 0.010,
        upstream_seconds: Some(0.008),
    }
}

#[test]
fn entry_has_documented_fields_and_redacts_credentials() {
    let req = request();
    let mut resp = ResponseHeader::build(201, None).unwrap();
    resp.append_header("Set-Cookie", "s=1").unwrap();
    resp.append_header("Content-Type", "application/json")
        .unwrap();
    let body = Captured {
        bytes: b"{\"qty\":2}".to_vec(),
        truncated: true,
    };
    let v: serde_json::Value = serde_json::from_slice(&encode_entry(
        &exchange(&req, &resp, &body),
        &opts(Format::Json),
    ))
    .unwrap();
    assert_eq!(v["id"], "0190e0a0-0000-7000-8000-000000000001");
    assert_eq!(v["time"], "2023-11-14T22:13:20.123Z");
    assert_eq!(v["route_id"], "orders");
    assert_eq!(v["client_ip"], "192.0.2.7");
    assert_eq!(v["request"]["method"], "POST");
    assert_eq!(v["request"]["uri"], "/api/orders?x=1");
    assert_eq!(v["request"]["path"], "/api/orders");
    assert_eq!(v["request"]["query"], "x=1");
    assert_eq!(v["request"]["size"], 11);
    assert_eq!(v["request"]["body"], "{\"qty\":2}");
    assert_eq!(v["request"]["body_truncated"], true);
    assert_eq!(v["request"]["headers"]["authorization"], "[REDACTED]");
    assert_eq!(v["request"]["headers"]["cookie"], "[REDACTED]");
    assert_eq!(v["request"]["headers"]["x-multi"], "a, b");
    assert_eq!(v["response"]["status"], 201);
    assert_eq!(v["response"]["headers"]["set-cookie"], "[REDACTED]");
    assert!(v["response"].get("body").is_none());
    assert_eq!(v["upstream"], "127.0.0.1:9000");
    assert!(v.get("error").is_none());
    assert_eq!(v["latency_seconds"]["total"], 0.010);
    assert_eq!(v["latency_seconds"]["upstream"], 0.008);
    let gw = v["latency_seconds"]["gateway"].as_f64().unwrap();
    assert!((gw - 0.002).abs() < 1e-9);
    let text = String::from_utf8(encode_entry(
        &exchange(&req, &resp, &body),
        &opts(Format::Json),
    ))
    .unwrap();
    assert!(!text.contains("secret-token") && !text.contains("session=abc"));
}

#[test]
fn binary_bodies_are_base64_and_headers_optional() {
    let req = request();
    let resp = ResponseHeader::build(200, None).unwrap();
    let body = Captured {
        bytes: vec![0xff, 0x00, 0x10],
        truncated: false,
    };
    let mut o = opts(Format::Json);
    o.include_headers = false;
    let v: serde_json::Value =
        serde_json::from_slice(&encode_entry(&exchange(&req, &resp, &body), &o)).unwrap();
    assert_eq!(v["request"]["body"], "/wAQ");
    assert_eq!(v["request"]["body_encoding"], "base64");
    assert!(v["request"].get("headers").is_none());
}

#[test]
fn cloudevents_headers_and_traceparent() {
    let req = request();
    let resp = ResponseHeader::build(200, None).unwrap();
    let body = Captured::default();
    let x = exchange(&req, &resp, &body);
    let h = record_headers(&x, &opts(Format::Cloudevents));
    let get = |k: &str| {
        h.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
    };
    assert_eq!(get("ce_specversion").as_deref(), Some("1.0"));
    assert_eq!(get("ce_id").as_deref(), Some(x.id));
    assert_eq!(get("ce_source").as_deref(), Some("/routes/orders"));
    assert_eq!(get("ce_type").as_deref(), Some("io.sluice.http.exchange"));
    assert_eq!(get("ce_time").as_deref(), Some("2023-11-14T22:13:20.123Z"));
    assert_eq!(get("content-type").as_deref(), Some("application/json"));
    let tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    assert_eq!(get("traceparent").as_deref(), Some(tp));
    assert_eq!(get("ce_traceparent").as_deref(), Some(tp));
    let plain = record_headers(&x, &opts(Format::Json));
    assert!(plain.iter().all(|(n, _)| !n.starts_with("ce_")));
}

#[test]
fn bodies_are_cut_to_fit_the_record_budget_and_flagged() {
    let req = request();
    let resp = ResponseHeader::build(200, None).unwrap();
    let mut text = Captured::default();
    text.push("é".repeat(300_000).as_bytes(), usize::MAX); // 600 KB of two-byte chars
    let mut binary = Captured::default();
    binary.push(&vec![0xff; 500_000], usize::MAX);
    let mut x = exchange(&req, &resp, &text);
    x.response_body = Some(&binary);
    let o = opts(Format::Json);
    let budget = 200_000;
    let v = encode_entry_within(&x, &o, budget);
    assert!(v.len() <= budget, "{} bytes", v.len());
    let e: serde_json::Value = serde_json::from_slice(&v).unwrap();
    assert_eq!(e["request"]["body_truncated"], true);
    assert_eq!(e["response"]["body_truncated"], true);
    assert_eq!(e["response"]["body_encoding"], "base64");
    let req_body = e["request"]["body"].as_str().unwrap();
    assert!(
        req_body.chars().all(|c| c == 'é'),
        "cut at a character boundary"
    );
    // Both bodies got a fair share of the room.
    assert!(req_body.len() > 50_000, "{}", req_body.len());
    assert!(e["response"]["body"].as_str().unwrap().len() > 50_000);
    // An entry that fits is unchanged.
    let small = encode_entry_within(&x, &o, usize::MAX);
    assert_eq!(small, encode_entry(&x, &o));
}

#[test]
fn room_is_shared_fairly() {
    assert_eq!(split(100, 10, 500), (10, 90));
    assert_eq!(split(100, 500, 10), (90, 10));
    assert_eq!(split(100, 500, 500), (50, 50));
    assert_eq!(split(100, 10, 10), (10, 90));
}

#[test]
fn credential_query_parameters_are_redacted_everywhere() {
    let mut req = RequestHeader::build(
        "GET",
        b"/a?x=1&apikey=s3cret&Token=t0k&api%5Fkey=k3y&my_key=m1;secret=semi",
        None,
    )
    .unwrap();
    req.append_header("X-My-Key", "hdr-secret").unwrap();
    let resp = ResponseHeader::build(401, None).unwrap();
    let body = Captured::default();
    let mut x = exchange(&req, &resp, &body);
    let marked = CredentialNames {
        headers: vec!["x-my-key".into()],
        query: vec!["my_key".into()],
    };
    x.credentials = &marked;
    let v = encode_entry(&x, &opts(Format::Json));
    let text = String::from_utf8(v).unwrap();
    for secret in ["s3cret", "t0k", "k3y", "m1", "hdr-secret", "semi"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    let e: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        e["request"]["uri"],
        "/a?x=1&apikey=[REDACTED]&Token=[REDACTED]&api%5Fkey=[REDACTED]&my_key=[REDACTED];secret=[REDACTED]"
    );
    assert_eq!(e["request"]["headers"]["x-my-key"], "[REDACTED]");
}
