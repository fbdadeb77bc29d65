//! key-auth through its trait: the request phase run by the test kit as the proxy runs
//! it, with credential blocks checked as the config loader checks them.

use sluice_core::testkit::{TestExchange, TestRoute};

use super::*;

const CONSUMERS: &str = "[{ name: billing, key-auth: { key: billing-secret-key } }, { name: mobile, key-auth: { key: mobile-secret-key } }]";

fn route(yaml: &str) -> TestRoute {
    TestRoute::new().consumers(CONSUMERS).with(KeyAuth, yaml)
}

#[tokio::test]
async fn header_key_identifies_the_consumer_and_is_hidden_from_the_upstream() {
    let r = route("{}");
    let req = TestExchange::get("/orders?x=1").header("apikey", "billing-secret-key");
    let out = r.exchange(req, None).await;
    assert!(matches!(out.flow, Flow::Continue));
    assert_eq!(out.ctx.consumer_name(), Some("billing"));
    let consumer = out.ctx.consumer.as_ref().unwrap();
    assert_eq!((consumer.auth, consumer.auth_type), ("key-auth", "api_key"));
    let up = out.upstream.unwrap();
    assert!(up.headers.get("apikey").is_none(), "hidden by default");
    assert_eq!(up.uri.to_string(), "/orders?x=1");
    assert_eq!(&*out.ctx.credentials.headers[0], "apikey");
}

#[tokio::test]
async fn query_key_is_stripped_from_the_uri() {
    let r = route("{}");
    let out = r
        .exchange(
            TestExchange::get("/orders?a=1&apikey=mobile-secret-key&b=2"),
            None,
        )
        .await;
    assert_eq!(out.ctx.consumer_name(), Some("mobile"));
    assert_eq!(out.upstream.unwrap().uri.to_string(), "/orders?a=1&b=2");
    let out = r
        .exchange(TestExchange::get("/orders?apikey=mobile-secret-key"), None)
        .await;
    assert_eq!(out.upstream.unwrap().uri.to_string(), "/orders");
}

#[tokio::test]
async fn missing_and_wrong_keys_are_refused_with_401() {
    let r = route("{}");
    for (req, reason) in [
        (TestExchange::get("/"), "missing_credentials"),
        (
            TestExchange::get("/").header("apikey", ""),
            "missing_credentials",
        ),
        (
            TestExchange::get("/").header("apikey", "billing-secret-kez"),
            "invalid_credentials",
        ),
        (TestExchange::get("/?apikey=nope"), "invalid_credentials"),
    ] {
        let before = r.rejections(reason);
        let out = r.exchange(req, None).await;
        assert_eq!(out.status(), Some(401));
        assert_eq!(r.rejections(reason), before + 1, "{reason}");
        assert_eq!(
            out.header("www-authenticate"),
            Some("ApiKey header=\"apikey\"")
        );
        assert!(out.ctx.consumer.is_none());
        assert_eq!(out.ctx.responded_by, Some("key-auth"));
        assert!(
            out.upstream.is_none(),
            "a refused request never goes upstream"
        );
    }
}

#[tokio::test]
async fn custom_header_and_kept_credentials() {
    let r = route("{ header: x-api-key, query: key, hide_credentials: false }");
    let out = r
        .exchange(
            TestExchange::get("/").header("X-Api-Key", "mobile-secret-key"),
            None,
        )
        .await;
    assert_eq!(out.ctx.consumer_name(), Some("mobile"));
    assert!(out.upstream.unwrap().headers.get("x-api-key").is_some());
    let out = r
        .exchange(TestExchange::get("/?key=billing-secret-key"), None)
        .await;
    assert_eq!(
        out.upstream.unwrap().uri.to_string(),
        "/?key=billing-secret-key"
    );
}

#[test]
fn config_without_any_key_is_an_error() {
    let e = TestRoute::new().try_with(KeyAuth, "{}").err().unwrap();
    assert!(
        e[0].contains("no consumer has a `key-auth` credential"),
        "{e:?}"
    );
    let e = TestRoute::new()
        .consumers(CONSUMERS)
        .try_with(KeyAuth, "{ header: 'bad header' }")
        .err()
        .unwrap();
    assert!(e[0].starts_with("key-auth.header: "), "{e:?}");
}

#[test]
fn credential_blocks_are_checked_by_the_plugin() {
    let consumers = "[{ name: a, key-auth: { key: short } }, { name: b, key-auth: { key: same-key-123 } }, { name: c, key-auth: { key: same-key-123 } }, { name: d, key-auth: { keys: x } }]";
    let e = TestRoute::new()
        .consumers(consumers)
        .try_with(KeyAuth, "{}")
        .err()
        .unwrap();
    assert_eq!(
        e,
        [
            "consumers[3].key-auth.keys: unknown field `keys`, expected `key`",
            "consumers[3].key-auth: missing field `key`",
            "consumers[0].key-auth.key: an API key needs at least 8 characters",
            "consumers[2].key-auth.key: consumer `b` has the same key",
        ]
    );
}
