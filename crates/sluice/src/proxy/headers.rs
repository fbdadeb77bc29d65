//! Header handling on the proxied path: hop-by-hop headers (RFC 9110 §7.6.1) are not
//! forwarded, `X-Forwarded-For`/`-Proto`/`-Host` are set, and every request carries a
//! request id (`X-Request-Id`, generated when absent or malformed).

use std::net::IpAddr;

use http::HeaderMap;
use pingora_error::Result;
use pingora_http::{RequestHeader, ResponseHeader};

/// The request id header.
pub const REQUEST_ID: &str = "x-request-id";

/// Hop-by-hop headers always removed. `transfer-encoding` and `content-length` are left
/// to Pingora, which owns body framing; `upgrade` survives for upgrade requests.
const HOP_BY_HOP: &[&str] = &[
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
];

/// Request headers that ask the origin to serve another URL than the request line's.
const REWRITE_HEADERS: &[&str] = &["x-original-url", "x-rewrite-url"];

/// Forwarding headers besides `X-Forwarded-*`, believed only from trusted proxies.
const FORWARDING: &[&str] = &["forwarded", "x-real-ip", "x-client-ip", "true-client-ip"];

/// Names listed in `Connection` (lower-cased), minus the framing headers Pingora owns.
fn connection_listed(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| {
            !s.is_empty()
                && !matches!(
                    s.as_str(),
                    "close" | "keep-alive" | "upgrade" | "transfer-encoding" | "content-length"
                )
        })
        .collect()
}

/// The names present in `headers` that `drops` (given a lower-case name) or `Connection`
/// lists: one pass over the names present (most messages carry none of them) instead of
/// a lookup per name that might be.
fn not_forwarded(headers: &HeaderMap, drops: impl Fn(&str) -> bool) -> Vec<http::HeaderName> {
    let listed = connection_listed(headers);
    headers
        .keys()
        .filter(|name| {
            let n = name.as_str();
            drops(n) || listed.iter().any(|l| l == n)
        })
        .cloned()
        .collect()
}

/// A usable incoming request id: 1-128 visible ASCII characters.
pub fn valid_request_id(v: &[u8]) -> bool {
    !v.is_empty() && v.len() <= 128 && v.iter().all(|b| b.is_ascii_graphic())
}

/// The request id of `req`, or a new UUID when absent or malformed.
pub fn request_id(req: &RequestHeader) -> String {
    match req.headers.get(REQUEST_ID).map(|v| v.as_bytes()) {
        Some(v) if valid_request_id(v) => String::from_utf8_lossy(v).into_owned(),
        _ => {
            let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
            uuid::Uuid::new_v4()
                .hyphenated()
                .encode_lower(&mut buf)
                .to_owned()
        }
    }
}

/// `ip` as text; IPv4 (nearly every peer) without the formatting machinery, which
/// costs more than the rest of the header rewrite.
fn ip_text(ip: IpAddr) -> String {
    let IpAddr::V4(v4) = ip else {
        return ip.to_string();
    };
    let mut out = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        if octet >= 100 {
            out.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            out.push(char::from(b'0' + octet / 10 % 10));
        }
        out.push(char::from(b'0' + octet % 10));
    }
    out
}

/// Prepare the request header that goes upstream; `peer` is the TCP peer and whether it
/// is a trusted proxy (whose forwarding headers are kept and extended; anyone else's
/// are replaced); `tls` when the client came over TLS.
pub fn upstream_request(
    req: &mut RequestHeader,
    peer: Option<(IpAddr, bool)>,
    request_id: &str,
    is_upgrade: bool,
    tls: bool,
) -> Result<()> {
    let trusted = peer.is_some_and(|(_, t)| t);
    let going = not_forwarded(&req.headers, |n| {
        HOP_BY_HOP.contains(&n)
            || (!is_upgrade && (n == "upgrade" || n == "connection"))
            // Headers that make some origins serve another path than the one routed
            // (IIS URL Rewrite, older PHP frameworks): never forwarded.
            || REWRITE_HEADERS.contains(&n)
            // Claims about the client or the original request, from anyone but a trusted
            // proxy: dropped (the three `X-Forwarded-*` below are set by us).
            || (!trusted && (n.starts_with("x-forwarded-") || FORWARDING.contains(&n)))
    });
    for name in going {
        req.remove_header(&name);
    }
    if let Some((ip, _)) = peer {
        let prev: Vec<&str> = req
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter(|v| !v.trim().is_empty())
            .collect();
        let xff = if prev.is_empty() {
            ip_text(ip)
        } else {
            format!("{}, {ip}", prev.join(", "))
        };
        req.insert_header("x-forwarded-for", xff)?;
    }
    // What the client used; from anyone but a trusted proxy, a supplied value is a lie.
    if !(trusted && req.headers.contains_key("x-forwarded-proto")) {
        req.insert_header("x-forwarded-proto", if tls { "https" } else { "http" })?;
    }
    if !(trusted && req.headers.contains_key("x-forwarded-host")) {
        match req.headers.get(http::header::HOST).cloned() {
            Some(host) => req.insert_header("x-forwarded-host", host)?,
            None => {
                req.remove_header("x-forwarded-host");
            }
        }
    }
    req.insert_header(REQUEST_ID, request_id)?;
    Ok(())
}

