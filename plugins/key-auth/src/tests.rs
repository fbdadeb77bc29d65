use sluice_core::config::{ConsumerConfig, KeyAuthCredential};

use super::*;

fn consumers() -> Vec<ConsumerConfig> {
    ["billing", "mobile"]
        .iter()
        .map(|n| ConsumerConfig {
            name: n.to_string(),
            key_auth: Some(KeyAuthCredential {
                key: format!("{n}-secret-key"),
            }),
            jwt_auth: None,
        })
        .collect()
}

fn build(
    yaml: &str,
    consumers: &[ConsumerConfig],
) -> std::result::Result<KeyAuthPlugin, Vec<FieldError>> {
    let c: KeyAuthConfig = serde_yaml::from_str(yaml).unwrap();
    KeyAuthPlugin::new(c, &FieldPath::root().key("key-auth"), consumers)
}

fn req(uri: &str, apikey: Option<&str>) -> RequestHeader {
    let mut r = RequestHeader::build("POST", uri.as_bytes(), None).unwrap();
    if let Some(k) = apikey {
        r.insert_header("apikey", k).unwrap();
    }
    r
}

#[test]
fn header_key_identifies_the_consumer_and_is_hidden() {
    let p = build("{}", &consumers()).unwrap();
    let mut ctx = RequestCtx::new();
    let mut r = req("/orders?x=1", Some("billing-secret-key"));
    assert_eq!(p.authenticate(&mut r, &mut ctx), Ok(()));
    assert_eq!(ctx.consumer_name(), Some("billing"));
    assert!(r.headers.get("apikey").is_none(), "hidden by default");
    assert_eq!(r.uri.to_string(), "/orders?x=1");
}

#[test]
fn query_key_is_stripped_from_the_uri() {
    let p = build("{}", &consumers()).unwrap();
    let mut ctx = RequestCtx::new();
    let mut r = req("/orders?a=1&apikey=mobile-secret-key&b=2", None);
    assert_eq!(p.authenticate(&mut r, &mut ctx), Ok(()));
    assert_eq!(ctx.consumer_name(), Some("mobile"));
    assert_eq!(r.uri.to_string(), "/orders?a=1&b=2");
    let mut r = req("/orders?apikey=mobile-secret-key", None);
    assert_eq!(p.authenticate(&mut r, &mut RequestCtx::new()), Ok(()));
    assert_eq!(r.uri.to_string(), "/orders");
}

#[test]
fn missing_and_wrong_keys_are_refused() {
    let p = build("{}", &consumers()).unwrap();
    let mut ctx = RequestCtx::new();
    assert_eq!(
        p.authenticate(&mut req("/", None), &mut ctx),
        Err(Refusal::Missing)
    );
    assert_eq!(
        p.authenticate(&mut req("/", Some("")), &mut ctx),
        Err(Refusal::Missing)
    );
    assert_eq!(
        p.authenticate(&mut req("/", Some("billing-secret-kez")), &mut ctx),
        Err(Refusal::Invalid)
    );
    assert_eq!(
        p.authenticate(&mut req("/?apikey=nope", None), &mut ctx),
        Err(Refusal::Invalid)
    );
    assert!(ctx.consumer.is_none());
    let resp = p.refuse(Refusal::Missing, &ctx);
    assert_eq!(resp.status, 401);
}

#[test]
fn custom_header_and_kept_credentials() {
    let p = build(
        "{ header: x-api-key, query: key, hide_credentials: false }",
        &consumers(),
    )
    .unwrap();
    let mut ctx = RequestCtx::new();
    let mut r = RequestHeader::build("GET", b"/", None).unwrap();
    r.insert_header("X-Api-Key", "mobile-secret-key").unwrap();
    assert_eq!(p.authenticate(&mut r, &mut ctx), Ok(()));
    assert!(r.headers.get("x-api-key").is_some());
    let mut r = req("/?key=billing-secret-key", None);
    assert_eq!(p.authenticate(&mut r, &mut ctx), Ok(()));
    assert_eq!(r.uri.to_string(), "/?key=billing-secret-key");
}

#[test]
fn config_without_any_key_is_an_error() {
    let e = build("{}", &[]).err().unwrap();
    assert!(
        e[0].message
            .contains("no consumer has a `key-auth` credential"),
        "{e:?}"
    );
    let e = build("{ header: 'bad header' }", &consumers())
        .err()
        .unwrap();
    assert_eq!(e[0].path.to_string(), "key-auth.header");
}
