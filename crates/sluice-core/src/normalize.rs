//! Request path and host normalization, done once before routing: the normalized path is
//! what routes match **and** what the upstream receives, so what was authorized is what
//! is served (an origin that decodes `%61dmin` or resolves `..` cannot be reached through
//! a path the router read differently).
//!
//! Rules (RFC 3986 §6.2.2, Envoy's `normalize_path` + `merge_slashes`):
//! - percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded; the other
//!   escapes are kept with uppercase hex digits;
//! - `.` and `..` segments are removed (also when written `%2E`), `..` never climbs
//!   above `/`; repeated slashes are merged;
//! - an encoded `/` or `\` (`%2F`, `%5C`) is refused by default
//!   ([`EscapedSlashes::Reject`]), kept as is, or decoded to `/`;
//! - refused always: a raw `\`, a malformed escape, an encoded NUL, double encoding
//!   (`%25` followed by two hex digits), bytes that do not decode to UTF-8 (overlong
//!   forms included), and raw non-ASCII or control bytes;
//! - a `;` in the path (matrix parameters, which some origins strip before resolving)
//!   is refused by default ([`Semicolons::Reject`]) or kept.
//!
//! Hosts are lowercased and lose their trailing dots (`Admin.Example.` → `admin.example`).

use std::borrow::Cow;

use serde::Deserialize;

/// What to do with `%2F` and `%5C` in a path.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EscapedSlashes {
    /// Answer `400` (default): origins disagree on whether `%2F` separates segments.
    #[default]
    Reject,
    /// Forward the escape unchanged; it is not a segment separator for routing.
    Keep,
    /// Decode to `/` before routing and forwarding.
    Decode,
}

/// What to do with `;` in a path.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Semicolons {
    /// Answer `400` (default): some origins (Java servlet containers) drop `;params`
    /// from a segment before resolving it, so `/admin;x/` would reach `/admin/`.
    #[default]
    Reject,
    /// Keep `;` as an ordinary path character.
    Keep,
}

/// `server.paths:` — how request paths are normalized before routing.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PathRules {
    /// `%2F` / `%5C` in a path: `reject` (`400`), `keep` (forwarded as is, not a
    /// separator) or `decode` (to `/`). Default `reject`.
    #[serde(default)]
    pub escaped_slashes: EscapedSlashes,
    /// `;` in a path: `reject` (`400`) or `keep`. Default `reject`.
    #[serde(default)]
    pub semicolons: Semicolons,
}

/// Why a path is refused (`sluice_http_rejections_total` reason and problem detail).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// `%2F` or `%5C` with `escaped_slashes: reject`.
    EscapedSlash,
    /// `;` with `semicolons: reject`.
    Semicolon,
    /// Anything else this module refuses.
    Invalid,
}

impl PathError {
    /// The rejection reason.
    pub fn reason(self) -> &'static str {
        match self {
            PathError::EscapedSlash => "escaped_slash",
            PathError::Semicolon => "path_parameters",
            PathError::Invalid => "invalid_path",
        }
    }

    /// Fixed problem text.
    pub fn detail(self) -> &'static str {
        match self {
            PathError::EscapedSlash => "the path has an encoded `/` or `\\`",
            PathError::Semicolon => "the path has `;` parameters",
            PathError::Invalid => {
                "the path has a malformed, double or invalid escape, a backslash or a control byte"
            }
        }
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Append `%XY` with uppercase hex digits.
fn push_escape(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 15)]));
}

