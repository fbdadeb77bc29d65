use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;
use sluice_core::testkit::{TestExchange, TestRoute};

use super::*;

const SECRET: &str = "mobile-app-secret-0123456789abcdef";
const RSA_PRIVATE: &str = include_str!("testdata/rsa_private.pem");
const RSA_PUBLIC: &str = include_str!("testdata/rsa_public.pem");
const EC_PRIVATE: &str = include_str!("testdata/ec_private.pem");
const EC_PUBLIC: &str = include_str!("testdata/ec_public.pem");

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn consumer(name: &str, key: &str, alg: &str) -> serde_json::Value {
    let mut c = json!({ "key": key, "algorithm": alg });
    match alg {
        "HS256" => c["secret"] = json!(SECRET),
        "RS256" => c["public_key"] = json!(RSA_PUBLIC),
        "ES256" => c["public_key"] = json!(EC_PUBLIC),
        _ => {
            c["algorithm"] = json!("RS256");
            c["jwks_file"] = json!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/src/testdata/jwks.json"
            ));
        }
    }
    json!({ "name": name, "jwt-auth": c })
}

fn plugin(yaml: &str) -> TestRoute {
    let consumers = json!([
        consumer("mobile", "mobile-app", "HS256"),
        consumer("partner", "partner-rsa", "RS256"),
        consumer("device", "device-ec", "ES256"),
        consumer("sso", "sso", "jwks"),
    ]);
    TestRoute::new()
        .consumers(&consumers.to_string())
        .with(JwtAuth, yaml)
}

fn token(alg: Algorithm, kid: Option<&str>, claims: serde_json::Value) -> String {
    let key = match alg {
        Algorithm::HS256 => EncodingKey::from_secret(SECRET.as_bytes()),
        Algorithm::RS256 => EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(),
        _ => EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap(),
    };
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_string);
    encode(&h, &claims, &key).unwrap()
}

fn bearer(t: &str) -> TestExchange {
    TestExchange::get("/orders?x=1").header("Authorization", &format!("Bearer {t}"))
}

/// Why a request was refused: the counted reason and the problem's detail.
#[derive(Debug, PartialEq)]
struct Refused {
    reason: String,
    detail: String,
}

/// Run `r` through the route's request phase, as the proxy does.
async fn check(
    p: &TestRoute,
    mut r: TestExchange,
) -> (Result<(), Refused>, RequestCtx, pingora_http::RequestHeader) {
    let before: Vec<u64> = REASONS.iter().map(|n| p.rejections(n)).collect();
    let out = p.exchange_in(&mut r, p.ctx(), None).await;
    let res = match out.status() {
        Some(200) => Ok(()),
        Some(401) => {
            let reason = REASONS
                .iter()
                .zip(before)
                .find(|(n, b)| p.rejections(n) > *b)
                .map(|(n, _)| n.to_string())
                .unwrap_or_default();
            assert!(out
                .header("www-authenticate")
                .unwrap()
                .starts_with("Bearer error="));
            let detail = out.json()["detail"].as_str().unwrap_or("").to_string();
            Err(Refused { reason, detail })
        }
        other => panic!("unexpected status {other:?}"),
    };
    (res, out.ctx, out.upstream.unwrap_or(r.request))
}

const REASONS: [&str; 3] = [
    "missing_credentials",
    "invalid_credentials",
    "expired_token",
];

#[tokio::test]
async fn hs256_token_identifies_consumer_with_claims() {
    let p = plugin("{}");
    let t = token(
        Algorithm::HS256,
        None,
        json!({"key": "mobile-app", "exp": now() + 60, "tenant": "acme"}),
    );
    let (res, ctx, req) = check(&p, bearer(&t)).await;
    assert!(res.is_ok(), "{res:?}");
    assert_eq!(ctx.consumer_name(), Some("mobile"));
    let data = ctx.request_data(&req);
    let tmpl = sluice_core::template::Template::parse("{claim.tenant}/{consumer}").unwrap();
    assert_eq!(tmpl.render(&data), "acme/mobile");
    assert!(req.headers.get("authorization").is_none(), "hidden");
}

