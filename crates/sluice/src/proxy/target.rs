//! The request target before routing: the path is normalized once
//! ([`sluice_core::normalize`]) and written back into the request header, so routes,
//! plugins, logs and the upstream all see the same path; a path the rules refuse is a
//! counted `400`.

use std::str::FromStr;

use http::uri::{PathAndQuery, Uri};
use pingora_http::RequestHeader;
use sluice_core::normalize::{normalize_path, PathError, PathRules};

use super::hardening::Refusal;

fn refusal(e: PathError) -> Refusal {
    Refusal {
        status: 400,
        reason: e.reason(),
        detail: e.detail(),
    }
}

/// Normalize `req`'s path in place (origin-form, query kept as received).
pub fn normalize(req: &mut RequestHeader, rules: &PathRules) -> Result<(), Refusal> {
    if !req.raw_path_is_utf8() {
        return Err(refusal(PathError::Invalid));
    }
    let path = req.uri.path();
    let normal = normalize_path(path, rules).map_err(refusal)?;
    let query = req.uri.query();
    let target_len = path.len() + query.map_or(0, |q| q.len() + 1);
    // The wire target is the URI's unless it was absolute-form (kept verbatim).
    let verbatim = req.raw_path().len() != target_len;
    if normal == path && !verbatim {
        return Ok(());
    }
    let target = match query {
        Some(q) => format!("{normal}?{q}"),
        None => normal.into_owned(),
    };
    let pq = PathAndQuery::from_str(&target).map_err(|_| refusal(PathError::Invalid))?;
    let mut parts = req.uri.clone().into_parts();
    parts.path_and_query = Some(pq);
    // Origin-form upstream: the authority of an absolute-form target is dropped (the
    // `Host` header carries it).
    parts.scheme = None;
    parts.authority = None;
    let uri = Uri::from_parts(parts).map_err(|_| refusal(PathError::Invalid))?;
    req.set_uri(uri);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn header(target: &[u8]) -> RequestHeader {
        RequestHeader::build("GET", target, None).unwrap()
    }

    #[test]
    fn rewrites_the_target_the_upstream_receives() {
        let mut r = header(b"/files/%61dmin//x?a=%2F");
        normalize(&mut r, &PathRules::default()).unwrap();
        assert_eq!(r.uri.path(), "/files/admin/x");
        assert_eq!(r.raw_path(), b"/files/admin/x?a=%2F");
        let mut r = header(b"http://h.example/a/../b?q");
        normalize(&mut r, &PathRules::default()).unwrap();
        assert_eq!(r.raw_path(), b"/b?q");
        let mut r = header(b"/ok/path");
        normalize(&mut r, &PathRules::default()).unwrap();
        assert_eq!(r.raw_path(), b"/ok/path");
    }

    #[test]
    fn refuses_with_a_reason() {
        let mut r = header(b"/a%2fb");
        assert_eq!(
            normalize(&mut r, &PathRules::default()).unwrap_err().reason,
            "escaped_slash"
        );
        let mut r = header(b"/a\xc0\xaeb");
        assert_eq!(
            normalize(&mut r, &PathRules::default()).unwrap_err().reason,
            "invalid_path"
        );
    }
}