/// Normalize `path` (without the query). Returns the path unchanged (borrowed) when it is
/// already normal, which is the common case.
pub fn normalize_path<'a>(path: &'a str, rules: &PathRules) -> Result<Cow<'a, str>, PathError> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::Invalid);
    }
    if already_normal(bytes) {
        return Ok(Cow::Borrowed(path));
    }
    // Pass 1: decode unreserved escapes, uppercase the rest, check every byte.
    let mut decoded = String::with_capacity(path.len());
    let mut raw_utf8 = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let (Some(h), Some(l)) = (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(PathError::Invalid);
                };
                let v = h << 4 | l;
                i += 3;
                match v {
                    0 => return Err(PathError::Invalid),
                    b'%' if bytes.get(i).copied().and_then(hex).is_some()
                        && bytes.get(i + 1).copied().and_then(hex).is_some() =>
                    {
                        return Err(PathError::Invalid)
                    }
                    b'/' | b'\\' => match rules.escaped_slashes {
                        EscapedSlashes::Reject => return Err(PathError::EscapedSlash),
                        EscapedSlashes::Decode => {
                            decoded.push('/');
                            raw_utf8.push(b'/');
                        }
                        EscapedSlashes::Keep => {
                            push_escape(&mut decoded, v);
                            raw_utf8.push(b'_');
                        }
                    },
                    _ if unreserved(v) => {
                        decoded.push(char::from(v));
                        raw_utf8.push(v);
                    }
                    _ if v < 0x20 || v == 0x7f => return Err(PathError::Invalid),
                    _ => {
                        push_escape(&mut decoded, v);
                        raw_utf8.push(v);
                    }
                }
                continue;
            }
            b'\\' => return Err(PathError::Invalid),
            b';' if rules.semicolons == Semicolons::Reject => return Err(PathError::Semicolon),
            0x21..=0x7e => {
                decoded.push(char::from(b));
                raw_utf8.push(b);
            }
            _ => return Err(PathError::Invalid),
        }
        i += 1;
    }
    if std::str::from_utf8(&raw_utf8).is_err() {
        return Err(PathError::Invalid);
    }
    // Double encoding spelled in pieces (`%25%32%46` decodes to `%252F` above).
    let d = decoded.as_bytes();
    if d.windows(5)
        .any(|w| w.starts_with(b"%25") && hex(w[3]).is_some() && hex(w[4]).is_some())
    {
        return Err(PathError::Invalid);
    }
    // Pass 2: remove dot segments and merge slashes.
    let trailing = decoded.ends_with('/')
        || decoded.ends_with("/.")
        || decoded.ends_with("/..")
        || decoded == "/";
    let mut segments: Vec<&str> = Vec::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len());
    for s in &segments {
        out.push('/');
        out.push_str(s);
    }
    if trailing || out.is_empty() {
        out.push('/');
    }
    if out == path {
        Ok(Cow::Borrowed(path))
    } else {
        Ok(Cow::Owned(out))
    }
}

/// The common case, decided in one pass without allocating: visible ASCII without
/// escapes, backslashes or `;`, no empty segment and no segment starting with a dot.
/// Such a path is its own normal form (the full passes below would return it as is).
fn already_normal(bytes: &[u8]) -> bool {
    let mut prev = 0u8;
    for &b in bytes {
        if !(0x21..=0x7e).contains(&b) || matches!(b, b'%' | b'\\' | b';') {
            return false;
        }
        if prev == b'/' && matches!(b, b'/' | b'.') {
            return false;
        }
        prev = b;
    }
    true
}

