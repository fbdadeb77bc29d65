//! Property-based fuzzing (proptest, a fixed number of cases so CI time is bounded) of
//! what parses untrusted or hand-written input: the config loader, templates, and the
//! event encoders (kafka-logger entries, SSE frames). Properties: never a panic; config
//! errors always positioned inside the file; encoders produce well-formed output that
//! round-trips and never leaks redacted values or lets a payload inject SSE fields.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::SystemTime;

use pingora_http::RequestHeader;
use proptest::prelude::*;
use sluice_core::config::ConfigDoc;
use sluice_core::template::{RequestData, Template};
use sluice_core::Registry;
use sluice_plugin_kafka_logger::capture::Captured;
use sluice_plugin_kafka_logger::config::{default_redact, default_redact_query, Format};
use sluice_plugin_kafka_logger::encoder::{encode_entry, EncodeOptions, Exchange};
use sluice_plugin_kafka_sse::frame;

const REFERENCE: &str = include_str!("../conf/reference.yaml");
const QUICKSTART: &str = include_str!("../conf/quickstart.yaml");

fn registry() -> Registry {
    let mut r = Registry::new();
    r.register(sluice_plugin_mocking::Mocking)
        .register(sluice_plugin_key_auth::KeyAuth)
        .register(sluice_plugin_limit_count::LimitCount::new(
            Default::default(),
        ));
    r
}

fn env(name: &str) -> Option<String> {
    (name == "SET").then(|| "value".to_string())
}

/// Load `text`; panics (failing the property) only if the loader itself panics.
fn load(text: &str) -> Result<(), Vec<(usize, usize)>> {
    let lines = text.lines().count().max(1) + 1;
    let check = |errs: &sluice_core::config::ConfigErrors| -> Vec<(usize, usize)> {
        let out: Vec<(usize, usize)> = errs.0.iter().map(|e| (e.line, e.col)).collect();
        for (i, e) in errs.0.iter().enumerate() {
            assert!(
                e.line >= 1 && e.col >= 1,
                "error {i} at {}:{}",
                e.line,
                e.col
            );
            assert!(
                e.line <= lines,
                "error at line {} of a {lines}-line file: {e}",
                e.line
            );
            assert!(!e.message.is_empty());
        }
        out
    };
    let mut doc = ConfigDoc::parse("fuzz.yaml", text, &env).map_err(|e| check(&e))?;
    let _router = doc.build_routes(&registry());
    doc.finish().map(|_| ()).map_err(|e| check(&e))
}

/// Edit a config: drop, duplicate or corrupt one line, or splice in a token.
fn mutate(base: &str, op: u8, at: usize, token: &str) -> String {
    let mut lines: Vec<String> = base.lines().map(str::to_string).collect();
    let i = at % lines.len().max(1);
    match op % 5 {
        0 => {
            lines.remove(i);
        }
        1 => {
            let l = lines[i].clone();
            lines.insert(i, l);
        }
        2 => {
            let l = &mut lines[i];
            let cut = at % (l.len() + 1);
            let cut = (0..=cut)
                .rev()
                .find(|c| l.is_char_boundary(*c))
                .unwrap_or(0);
            l.insert_str(cut, token);
        }
        3 => {
            if let Some(colon) = lines[i].find(": ") {
                lines[i].truncate(colon + 2);
                lines[i].push_str(token);
            }
        }
        _ => lines.insert(i, format!("{token}:")),
    }
    lines.join("\n")
}

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("-1".to_string()),
        Just("0".to_string()),
        Just("99999999999999999999".to_string()),
        Just("${UNSET}".to_string()),
        Just("${SET:-x}".to_string()),
        Just("[".to_string()),
        Just("{}".to_string()),
        Just("~".to_string()),
        Just("*anchor".to_string()),
        Just("&a".to_string()),
        Just("<<: {}".to_string()),
        Just("\"{header.}\"".to_string()),
        Just("1ms".to_string()),
        "[a-z_.{}\\[\\]:,\\- ]{0,12}",
    ]
}