#[tokio::test]
async fn rs256_es256_and_jwks_keys_verify() {
    let p = plugin("{}");
    let rs = token(
        Algorithm::RS256,
        None,
        json!({"key": "partner-rsa", "exp": now() + 60}),
    );
    assert_eq!(
        check(&p, bearer(&rs)).await.1.consumer_name(),
        Some("partner")
    );
    let es = token(
        Algorithm::ES256,
        None,
        json!({"key": "device-ec", "exp": now() + 60}),
    );
    assert_eq!(
        check(&p, bearer(&es)).await.1.consumer_name(),
        Some("device")
    );
    // A JWKS consumer found by the key id alone.
    let sso = token(
        Algorithm::RS256,
        Some("rsa-2026"),
        json!({"sub": "u1", "exp": now() + 60}),
    );
    let (res, ctx, _) = check(&p, bearer(&sso)).await;
    assert!(res.is_ok(), "{res:?}");
    assert_eq!(ctx.consumer_name(), Some("sso"));
    let unknown_kid = token(Algorithm::RS256, Some("other"), json!({"exp": now() + 60}));
    assert_eq!(
        check(&p, bearer(&unknown_kid)).await.0.unwrap_err().reason,
        "invalid_credentials"
    );
}

#[tokio::test]
async fn expired_not_yet_valid_and_forged_tokens_are_refused() {
    let p = plugin("{}");
    let expired = token(
        Algorithm::HS256,
        None,
        json!({"key": "mobile-app", "exp": now() - 30}),
    );
    assert_eq!(
        check(&p, bearer(&expired)).await.0.unwrap_err().reason,
        "expired_token"
    );
    let lenient = plugin("{ leeway: 60s }");
    assert_eq!(check(&lenient, bearer(&expired)).await.0, Ok(()));
    let early = token(
        Algorithm::HS256,
        None,
        json!({"key": "mobile-app", "exp": now() + 600, "nbf": now() + 300}),
    );
    assert_eq!(
        check(&p, bearer(&early)).await.0.unwrap_err().detail,
        "the token is not valid yet (nbf)"
    );
    let no_exp = token(Algorithm::HS256, None, json!({"key": "mobile-app"}));
    assert!(check(&p, bearer(&no_exp)).await.0.is_err());
    // Signed with another secret.
    let forged = encode(
        &Header::new(Algorithm::HS256),
        &json!({"key": "mobile-app", "exp": now() + 60}),
        &EncodingKey::from_secret(b"another-secret-another-secret-xx"),
    )
    .unwrap();
    assert_eq!(
        check(&p, bearer(&forged)).await.0.unwrap_err().detail,
        "the token's signature does not verify"
    );
    // alg confusion: HS256 with the RSA public key as the secret, for an RS256 consumer.
    let confused = encode(
        &Header::new(Algorithm::HS256),
        &json!({"key": "partner-rsa", "exp": now() + 60}),
        &EncodingKey::from_secret(RSA_PUBLIC.as_bytes()),
    )
    .unwrap();
    assert!(check(&p, bearer(&confused)).await.0.is_err());
    // Tampered payload.
    let good = token(
        Algorithm::HS256,
        None,
        json!({"key": "mobile-app", "exp": now() + 60, "role": "user"}),
    );
    let parts: Vec<&str> = good.split('.').collect();
    let evil = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"key": "mobile-app", "exp": now() + 60, "role": "admin"}).to_string());
    let tampered = format!("{}.{evil}.{}", parts[0], parts[2]);
    assert!(check(&p, bearer(&tampered)).await.0.is_err());
    // Missing and garbage.
    let (res, _, _) = check(&p, TestExchange::get("/")).await;
    assert_eq!(res.unwrap_err().reason, "missing_credentials");
    assert_eq!(
        check(&p, bearer("not.a.jwt")).await.0.unwrap_err().detail,
        "malformed token"
    );
}

