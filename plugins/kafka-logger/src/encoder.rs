//! Encoding one request/response exchange as a Kafka record: the JSON entry (value)
//! and the record headers (`content-type`, `traceparent`, CloudEvents attributes).
//!
//! The entry's fields (all documented in the README):
//! `id`, `time` (RFC 3339), `route_id`, `request_id`, `client_ip`, `consumer?`,
//! `request {method, uri, path, query, headers, size, body?, body_encoding?, body_truncated?}`,
//! `response {status, headers, size, body?, ...}`, `upstream`, `error`,
//! `latency_seconds {total, upstream, gateway}`.

use std::net::IpAddr;
use std::time::SystemTime;

use base64::Engine as _;
use http::HeaderMap;
use pingora_http::{RequestHeader, ResponseHeader};
use serde::Serialize;

use sluice_core::context::{Consumer, CredentialNames};
use sluice_core::trace::{trace_headers, traceparent};

use crate::capture::Captured;
use crate::config::Format;

/// What is logged about one exchange (borrowed from the request context).
pub struct Exchange<'a> {
    /// Event id (also `ce_id`).
    pub id: &'a str,
    /// When the request started.
    pub started_at: SystemTime,
    /// Matched route.
    pub route_id: &'a str,
    /// Request id.
    pub request_id: &'a str,
    /// Client address.
    pub client_ip: Option<IpAddr>,
    /// The authenticated consumer, if any.
    pub consumer: Option<&'a Consumer>,
    /// Credential header and query names the route's authentication plugins use.
    pub credentials: &'a CredentialNames,
    /// The request header as received.
    pub request: &'a RequestHeader,
    /// Request body bytes read.
    pub request_size: u64,
    /// Captured request body, when enabled.
    pub request_body: Option<&'a Captured>,
    /// The response header as sent, if any.
    pub response: Option<&'a ResponseHeader>,
    /// Response body bytes sent.
    pub response_size: u64,
    /// Captured response body, when enabled.
    pub response_body: Option<&'a Captured>,
    /// Upstream node address, when proxied.
    pub upstream: Option<&'a str>,
    /// Why the request failed, if it did (`upstream_connect_refused`, ...).
    pub error: Option<&'a str>,
    /// Seconds from request start to the end of the response.
    pub total_seconds: f64,
    /// Seconds spent waiting for the upstream.
    pub upstream_seconds: Option<f64>,
}

/// How entries are written.
pub struct EncodeOptions {
    /// Lower-case header names whose values are replaced by `[REDACTED]`.
    pub redact: Vec<String>,
    /// Query parameter names whose values are replaced by `[REDACTED]`.
    pub redact_query: Vec<String>,
    /// Log headers at all.
    pub include_headers: bool,
    /// Record layout.
    pub format: Format,
    /// `ce_type` (cloudevents).
    pub ce_type: String,
    /// `ce_source` (cloudevents).
    pub ce_source: String,
}

#[derive(Serialize)]
struct Entry<'a> {
    id: &'a str,
    time: String,
    route_id: &'a str,
    request_id: &'a str,
    client_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    consumer: Option<&'a str>,
    request: RequestPart<'a>,
    response: ResponsePart<'a>,
    upstream: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    latency_seconds: Latency,
}

#[derive(Serialize)]
struct RequestPart<'a> {
    method: &'a str,
    uri: String,
    path: &'a str,
    query: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    headers: Option<Headers<'a>>,
    size: u64,
    #[serde(flatten)]
    body: Option<Body<'a>>,
}

#[derive(Serialize)]
struct ResponsePart<'a> {
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    headers: Option<Headers<'a>>,
    size: u64,
    #[serde(flatten)]
    body: Option<Body<'a>>,
}

#[derive(Serialize)]
struct Body<'a> {
    body: std::borrow::Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body_encoding: Option<&'static str>,
    body_truncated: bool,
}

#[derive(Serialize)]
struct Latency {
    total: f64,
    upstream: Option<f64>,
    gateway: f64,
}

const REDACTED: &str = "[REDACTED]";