/// A `Host` (port already removed) as routes match it: lowercase, trailing dots
/// stripped.
pub fn normalize_host(host: &str) -> Cow<'_, str> {
    let h = host.trim_end_matches('.');
    if h.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(h.to_ascii_lowercase())
    } else {
        Cow::Borrowed(h)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn n(p: &str) -> Result<String, PathError> {
        normalize_path(p, &PathRules::default()).map(Cow::into_owned)
    }

    #[test]
    fn the_fast_path_agrees_with_the_full_passes() {
        let alphabet = [
            b'/', b'.', b'a', b'%', b'2', b'F', b';', b'\\', b'~', b' ', b'e',
        ];
        // Every path of up to 5 bytes over an alphabet of the bytes that matter.
        let mut stack: Vec<Vec<u8>> = vec![b"/".to_vec()];
        while let Some(p) = stack.pop() {
            if already_normal(&p) {
                let s = std::str::from_utf8(&p).unwrap();
                let quick = normalize_path(s, &PathRules::default());
                assert!(matches!(quick, Ok(Cow::Borrowed(_))), "{s}");
                // The full passes (forced by an escape) give the same path plus `A`.
                let forced = format!("{s}%41");
                let full = normalize_path(&forced, &PathRules::default()).unwrap();
                assert_eq!(full, format!("{s}A"), "{s}");
            }
            if p.len() < 6 {
                for &b in &alphabet {
                    let mut q = p.clone();
                    q.push(b);
                    stack.push(q);
                }
            }
        }
    }

    #[test]
    fn normal_paths_are_borrowed() {
        for p in [
            "/",
            "/a",
            "/a/b/",
            "/api/orders/42",
            "/a-b_c.d~e/%20x",
            "/%C3%A9",
        ] {
            assert!(matches!(
                normalize_path(p, &PathRules::default()),
                Ok(Cow::Borrowed(_))
            ));
        }
    }

    #[test]
    fn decodes_unreserved_and_uppercases_the_rest() {
        assert_eq!(n("/files/%61dmin/x").unwrap(), "/files/admin/x");
        assert_eq!(n("/a%7e%2d%5F").unwrap(), "/a~-_");
        assert_eq!(n("/a%3fb%3b").unwrap(), "/a%3Fb%3B");
        assert_eq!(n("/%c3%a9").unwrap(), "/%C3%A9");
    }

    #[test]
    fn removes_dot_segments_and_merges_slashes() {
        assert_eq!(n("/files//admin/x").unwrap(), "/files/admin/x");
        assert_eq!(n("//files///admin//").unwrap(), "/files/admin/");
        assert_eq!(n("/files/./admin").unwrap(), "/files/admin");
        assert_eq!(n("/files/x/../admin").unwrap(), "/files/admin");
        assert_eq!(n("/files/x/%2e%2E/admin").unwrap(), "/files/admin");
        assert_eq!(n("/files/x/.%2e/admin").unwrap(), "/files/admin");
        assert_eq!(n("/../../etc/passwd").unwrap(), "/etc/passwd");
        assert_eq!(n("/a/b/..").unwrap(), "/a/");
        assert_eq!(n("/a/.").unwrap(), "/a/");
        assert_eq!(n("/..").unwrap(), "/");
        assert_eq!(n("/a/...").unwrap(), "/a/...");
    }

    #[test]
    fn refuses_what_origins_may_read_differently() {
        use PathError::*;
        for (p, e) in [
            ("/files/admin%2fsecret", EscapedSlash),
            ("/files/admin%2Fsecret", EscapedSlash),
            ("/files/x/..%2fadmin", EscapedSlash),
            ("/files/admin%5csecret", EscapedSlash),
            ("/files\\admin", Invalid),
            ("/files/admin%252fsecret", Invalid),
            ("/files/%2561dmin", Invalid),
            ("/files/admin%25%32%46secret", Invalid),
            ("/files/%25%36%31dmin", Invalid),
            ("/files/admin%00", Invalid),
            ("/files/%0a", Invalid),
            ("/files/%c0%ae%c0%ae/admin", Invalid),
            ("/files/%c0%afadmin", Invalid),
            ("/files/%e0%80%ae", Invalid),
            ("/files/%ff", Invalid),
            ("/files/%zz", Invalid),
            ("/files/%2", Invalid),
            ("/files/admin;x=1/secret", Semicolon),
            ("files/admin", Invalid),
            ("/a b", Invalid),
        ] {
            assert_eq!(n(p), Err(e), "{p}");
        }
        // `%25` on its own is a literal percent sign.
        assert_eq!(n("/100%25").unwrap(), "/100%25");
    }

    #[test]
    fn escaped_slash_and_semicolon_actions() {
        let keep = PathRules {
            escaped_slashes: EscapedSlashes::Keep,
            semicolons: Semicolons::Keep,
        };
        let k = |p| normalize_path(p, &keep).map(Cow::into_owned);
        assert_eq!(k("/a%2fb/..").unwrap(), "/");
        assert_eq!(k("/a%2fb").unwrap(), "/a%2Fb");
        assert_eq!(k("/a;x=1/b").unwrap(), "/a;x=1/b");
        let decode = PathRules {
            escaped_slashes: EscapedSlashes::Decode,
            ..PathRules::default()
        };
        let d = |p| normalize_path(p, &decode).map(Cow::into_owned);
        assert_eq!(d("/files/admin%2fsecret").unwrap(), "/files/admin/secret");
        assert_eq!(d("/files/x/..%2fadmin").unwrap(), "/files/admin");
        assert_eq!(d("/a%5Cb").unwrap(), "/a/b");
    }

    #[test]
    fn hosts() {
        assert_eq!(normalize_host("Admin.Example."), "admin.example");
        assert_eq!(normalize_host("admin.example"), "admin.example");
        assert_eq!(normalize_host("admin.example.."), "admin.example");
        assert!(matches!(normalize_host("a.b"), Cow::Borrowed(_)));
    }
}
