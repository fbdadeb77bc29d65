use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use pingora_http::RequestHeader;
use serde_json::json;
use sluice_core::config::JwtCredential;

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

fn consumer(name: &str, key: &str, alg: &str) -> ConsumerConfig {
    let mut c = JwtCredential {
        key: key.into(),
        algorithm: alg.into(),
        secret: None,
        public_key: None,
        jwks_file: None,
    };
    match alg {
        "HS256" => c.secret = Some(SECRET.into()),
        "RS256" => c.public_key = Some(RSA_PUBLIC.into()),
        "ES256" => c.public_key = Some(EC_PUBLIC.into()),
        _ => {
            c.jwks_file =
                Some(concat!(env!("CARGO_MANIFEST_DIR"), "/src/testdata/jwks.json").into())
        }
    }
    if alg == "jwks" {
        c.algorithm = "RS256".into();
    }
    ConsumerConfig {
        name: name.into(),
        key_auth: None,
        jwt_auth: Some(c),
    }
}

fn plugin(yaml: &str) -> JwtAuthPlugin {
    let consumers = [
        consumer("mobile", "mobile-app", "HS256"),
        consumer("partner", "partner-rsa", "RS256"),
        consumer("device", "device-ec", "ES256"),
        consumer("sso", "sso", "jwks"),
    ];
    let c: JwtAuthConfig = serde_yaml::from_str(yaml).unwrap();
    JwtAuthPlugin::new(c, &FieldPath::root().key("jwt-auth"), &consumers).unwrap()
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

fn bearer(t: &str) -> RequestHeader {
    let mut r = RequestHeader::build("GET", b"/orders?x=1", None).unwrap();
    r.insert_header("Authorization", format!("Bearer {t}"))
        .unwrap();
    r
}

fn check(
    p: &JwtAuthPlugin,
    mut r: RequestHeader,
) -> (Result<(), Refusal>, RequestCtx, RequestHeader) {
    let mut ctx = RequestCtx::new();
    let res = p.authenticate(&mut r, &mut ctx);
    (res, ctx, r)
}

#[test]
fn hs256_token_identifies_consumer_with_claims() {
    let p = plugin("{}");
    let t = token(
        Algorithm::HS256,
        None,
        json!({"key": "mobile-app", "exp": now() + 60, "tenant": "acme"}),
    );
    let (res, ctx, req) = check(&p, bearer(&t));
    assert_eq!(res, Ok(()));
    assert_eq!(ctx.consumer_name(), Some("mobile"));
    let data = ctx.request_data(&req);
    let tmpl = sluice_core::template::Template::parse("{claim.tenant}/{consumer}").unwrap();
    assert_eq!(tmpl.render(&data), "acme/mobile");
    assert!(req.headers.get("authorization").is_none(), "hidden");
}

#[test]
fn rs256_es256_and_jwks_keys_verify() {
    let p = plugin("{}");
    let rs = token(
        Algorithm::RS256,
        None,
        json!({"key": "partner-rsa", "exp": now() + 60}),
    );
    assert_eq!(check(&p, bearer(&rs)).1.consumer_name(), Some("partner"));
    let es = token(
        Algorithm::ES256,
        None,
        json!({"key": "device-ec", "exp": now() + 60}),
    );
    assert_eq!(check(&p, bearer(&es)).1.consumer_name(), Some("device"));
    // A JWKS consumer found by the key id alone.
    let sso = token(
        Algorithm::RS256,
        Some("rsa-2026"),
        json!({"sub": "u1", "exp": now() + 60}),
    );
    let (res, ctx, _) = check(&p, bearer(&sso));
    assert_eq!(res, Ok(()));
    assert_eq!(ctx.consumer_name(), Some("sso"));
    let unknown_kid = token(Algorithm::RS256, Some("other"), json!({"exp": now() + 60}));
    assert_eq!(
        check(&p, bearer(&unknown_kid)).0.unwrap_err().reason,
        "invalid_credentials"
    );
}

#[test]
fn expired_not_yet_valid_and_forged_tokens_are_refused() {
    let p = plugin("{}");
    let expired = token(
        Algorithm::HS256,
        None,
        json!({"key": "mobile-app", "exp": now() - 30}),
    );
    assert_eq!(
        check(&p, bearer(&expired)).0.unwrap_err().reason,
        "expired_token"
    );
    let lenient = plugin("{ leeway: 60s }");
    assert_eq!(check(&lenient, bearer(&expired)).0, Ok(()));
    let early = token(
        Algorithm::HS256,
        None,
        json!({"key": "mobile-app", "exp": now() + 600, "nbf": now() + 300}),
    );
    assert_eq!(
        check(&p, bearer(&early)).0.unwrap_err().detail,
        "the token is not valid yet (nbf)"
    );
    let no_exp = token(Algorithm::HS256, None, json!({"key": "mobile-app"}));
    assert!(check(&p, bearer(&no_exp)).0.is_err());
    // Signed with another secret.
    let forged = encode(
        &Header::new(Algorithm::HS256),
        &json!({"key": "mobile-app", "exp": now() + 60}),
        &EncodingKey::from_secret(b"another-secret-another-secret-xx"),
    )
    .unwrap();
    assert_eq!(
        check(&p, bearer(&forged)).0.unwrap_err().detail,
        "the token's signature does not verify"
    );
    // alg confusion: HS256 with the RSA public key as the secret, for an RS256 consumer.
    let confused = encode(
        &Header::new(Algorithm::HS256),
        &json!({"key": "partner-rsa", "exp": now() + 60}),
        &EncodingKey::from_secret(RSA_PUBLIC.as_bytes()),
    )
    .unwrap();
    assert!(check(&p, bearer(&confused)).0.is_err());
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
    assert!(check(&p, bearer(&tampered)).0.is_err());
    // Missing and garbage.
    let (res, _, _) = check(&p, RequestHeader::build("GET", b"/", None).unwrap());
    assert_eq!(res.unwrap_err().reason, "missing_credentials");
    assert_eq!(
        check(&p, bearer("not.a.jwt")).0.unwrap_err().detail,
        "malformed token"
    );
}

#[test]
fn audience_issuer_and_required_claims() {
    let p = plugin(
        "{ audience: [orders-api], issuer: [https://idp.example], required_claims: [tenant] }",
    );
    let ok = token(
        Algorithm::HS256,
        None,
        json!({"key": "mobile-app", "exp": now() + 60, "aud": "orders-api", "iss": "https://idp.example", "tenant": "acme"}),
    );
    assert_eq!(check(&p, bearer(&ok)).0, Ok(()));
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
        assert_eq!(check(&p, bearer(&t)).0.unwrap_err().detail, detail);
    }
}