/// A header map serialized as a JSON object without copying it first: one entry per
/// name (lower-case), repeated values joined with `, `, redacted values replaced.
struct Headers<'a> {
    map: &'a HeaderMap,
    redact: &'a [String],
    also: &'a [std::sync::Arc<str>],
}

impl Serialize for Headers<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.map.keys_len()))?;
        for name in self.map.keys() {
            let key = name.as_str();
            if self.redact.iter().any(|r| r == key)
                || self.also.iter().any(|r| key.eq_ignore_ascii_case(r))
            {
                m.serialize_entry(key, REDACTED)?;
                continue;
            }
            let mut values = self.map.get_all(name).iter();
            let first = values.next().map(|v| String::from_utf8_lossy(v.as_bytes()));
            match (first, values.next()) {
                (Some(v), None) => m.serialize_entry(key, &v)?,
                (first, second) => {
                    let joined: Vec<_> = first
                        .into_iter()
                        .chain(
                            second
                                .into_iter()
                                .chain(values)
                                .map(|v| String::from_utf8_lossy(v.as_bytes())),
                        )
                        .collect();
                    m.serialize_entry(key, &joined.join(", "))?
                }
            }
        }
        m.end()
    }
}

fn headers<'a>(
    map: &'a HeaderMap,
    opts: &'a EncodeOptions,
    also: &'a [std::sync::Arc<str>],
) -> Option<Headers<'a>> {
    opts.include_headers.then_some(Headers {
        map,
        redact: &opts.redact,
        also,
    })
}

/// `query` with the values of credential parameters replaced by `[REDACTED]`.
fn redact_query<'a>(
    query: &'a str,
    names: &[String],
    also: &[std::sync::Arc<str>],
) -> std::borrow::Cow<'a, str> {
    let secret = |pair: &str| {
        let name = pair.split('=').next().unwrap_or("");
        // Decoded only when escaped: no allocation for plain names (every logged request).
        let name: std::borrow::Cow<'_, str> = if name.contains('%') {
            sluice_core::template::percent_decode(name).into()
        } else {
            name.into()
        };
        names.iter().any(|n| n.eq_ignore_ascii_case(&name))
            || also.iter().any(|n| n.eq_ignore_ascii_case(&name))
    };
    // `;` separates parameters for some origins too.
    let is_sep = |c: char| c == '&' || c == ';';
    if !query.split(is_sep).any(secret) {
        return query.into();
    }
    let mut out = String::with_capacity(query.len());
    let mut rest = query;
    loop {
        let end = rest.find(is_sep).unwrap_or(rest.len());
        let pair = &rest[..end];
        match pair.split_once('=') {
            Some((name, _)) if secret(pair) => {
                out.push_str(name);
                out.push('=');
                out.push_str(REDACTED);
            }
            _ => out.push_str(pair),
        }
        match rest[end..].chars().next() {
            Some(sep) => {
                out.push(sep);
                rest = &rest[end + 1..];
            }
            None => break,
        }
    }
    out.into()
}

/// The body field of a captured body, keeping at most `limit` of its bytes (cut at a
/// character boundary when it is text).
fn body(c: Option<&Captured>, limit: usize) -> Option<Body<'_>> {
    let c = c?;
    let cut = limit < c.bytes.len();
    let truncated = c.truncated || cut;
    let bytes = &c.bytes[..c.bytes.len().min(limit)];
    Some(match std::str::from_utf8(&c.bytes) {
        Ok(text) => {
            let mut end = bytes.len();
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            Body {
                body: text[..end].into(),
                body_encoding: None,
                body_truncated: truncated,
            }
        }
        Err(_) => Body {
            body: base64::engine::general_purpose::STANDARD
                .encode(bytes)
                .into(),
            body_encoding: Some("base64"),
            body_truncated: truncated,
        },
    })
}

/// Split `room` bytes between two bodies of `a` and `b` bytes: each gets half, and what
/// one does not need goes to the other.
fn split(room: usize, a: usize, b: usize) -> (usize, usize) {
    let half = room / 2;
    match (a <= half, b <= half) {
        (true, _) => (a, room - a),
        (_, true) => (room - b, b),
        _ => (half, room - half),
    }
}