/// 256 cases per property in CI (a few seconds); `PROPTEST_CASES=N` for a longer run.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn config_loader_never_panics_on_edited_configs(
        base in prop_oneof![Just(REFERENCE), Just(QUICKSTART)],
        op in any::<u8>(),
        at in any::<usize>(),
        tok in token(),
        op2 in any::<u8>(),
        at2 in any::<usize>(),
    ) {
        let once = mutate(base, op, at, &tok);
        let _ = load(&once);
        let _ = load(&mutate(&once, op2, at2, &tok));
    }

    #[test]
    fn config_loader_never_panics_on_arbitrary_text(text in "[ -~\\n\\t]{0,400}") {
        let _ = load(&text);
    }

    #[test]
    fn templates_parse_or_refuse_and_always_render(t in "[a-z_.{}0-9 ]{0,40}", uri in "/[a-z0-9/%?=&]{0,30}") {
        if let Ok(tmpl) = Template::parse(&t) {
            let req = RequestHeader::build("GET", uri.as_bytes(), None).unwrap();
            let d = RequestData { route_id: "r", request_id: "id", client_ip: None, consumer: None, claims: None, req: &req };
            let _ = tmpl.render(&d);
        }
    }

    #[test]
    fn logger_entries_are_json_and_never_leak_redacted_values(
        headers in proptest::collection::vec(("[a-z][a-z0-9-]{0,10}", "[ -~]{0,20}"), 0..8),
        secret in "[A-Za-z0-9]{12,20}",
        body in proptest::collection::vec(any::<u8>(), 0..64),
        path in "/[a-zA-Z0-9/._~-]{0,20}",
    ) {
        let mut req = RequestHeader::build("POST", path.as_bytes(), None).unwrap();
        for (n, v) in &headers {
            req.append_header(n.clone(), v.as_str()).unwrap();
        }
        req.append_header("authorization", format!("Bearer {secret}")).unwrap();
        req.append_header("apikey", secret.as_str()).unwrap();
        let captured = Captured { bytes: body.clone(), truncated: false };
        let x = Exchange {
            id: "id", started_at: SystemTime::now(), route_id: "r", request_id: "rid",
            client_ip: None, consumer: None, credentials: &Default::default(), request: &req, request_size: body.len() as u64,
            request_body: Some(&captured), response: None, response_size: 0,
            response_body: None, upstream: None, error: None, total_seconds: 0.1,
            upstream_seconds: None,
        };
        let opts = EncodeOptions {
            redact: default_redact(), redact_query: default_redact_query(), include_headers: true, format: Format::Json,
            ce_type: "t".into(), ce_source: "s".into(),
        };
        let bytes = encode_entry(&x, &opts);
        let v: serde_json::Value = serde_json::from_slice(&bytes).expect("valid JSON");
        prop_assert!(!String::from_utf8_lossy(&bytes).contains(&secret), "redacted value leaked");
        let logged = v["request"]["body"].as_str().unwrap();
        let decoded = if v["request"]["body_encoding"] == "base64" {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.decode(logged).unwrap()
        } else {
            logged.as_bytes().to_vec()
        };
        prop_assert_eq!(decoded, body);
    }

    #[test]
    fn sse_frames_carry_any_payload_as_data_only(
        data in proptest::collection::vec(any::<u8>(), 0..200),
        id in "[ -~]{0,20}",
        event in "[ -~\\r\\n]{0,10}",
    ) {
        let out = frame::event(&id, Some(&event), &data);
        let text = String::from_utf8(out).expect("UTF-8");
        prop_assert!(text.ends_with("\n\n"));
        let body = &text[..text.len() - 1];
        // Exactly one event: no blank line before its end.
        prop_assert!(!body[..body.len() - 1].contains("\n\n"), "{text:?}");
        let mut got = Vec::new();
        for line in body.lines() {
            let (field, value) = line.split_once(": ").unwrap_or((line, ""));
            prop_assert!(["id", "event", "data"].contains(&field), "field {field:?} in {text:?}");
            prop_assert!(!line.contains('\r'));
            if field == "data" {
                got.push(value.to_string());
            }
        }
        let expected = String::from_utf8_lossy(&data)
            .replace("\r\n", "\n")
            .replace('\r', "\n")
            .replace('\0', "\u{fffd}");
        prop_assert_eq!(got.join("\n"), expected);
    }
}