#[test]
fn query_and_cookie_tokens_are_found_and_hidden() {
    let p = plugin("{}");
    let t = token(
        Algorithm::HS256,
        None,
        json!({"key": "mobile-app", "exp": now() + 60}),
    );
    let r = RequestHeader::build("GET", format!("/o?a=1&jwt={t}").as_bytes(), None).unwrap();
    let (res, _, req) = check(&p, r);
    assert_eq!(res, Ok(()));
    assert_eq!(req.uri.to_string(), "/o?a=1");
    let mut r = RequestHeader::build("GET", b"/o", None).unwrap();
    r.insert_header("Cookie", format!("theme=dark; jwt={t}; lang=en"))
        .unwrap();
    let (res, _, req) = check(&p, r);
    assert_eq!(res, Ok(()));
    assert_eq!(req.headers.get("cookie").unwrap(), "theme=dark; lang=en");
}

#[test]
fn config_errors_name_the_consumer() {
    let mut bad = consumer("broken", "b", "RS256");
    if let Some(j) = bad.jwt_auth.as_mut() {
        j.public_key = Some("-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n".into());
    }
    let c: JwtAuthConfig = serde_yaml::from_str("{}").unwrap();
    let e = JwtAuthPlugin::new(c, &FieldPath::root().key("jwt-auth"), &[bad])
        .err()
        .unwrap();
    assert!(
        e[0].message.starts_with("consumer `broken`: public_key"),
        "{e:?}"
    );
    let c: JwtAuthConfig = serde_yaml::from_str("{}").unwrap();
    let e = JwtAuthPlugin::new(c, &FieldPath::root(), &[])
        .err()
        .unwrap();
    assert!(e[0]
        .message
        .contains("no consumer has a `jwt-auth` credential"));
}