/// The JSON entry for an exchange, no longer than `budget` bytes when that is possible:
/// the captured bodies are cut (and flagged `body_truncated`) until the entry fits, the
/// request's and the response's sharing the room fairly. Only an entry that does not
/// fit without any body is longer.
pub fn encode_entry_within(x: &Exchange<'_>, opts: &EncodeOptions, budget: usize) -> Vec<u8> {
    let full = encode_entry_limited(x, opts, usize::MAX, usize::MAX);
    if full.len() <= budget {
        return full;
    }
    let bare = encode_entry_limited(x, opts, 0, 0);
    let len = |c: Option<&Captured>| c.map_or(0, |c| c.bytes.len());
    let (req, resp) = (len(x.request_body), len(x.response_body));
    let mut room = budget.saturating_sub(bare.len());
    // Escaping (JSON, base64) makes a body longer than its bytes: shrink until it fits.
    for _ in 0..8 {
        let (r, s) = split(room, req, resp);
        let v = encode_entry_limited(x, opts, r, s);
        if v.len() <= budget {
            return v;
        }
        let over = v.len() - budget;
        room = room.saturating_sub(over.max(room / 8));
    }
    bare
}

/// The RFC 3339 time (milliseconds, UTC) of `t`.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// The JSON entry for an exchange.
pub fn encode_entry(x: &Exchange<'_>, opts: &EncodeOptions) -> Vec<u8> {
    encode_entry_limited(x, opts, usize::MAX, usize::MAX)
}

/// The JSON entry with at most `req_limit` / `resp_limit` bytes of each body.
fn encode_entry_limited(
    x: &Exchange<'_>,
    opts: &EncodeOptions,
    req_limit: usize,
    resp_limit: usize,
) -> Vec<u8> {
    let upstream = x.upstream_seconds;
    let query = x
        .request
        .uri
        .query()
        .map(|q| redact_query(q, &opts.redact_query, &x.credentials.query));
    let path = x.request.uri.path();
    let uri = match &query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    let entry = Entry {
        id: x.id,
        time: rfc3339(x.started_at),
        route_id: x.route_id,
        request_id: x.request_id,
        client_ip: x.client_ip.map(|ip| ip.to_string()),
        consumer: x.consumer.map(|c| c.name.as_ref()),
        request: RequestPart {
            method: x.request.method.as_str(),
            uri,
            path,
            query: query.as_deref(),
            headers: headers(&x.request.headers, opts, &x.credentials.headers),
            size: x.request_size,
            body: body(x.request_body, req_limit),
        },
        response: ResponsePart {
            status: x.response.map(|r| r.status.as_u16()),
            headers: x
                .response
                .and_then(|r| headers(&r.headers, opts, &x.credentials.headers)),
            size: x.response_size,
            body: body(x.response_body, resp_limit),
        },
        upstream: x.upstream,
        error: x.error,
        latency_seconds: Latency {
            total: x.total_seconds,
            upstream,
            gateway: (x.total_seconds - upstream.unwrap_or(0.0)).max(0.0),
        },
    };
    serde_json::to_vec(&entry).unwrap_or_default()
}

/// The record headers for an exchange.
pub fn record_headers(x: &Exchange<'_>, opts: &EncodeOptions) -> Vec<(String, Vec<u8>)> {
    let mut h = Vec::with_capacity(8);
    let trace = traceparent(x.request);
    if opts.format == Format::Cloudevents {
        h.push(("ce_specversion".into(), b"1.0".to_vec()));
        h.push(("ce_id".into(), x.id.as_bytes().to_vec()));
        h.push(("ce_source".into(), opts.ce_source.as_bytes().to_vec()));
        h.push(("ce_type".into(), opts.ce_type.as_bytes().to_vec()));
        h.push(("ce_time".into(), rfc3339(x.started_at).into_bytes()));
        if let Some(t) = trace {
            h.push(("ce_traceparent".into(), t.to_vec()));
        }
        if let Some(c) = x.consumer {
            h.extend(c.cloudevents_headers());
        }
    }
    h.push(("content-type".into(), b"application/json".to_vec()));
    h.extend(trace_headers(x.request));
    h
}

#[cfg(test)]
mod tests;
