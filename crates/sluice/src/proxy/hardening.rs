//! Checks on every request before routing: unambiguous message framing (no request
//! smuggling through `Content-Length` + `Transfer-Encoding` or duplicate lengths) and
//! the header limits of `server.limits`, plus each route's body cap.

use pingora_http::RequestHeader;
use sluice_core::config::limits::RequestLimits;

/// Why a request is refused before routing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// Status to answer.
    pub status: u16,
    /// `sluice_http_rejections_total` reason.
    pub reason: &'static str,
    /// Problem `detail` (fixed text: never request data).
    pub detail: &'static str,
}

const fn refuse(status: u16, reason: &'static str, detail: &'static str) -> Refusal {
    Refusal {
        status,
        reason,
        detail,
    }
}

/// Check the request header. `raw` is the header as received on HTTP/1 (Pingora drops
/// `Content-Length` when `Transfer-Encoding` is present, so only the raw bytes show it).
pub fn check_header(
    raw: Option<&[u8]>,
    req: &RequestHeader,
    limits: &RequestLimits,
) -> Result<(), Refusal> {
    let size = raw.map(<[u8]>::len).unwrap_or_else(|| {
        req.headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum::<usize>()
            + req.uri.path_and_query().map_or(0, |p| p.as_str().len())
    });
    if size as u64 > limits.max_header_bytes.0 {
        return Err(refuse(
            431,
            "header_too_large",
            "the request header is too large",
        ));
    }
    if req.headers.len() > limits.max_headers {
        return Err(refuse(
            431,
            "too_many_headers",
            "the request has too many header fields",
        ));
    }
    let Some(raw) = raw else {
        return Ok(());
    };
    let (mut lengths, mut chunked) = (0, false);
    for line in raw.split(|&b| b == b'\n').skip(1) {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = &line[..colon];
        if name.eq_ignore_ascii_case(b"content-length") {
            lengths += 1;
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            chunked = true;
        }
    }
    if chunked && lengths > 0 {
        return Err(refuse(
            400,
            "ambiguous_framing",
            "the request has both Content-Length and Transfer-Encoding",
        ));
    }
    if lengths > 1 {
        return Err(refuse(
            400,
            "ambiguous_framing",
            "the request has more than one Content-Length",
        ));
    }
    Ok(())
}

/// Methods are case-sensitive tokens: `get` is not `GET`, so it would miss a route
/// limited to `GET` (and its authentication) while an origin that folds case serves it
/// as `GET`. Like nginx, only upper-case methods are accepted.
pub fn check_method(req: &RequestHeader) -> Result<(), Refusal> {
    if req.method.as_str().bytes().any(|b| b.is_ascii_lowercase()) {
        return Err(refuse(
            400,
            "invalid_method",
            "the request method must be upper case",
        ));
    }
    Ok(())
}

/// The refusal for a declared body over the route's cap.
pub fn check_declared_body(req: &RequestHeader, max: Option<u64>) -> Result<(), Refusal> {
    let (Some(max), Some(len)) = (max, declared_length(req)) else {
        return Ok(());
    };
    if len > max {
        return Err(refuse(
            413,
            "body_too_large",
            "the request body is larger than this route accepts",
        ));
    }
    Ok(())
}

fn declared_length(req: &RequestHeader) -> Option<u64> {
    req.headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> RequestHeader {
        let mut lines = raw.split("\r\n");
        let first: Vec<&str> = lines.next().unwrap().split(' ').collect();
        let mut r = RequestHeader::build(first[0], first[1].as_bytes(), None).unwrap();
        for l in lines.filter(|l| !l.is_empty()) {
            let (n, v) = l.split_once(':').unwrap();
            r.append_header(n.to_string(), v.trim()).unwrap();
        }
        r
    }

    fn check(raw: &str) -> Result<(), Refusal> {
        check_header(Some(raw.as_bytes()), &parse(raw), &RequestLimits::default())
    }

    #[test]
    fn framing_must_be_unambiguous() {
        assert_eq!(
            check("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n"),
            Ok(())
        );
        assert_eq!(
            check("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Ok(())
        );
        let both =
            check("POST / HTTP/1.1\r\ncontent-length: 3\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(both.unwrap_err().status, 400);
        let dup = check("POST / HTTP/1.1\r\nContent-Length: 3\r\nCONTENT-LENGTH: 3\r\n\r\n");
        assert_eq!(dup.unwrap_err().reason, "ambiguous_framing");
    }

    #[test]
    fn header_limits_answer_431() {
        let limits = RequestLimits {
            max_headers: 3,
            max_header_bytes: sluice_core::config::units::ByteSize(1024),
            ..RequestLimits::default()
        };
        let many = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
        let r = check_header(Some(many.as_bytes()), &parse(many), &limits);
        assert_eq!(r.unwrap_err().reason, "too_many_headers");
        let big = format!("GET / HTTP/1.1\r\nA: {}\r\n\r\n", "x".repeat(1100));
        let r = check_header(Some(big.as_bytes()), &parse(&big), &limits);
        assert_eq!(r.unwrap_err().status, 431);
        // HTTP/2 (no raw header): the decoded size counts.
        assert_eq!(
            check_header(None, &parse(&big), &limits)
                .unwrap_err()
                .status,
            431
        );
    }

    #[test]
    fn methods_must_be_upper_case() {
        assert_eq!(check_method(&parse("GET / HTTP/1.1\r\n\r\n")), Ok(()));
        assert_eq!(check_method(&parse("PROPFIND / HTTP/1.1\r\n\r\n")), Ok(()));
        for m in ["get", "Get", "dELETE"] {
            let r = parse(&format!("{m} / HTTP/1.1\r\n\r\n"));
            assert_eq!(check_method(&r).unwrap_err().reason, "invalid_method");
        }
    }

    #[test]
    fn declared_bodies_over_the_cap() {
        let r = parse("POST / HTTP/1.1\r\nContent-Length: 2048\r\n\r\n");
        assert_eq!(check_declared_body(&r, Some(1024)).unwrap_err().status, 413);
        assert_eq!(check_declared_body(&r, Some(4096)), Ok(()));
        assert_eq!(check_declared_body(&r, None), Ok(()));
    }
}