#[tokio::test]
async fn audience_issuer_and_required_claims() {
    let p = plugin(
        "{ audience: [orders-api], issuer: [https://idp.example], required_claims: [tenant] }",
    );
    let ok = token(
        Algorithm::HS256,
        None,
        json!({"key": "mobile-app", "exp": now() + 60, "aud": "orders-api", "iss": "https://idp.example", "tenant": "acme"}),
    );
    assert_eq!(check(&p, bearer(&ok)).await.0, Ok(()));
    for (claims, detail) in [
        (
            json!({"aud": "other", "iss": "https://idp.example", "tenant": "a"}),
            "the token's audience is not accepted",
        ),
        (
            json!({"aud": "orders-api", "iss": "https://evil", "tenant": "a"}),
            "the token's issuer is not accepted",
        ),
        (
            json!({"aud": "orders-api", "iss": "https://idp.example"}),
            "the token lacks a required claim",
        ),
    ] {
        let mut c = claims;
        c["key"] = json!("mobile-app");
        c["exp"] = json!(now() + 60);
        let t = token(Algorithm::HS256, None, c);
        assert_eq!(check(&p, bearer(&t)).await.0.unwrap_err().detail, detail);
    }
}

#[tokio::test]
async fn query_and_cookie_tokens_are_found_and_hidden() {
    let p = plugin("{}");
    let t = token(
        Algorithm::HS256,
        None,
        json!({"key": "mobile-app", "exp": now() + 60}),
    );
    let r = TestExchange::get(&format!("/o?a=1&jwt={t}"));
    let (res, _, req) = check(&p, r).await;
    assert!(res.is_ok());
    assert_eq!(req.uri.to_string(), "/o?a=1");
    let r = TestExchange::get("/o").header("Cookie", &format!("theme=dark; jwt={t}; lang=en"));
    let (res, _, req) = check(&p, r).await;
    assert!(res.is_ok());
    assert_eq!(req.headers.get("cookie").unwrap(), "theme=dark; lang=en");
}

#[test]
fn config_errors_name_the_consumer() {
    let mut bad = consumer("broken", "b", "RS256");
    bad["jwt-auth"]["public_key"] =
        json!("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n");
    let e = TestRoute::new()
        .consumers(&json!([bad]).to_string())
        .try_with(JwtAuth, "{}")
        .err()
        .unwrap();
    assert!(
        e[0].starts_with("jwt-auth: consumer `broken`: public_key"),
        "{e:?}"
    );
    let e = TestRoute::new().try_with(JwtAuth, "{}").err().unwrap();
    assert!(
        e[0].contains("no consumer has a `jwt-auth` credential"),
        "{e:?}"
    );
}

#[test]
fn credential_blocks_are_checked_by_the_plugin() {
    let consumers = "[{ name: a, jwt-auth: { key: k, secret: short } }, { name: b, jwt-auth: { key: k, algorithm: RS256, secret: \"0123456789abcdef0123456789abcdef\" } }, { name: c, jwt-auth: { key: c, algorithm: none } }]";
    let e = TestRoute::new()
        .consumers(consumers)
        .try_with(JwtAuth, "{}")
        .err()
        .unwrap();
    assert_eq!(
        e,
        [
            "consumers[0].jwt-auth.secret: an HMAC secret needs at least 32 characters",
            "consumers[1].jwt-auth: an RS*/ES* algorithm takes one of `public_key` and `jwks_file` (and no `secret`)",
            "consumers[1].jwt-auth.key: consumer `a` has the same jwt-auth key",
            "consumers[2].jwt-auth.algorithm: one of HS256, HS384, HS512, RS256, RS384, RS512, ES256, ES384",
        ]
    );
}
