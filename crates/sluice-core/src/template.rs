//! Templates over request data, used for Kafka keys, topics and hash keys.
//!
//! A template is text with placeholders in braces: `{route_id}`, `{client_ip}`,
//! `{method}`, `{host}`, `{path}`, `{request_id}`, `{consumer}` (the authenticated API
//! client's name), `{claim.NAME}` (a claim of its verified JWT), `{header.NAME}`, `{query.NAME}` and
//! `{path.N}` (the N-th path segment, counting from 0: in `/api/orders/42`, `{path.2}` is
//! `42`). `{{` and `}}` are literal braces. A missing header, argument or segment renders
//! as the empty string. Templates are parsed once, at config load.

use crate::config::error::InvalidValue;
use std::fmt::Write as _;
use std::net::IpAddr;

use pingora_http::RequestHeader;

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    RouteId,
    ClientIp,
    Method,
    Host,
    Path,
    RequestId,
    Consumer,
    Claim(String),
    Header(http::HeaderName),
    Query(String),
    Segment(usize),
}

/// The request data a template renders from.
pub struct RequestData<'a> {
    /// The matched route's id.
    pub route_id: &'a str,
    /// The request id.
    pub request_id: &'a str,
    /// The client's address.
    pub client_ip: Option<IpAddr>,
    /// The authenticated consumer's name.
    pub consumer: Option<&'a str>,
    /// The verified token's claims, when a JWT authenticated the request.
    pub claims: Option<&'a serde_json::Map<String, serde_json::Value>>,
    /// The request header.
    pub req: &'a RequestHeader,
}

impl Template {
    /// Parse a template; the error says what is wrong.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut chars = s.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|p| p.1) == Some('{') => {
                    chars.next();
                    lit.push('{');
                }
                '}' if chars.peek().map(|p| p.1) == Some('}') => {
                    chars.next();
                    lit.push('}');
                }
                '{' => {
                    let rest = &s[i + 1..];
                    let end = rest
                        .find('}')
                        .ok_or_else(|| format!("unclosed `{{` at offset {i}"))?;
                    let name = &rest[..end];
                    for _ in 0..name.chars().count() + 1 {
                        chars.next();
                    }
                    if !lit.is_empty() {
                        parts.push(Part::Lit(std::mem::take(&mut lit)));
                    }
                    parts.push(Self::placeholder(name)?);
                }
                '}' => return Err(format!("unmatched `}}` at offset {i} (write `}}}}`)").into()),
                c => lit.push(c),
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        Ok(Self { parts })
    }

    fn placeholder(name: &str) -> Result<Part, InvalidValue> {
        Ok(match name {
            "route_id" => Part::RouteId,
            "client_ip" => Part::ClientIp,
            "method" => Part::Method,
            "host" => Part::Host,
            "path" => Part::Path,
            "request_id" => Part::RequestId,
            "consumer" => Part::Consumer,
            _ => {
                if let Some(h) = name.strip_prefix("header.") {
                    Part::Header(
                        http::HeaderName::from_bytes(h.as_bytes())
                            .map_err(|_| format!("invalid header name {h:?}"))?,
                    )
                } else if let Some(c) = name.strip_prefix("claim.") {
                    if c.is_empty() {
                        return Err("`{claim.}` needs a claim name".into());
                    }
                    Part::Claim(c.to_string())
                } else if let Some(q) = name.strip_prefix("query.") {
                    if q.is_empty() {
                        return Err("`{query.}` needs an argument name".into());
                    }
                    Part::Query(q.to_string())
                } else if let Some(n) = name.strip_prefix("path.") {
                    Part::Segment(
                        n.parse()
                            .map_err(|_| format!("`{{path.N}}` needs a number, got {n:?}"))?,
                    )
                } else {
                    return Err(format!(
                        "unknown placeholder `{{{name}}}` (known: route_id, client_ip, method, host, path, request_id, consumer, claim.NAME, header.NAME, query.NAME, path.N)"
                    ).into());
                }
            }
        })
    }

    /// The text, when the template has no placeholders.
    pub fn as_literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Lit(s)] => Some(s),
            _ => None,
        }
    }

    /// True when the rendering depends on what the client sends (path, headers, query,
    /// host, method, address, request id, token claims) rather than only on the
    /// configuration (literals, the route id, consumer names).
    pub fn uses_request_data(&self) -> bool {
        self.parts
            .iter()
            .any(|p| !matches!(p, Part::Lit(_) | Part::RouteId | Part::Consumer))
    }

    /// Render for one request.
    pub fn render(&self, d: &RequestData<'_>) -> String {
        if let Some(s) = self.as_literal() {
            return s.to_string();
        }
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::RouteId => out.push_str(d.route_id),
                Part::RequestId => out.push_str(d.request_id),
                Part::Consumer => out.push_str(d.consumer.unwrap_or_default()),
                Part::Claim(name) => match d.claims.and_then(|c| c.get(name)) {
                    Some(serde_json::Value::String(s)) => out.push_str(s),
                    Some(serde_json::Value::Null) | None => {}
                    Some(v) => out.push_str(&v.to_string()),
                },
                Part::ClientIp => {
                    if let Some(ip) = d.client_ip {
                        let _ = write!(out, "{ip}");
                    }
                }
                Part::Method => out.push_str(d.req.method.as_str()),
                Part::Host => out.push_str(request_host(d.req)),
                Part::Path => out.push_str(d.req.uri.path()),
                Part::Header(h) => {
                    if let Some(v) = d.req.headers.get(h) {
                        out.push_str(&String::from_utf8_lossy(v.as_bytes()));
                    }
                }
                Part::Query(name) => {
                    if let Some(v) = d.req.uri.query().and_then(|q| query_arg(q, name)) {
                        out.push_str(&v);
                    }
                }
                Part::Segment(n) => {
                    if let Some(seg) = d
                        .req
                        .uri
                        .path()
                        .split('/')
                        .filter(|s| !s.is_empty())
                        .nth(*n)
                    {
                        out.push_str(&percent_decode(seg));
                    }
                }
            }
        }
        out
    }
}