/// Clean the response header that goes to the client.
pub fn downstream_response(resp: &mut ResponseHeader, request_id: &str) -> Result<()> {
    let going = not_forwarded(&resp.headers, |n| {
        matches!(n, "keep-alive" | "proxy-connection" | "trailer")
    });
    for name in going {
        resp.remove_header(&name);
    }
    if !request_id.is_empty() {
        resp.insert_header(REQUEST_ID, request_id)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_text_formats_as_display_does() {
        for ip in [
            "0.0.0.0",
            "10.0.0.1",
            "127.0.0.1",
            "192.168.100.255",
            "9.99.100.199",
            "::1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(ip_text(ip), ip.to_string());
        }
        for n in 0..=255u8 {
            let ip = IpAddr::from([n, 255 - n, n / 3, n.wrapping_mul(7)]);
            assert_eq!(ip_text(ip), ip.to_string());
        }
    }

    #[test]
    fn strips_hop_by_hop_and_sets_forwarding() {
        let mut r = RequestHeader::build("GET", b"/x", None).unwrap();
        r.append_header("Host", "api.example").unwrap();
        r.append_header("Connection", "keep-alive, X-Secret-Hop")
            .unwrap();
        r.append_header("X-Secret-Hop", "1").unwrap();
        r.append_header("Keep-Alive", "timeout=5").unwrap();
        r.append_header("Proxy-Authorization", "Basic x").unwrap();
        r.append_header("TE", "trailers").unwrap();
        r.append_header("X-Forwarded-For", "203.0.113.1").unwrap();
        r.append_header("X-Forwarded-Proto", "https").unwrap();
        r.append_header("X-Forwarded-Host", "evil.example").unwrap();
        r.append_header("X-Forwarded-Prefix", "/admin").unwrap();
        r.append_header("Forwarded", "for=1.2.3.4;host=evil")
            .unwrap();
        r.append_header("X-Real-IP", "1.2.3.4").unwrap();
        r.append_header("X-Original-URL", "/admin/secret").unwrap();
        let mut trusted = r.clone();
        upstream_request(
            &mut r,
            Some(("10.0.0.9".parse().unwrap(), false)),
            "rid",
            false,
            false,
        )
        .unwrap();
        let h = &r.headers;
        for gone in [
            "connection",
            "x-secret-hop",
            "keep-alive",
            "proxy-authorization",
            "te",
        ] {
            assert!(!h.contains_key(gone), "{gone} was forwarded");
        }
        // An untrusted peer's forwarding headers are replaced or dropped.
        for gone in [
            "x-forwarded-prefix",
            "forwarded",
            "x-real-ip",
            "x-original-url",
        ] {
            assert!(!h.contains_key(gone), "{gone} was forwarded");
        }
        assert_eq!(h["x-forwarded-for"], "10.0.0.9");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "api.example");
        assert_eq!(h["x-request-id"], "rid");
        // A trusted proxy's are kept and extended.
        upstream_request(
            &mut trusted,
            Some(("10.0.0.9".parse().unwrap(), true)),
            "rid",
            false,
            false,
        )
        .unwrap();
        let h = &trusted.headers;
        assert_eq!(h["x-forwarded-for"], "203.0.113.1, 10.0.0.9");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "evil.example");
        assert_eq!(h["x-forwarded-prefix"], "/admin");
        assert!(!h.contains_key("x-original-url"), "never forwarded");
    }

    #[test]
    fn upgrade_requests_keep_upgrade_headers() {
        let mut r = RequestHeader::build("GET", b"/ws", None).unwrap();
        r.append_header("Connection", "Upgrade").unwrap();
        r.append_header("Upgrade", "websocket").unwrap();
        upstream_request(&mut r, None, "rid", true, false).unwrap();
        assert_eq!(r.headers["upgrade"], "websocket");
        assert!(r.headers.contains_key("connection"));
    }

    #[test]
    fn request_ids() {
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        assert_eq!(request_id(&r).len(), 36);
        r.insert_header(REQUEST_ID, "abc-123").unwrap();
        assert_eq!(request_id(&r), "abc-123");
        r.insert_header(REQUEST_ID, "has space").unwrap();
        assert_ne!(request_id(&r), "has space");
    }

    #[test]
    fn response_cleanup() {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.append_header("Keep-Alive", "timeout=5").unwrap();
        resp.append_header("Connection", "x-internal").unwrap();
        resp.append_header("X-Internal", "1").unwrap();
        downstream_response(&mut resp, "rid").unwrap();
        assert!(!resp.headers.contains_key("keep-alive"));
        assert!(!resp.headers.contains_key("x-internal"));
        assert_eq!(resp.headers["x-request-id"], "rid");
    }
}
