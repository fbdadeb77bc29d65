//! kafka-cache through its trait (before its view caught up: `503`, `/readyz` waits,
//! only `GET`) and its answers from a view (`200` with the position as `ETag`, `304`,
//! `404`, `507`, list pages).

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use pingora_http::RequestHeader;
use sluice_core::testkit::{TestExchange, TestRoute};
use sluice_kafka::KafkaRuntime;

use super::*;
use crate::view::View;

fn runtime() -> Arc<KafkaRuntime> {
    let clusters: BTreeMap<String, sluice_core::config::ClusterConfig> =
        serde_yaml::from_str("default: { brokers: ['127.0.0.1:1'] }").unwrap();
    Arc::new(KafkaRuntime::new(&clusters))
}

#[tokio::test]
async fn nothing_is_served_before_the_view_caught_up() {
    let r = TestRoute::new().with(
        KafkaCache::new(runtime()),
        "{ topic: items, key: '{path.1}' }",
    );
    let plugin = &r.chain.entries()[0].plugin;
    assert!(plugin.not_ready().unwrap().contains("waiting for cluster"));
    let out = r.exchange(TestExchange::get("/items/a"), None).await;
    assert_eq!(out.status(), Some(503));
    assert_eq!(out.header("retry-after"), Some("1"));
    assert_eq!(r.rejections("warming_up"), 1);
    let out = r.exchange(TestExchange::post("/items/a", "x"), None).await;
    assert_eq!(out.status(), Some(405));
    assert_eq!(out.header("allow"), Some("GET"));
}

fn get(path: &str, etag: Option<&str>) -> RequestHeader {
    let mut r = RequestHeader::build("GET", path.as_bytes(), None).unwrap();
    if let Some(e) = etag {
        r.insert_header("if-none-match", e).unwrap();
    }
    r
}

#[test]
fn items_with_etags_and_lists_in_pages() {
    let mut v = View::new(1 << 20);
    let ct = Some("application/json".to_string());
    v.apply(
        b"sku-1",
        Some(Bytes::from_static(b"{\"n\":1}")),
        ct.clone(),
        2,
        41,
        0,
    );
    v.apply(
        b"sku-2",
        Some(Bytes::from_static(b"{\"n\":2}")),
        ct,
        0,
        7,
        0,
    );
    let a = answer::item(&v, b"sku-1", &get("/items/sku-1", None));
    assert_eq!((a.response.status, a.result), (200, "hit"));
    assert_eq!(a.response.body.as_ref(), b"{\"n\":1}");
    let etag = a
        .response
        .headers
        .iter()
        .find(|(n, _)| n == "etag")
        .unwrap()
        .1
        .clone();
    assert_eq!(etag, "\"2-41\"");
    let again = answer::item(
        &v,
        b"sku-1",
        &get("/items/sku-1", Some(&format!("W/{etag}, \"x\""))),
    );
    assert_eq!((again.response.status, again.result), (304, "not_modified"));
    let miss = answer::item(&v, b"nope", &get("/items/nope", None));
    assert_eq!(miss.refusal.map(|r| r.0), Some(404));
    let list = |path: &str| match answer::page(&v, &get(path, None), 100, 1000) {
        Ok(p) => answer::list(p),
        Err(refused) => refused,
    };
    let page = list("/items/?prefix=sku-&limit=1");
    let body: serde_json::Value = serde_json::from_slice(&page.response.body).unwrap();
    assert_eq!(body["items"][0]["key"], "sku-1");
    let next = body["next"].as_str().unwrap().to_string();
    assert_ne!(next, "sku-1", "an opaque cursor");
    let rest = list(&format!("/items/?prefix=sku-&after={next}"));
    let body: serde_json::Value = serde_json::from_slice(&rest.response.body).unwrap();
    assert_eq!(body["items"][0]["key"], "sku-2");
    assert!(body["next"].is_null());
    let bad = list("/items/?limit=0");
    assert_eq!(bad.refusal.map(|r| r.0), Some(400));
    let mut full = View::new(300);
    full.apply(b"k", Some(Bytes::from_static(b"1")), None, 0, 0, 0);
    full.apply(b"a", Some(Bytes::from(vec![0u8; 400])), None, 0, 1, 0);
    let over = answer::item(&full, b"a", &get("/items/a", None));
    assert_eq!(over.refusal.map(|r| r.0), Some(507));
}
