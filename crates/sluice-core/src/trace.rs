//! W3C Trace Context: which `traceparent` values are carried from a request into Kafka
//! record headers (with `tracestate`).

use pingora_http::RequestHeader;

/// A well-formed `traceparent`: `00-<32 hex>-<16 hex>-<2 hex>`, lower case, ids not all
/// zero, version not `ff`.
pub fn valid_traceparent(v: &[u8]) -> bool {
    let parts: Vec<&[u8]> = v.split(|b| *b == b'-').collect();
    let hex = |p: &[u8], n: usize| {
        p.len() == n
            && p.iter()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
    };
    let nonzero = |p: &[u8]| p.iter().any(|b| *b != b'0');
    parts.len() == 4
        && hex(parts[0], 2)
        && parts[0] != b"ff"
        && hex(parts[1], 32)
        && nonzero(parts[1])
        && hex(parts[2], 16)
        && nonzero(parts[2])
        && hex(parts[3], 2)
}

/// The request's valid `traceparent`, if any.
pub fn traceparent(req: &RequestHeader) -> Option<&[u8]> {
    req.headers
        .get("traceparent")
        .map(|v| v.as_bytes())
        .filter(|v| valid_traceparent(v))
}

/// `traceparent` (and `tracestate`) as record headers, when the request carries a valid
/// `traceparent`.
pub fn trace_headers(req: &RequestHeader) -> Vec<(String, Vec<u8>)> {
    let Some(tp) = traceparent(req) else {
        return Vec::new();
    };
    let mut h = vec![("traceparent".to_string(), tp.to_vec())];
    if let Some(ts) = req.headers.get("tracestate") {
        h.push(("tracestate".to_string(), ts.as_bytes().to_vec()));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_traceparents_are_carried() {
        assert!(valid_traceparent(
            b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        ));
        assert!(!valid_traceparent(
            b"00-00000000000000000000000000000000-b7ad6b7169203331-01"
        ));
        assert!(!valid_traceparent(
            b"00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01"
        ));
        assert!(!valid_traceparent(
            b"ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        ));
        assert!(!valid_traceparent(b"garbage\r\nx: y"));
        let mut r = RequestHeader::build("GET", b"/", None).unwrap();
        assert!(trace_headers(&r).is_empty());
        r.append_header(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        )
        .unwrap();
        r.append_header("tracestate", "k=v").unwrap();
        let h = trace_headers(&r);
        assert_eq!(h.len(), 2);
        assert_eq!(h[1], ("tracestate".to_string(), b"k=v".to_vec()));
    }
}