/// The request's host: the URI authority (HTTP/2, absolute-form) or the `Host` header.
pub fn request_host(req: &RequestHeader) -> &str {
    req.uri
        .host()
        .or_else(|| {
            req.headers
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
        })
        .unwrap_or("")
}

/// The decoded value of the first query argument called `name`.
pub fn query_arg(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == name).then(|| percent_decode(v))
    })
}

/// Remove every `name=...` argument from the request's query string.
pub fn strip_query_arg(req: &mut RequestHeader, name: &str) {
    let Some(query) = req.uri.query() else {
        return;
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| percent_decode(pair.split_once('=').map_or(*pair, |p| p.0)) != name)
        .collect();
    if kept.len() == query.split('&').count() {
        return;
    }
    let path = req.uri.path();
    let uri = if kept.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", kept.join("&"))
    };
    if let Ok(uri) = uri.parse::<http::Uri>() {
        req.set_uri(uri);
    }
}

/// Decode `%XX` escapes and `+` (as in query strings); invalid escapes stay as written.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(uri: &str) -> RequestHeader {
        let mut r = RequestHeader::build("POST", uri.as_bytes(), None).unwrap();
        r.insert_header("Host", "api.example:8080").unwrap();
        r.insert_header("X-Tenant", "acme").unwrap();
        r
    }

    fn render(t: &str, uri: &str) -> String {
        let r = req(uri);
        let claims = serde_json::json!({"tenant": "acme", "tier": 2})
            .as_object()
            .cloned()
            .unwrap();
        let d = RequestData {
            route_id: "orders",
            request_id: "rid-1",
            client_ip: Some("10.1.2.3".parse().unwrap()),
            consumer: Some("billing"),
            claims: Some(&claims),
            req: &r,
        };
        Template::parse(t).unwrap().render(&d)
    }

    #[test]
    fn renders_every_placeholder() {
        let uri = "/api/orders/42%20x?user=bob%40x&flag";
        assert_eq!(render("{route_id}", uri), "orders");
        assert_eq!(render("{header.x-tenant}-{path.2}", uri), "acme-42 x");
        assert_eq!(
            render("{query.user}|{query.flag}|{query.none}", uri),
            "bob@x||"
        );
        assert_eq!(render("{consumer}:{path.1}", uri), "billing:orders");
        assert_eq!(
            render("{claim.tenant}/{claim.tier}/{claim.none}", uri),
            "acme/2/"
        );
        assert_eq!(
            render("{client_ip}/{method}/{request_id}", uri),
            "10.1.2.3/POST/rid-1"
        );
        assert_eq!(render("{host}", uri), "api.example:8080");
        assert_eq!(render("{path}", uri), "/api/orders/42%20x");
        assert_eq!(render("lit-{{x}}", uri), "lit-{x}");
        assert_eq!(render("{header.missing}{path.9}", uri), "");
    }

    #[test]
    fn rejects_bad_templates() {
        assert!(Template::parse("{nope}")
            .unwrap_err()
            .0
            .contains("unknown placeholder"));
        assert!(Template::parse("{path.x}").is_err());
        assert!(Template::parse("{route_id").is_err());
        assert!(Template::parse("a}b").is_err());
        assert!(Template::parse("{header.bad header}").is_err());
        assert_eq!(
            Template::parse("plain").unwrap().as_literal(),
            Some("plain")
        );
        assert_eq!(Template::parse("{route_id}").unwrap().as_literal(), None);
    }

    #[test]
    fn percent_decoding_is_lenient() {
        assert_eq!(percent_decode("a%2Fb+c"), "a/b c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
