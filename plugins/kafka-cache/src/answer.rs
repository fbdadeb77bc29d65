//! Answers from the view: an item (`200` with its `ETag`, `304` when `If-None-Match`
//! matches, `404`, `507`) and a list page (`?prefix=`, `?after=`, `?limit=`).

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use pingora_http::RequestHeader;
use serde_json::{json, Map, Value};
use sluice_core::template::query_arg;
use sluice_core::HttpResponse;

use crate::view::{Item, Lookup, View};

/// A response and the read's metric result; or a refusal (status, reason, detail) to be
/// counted as a rejection.
pub struct Answer {
    /// The response (when not refused).
    pub response: HttpResponse,
    /// `sluice_cache_reads_total`'s result label.
    pub result: &'static str,
    /// A refusal.
    pub refusal: Option<(u16, &'static str, &'static str)>,
}

fn refused(
    result: &'static str,
    status: u16,
    reason: &'static str,
    detail: &'static str,
) -> Answer {
    Answer {
        response: HttpResponse::new(status, "text/plain", ""),
        result,
        refusal: Some((status, reason, detail)),
    }
}

/// True when `If-None-Match` names `etag` (or is `*`); weak tags compare alike.
fn not_modified(req: &RequestHeader, etag: &str) -> bool {
    req.headers.get_all("if-none-match").iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',').any(|t| {
                let t = t.trim();
                t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag
            })
        })
    })
}

/// The item at `key`.
pub fn item(view: &View, key: &[u8], req: &RequestHeader) -> Answer {
    match view.get(key) {
        Lookup::Found(i) => {
            let etag = i.etag();
            if not_modified(req, &etag) {
                return Answer {
                    response: HttpResponse::new(304, "text/plain", "").with_header("etag", etag),
                    result: "not_modified",
                    refusal: None,
                };
            }
            let ct = i
                .content_type
                .as_deref()
                .unwrap_or("application/octet-stream");
            Answer {
                response: HttpResponse::new(200, ct, i.value.clone().unwrap_or_default())
                    .with_header("etag", etag),
                result: "hit",
                refusal: None,
            }
        }
        Lookup::Missing => refused("miss", 404, "not_found", "no such key"),
        Lookup::OverCapacity => refused(
            "over_capacity",
            507,
            "over_capacity",
            "the view is over its max_bytes and cannot answer for this key",
        ),
    }
}

fn text_or_base64(out: &mut Map<String, Value>, name: &str, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(s) => out.insert(name.into(), json!(s)),
        Err(_) => out.insert(format!("{name}_base64"), json!(STANDARD.encode(bytes))),
    };
}

/// A page to answer: copies of its items (values are shared, not copied), taken under
/// the view's lock and turned into JSON after it is released.
pub struct Page {
    items: Vec<(Vec<u8>, Item)>,
    next: Option<String>,
}

/// The page of items whose keys start with `?prefix=`, after the opaque `?after=` cursor
/// (the previous page's `next`: the last key in base64url), or a refusal.
pub fn page(
    view: &View,
    req: &RequestHeader,
    page: usize,
    max_page: usize,
) -> Result<Page, Answer> {
    let q = req.uri.query().unwrap_or("");
    let prefix = query_arg(q, "prefix").unwrap_or_default();
    let after = match query_arg(q, "after").map(|a| URL_SAFE_NO_PAD.decode(a.trim())) {
        None => None,
        Some(Ok(a)) => Some(a),
        Some(Err(_)) => {
            return Err(refused(
                "invalid",
                400,
                "invalid_cursor",
                "`after` must be a `next` of an earlier page",
            ))
        }
    };
    let limit = match query_arg(q, "limit").map(|l| l.parse::<usize>()) {
        None => page,
        Some(Ok(l)) if (1..=max_page).contains(&l) => l,
        Some(_) => {
            return Err(refused(
                "invalid",
                400,
                "invalid_limit",
                "`limit` must be between 1 and max_page_size",
            ))
        }
    };
    let Some((items, more)) = view.list(prefix.as_bytes(), after.as_deref(), limit) else {
        return Err(refused(
            "over_capacity",
            507,
            "over_capacity",
            "the view is over its max_bytes and cannot list completely",
        ));
    };
    let next = more
        .then(|| items.last().map(|(k, _)| URL_SAFE_NO_PAD.encode(k)))
        .flatten();
    Ok(Page {
        items: items
            .into_iter()
            .map(|(k, i)| (k.to_vec(), i.clone()))
            .collect(),
        next,
    })
}

/// The JSON of a page.
pub fn list(page: Page) -> Answer {
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|(k, i)| {
            let mut o = Map::new();
            text_or_base64(&mut o, "key", k);
            o.insert("etag".into(), json!(i.etag()));
            text_or_base64(&mut o, "value", i.value.as_deref().unwrap_or_default());
            Value::Object(o)
        })
        .collect();
    Answer {
        response: HttpResponse::json(200, &json!({ "items": items, "next": page.next })),
        result: "list",
        refusal: None,
    }
}
