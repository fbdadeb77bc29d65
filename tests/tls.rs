//! TLS termination end to end: the real binary with two certificates on one HTTPS
//! listener, curl (OpenSSL) as the client. SNI picks the certificate (exact and wildcard
//! names), ALPN negotiates HTTP/2 (HTTP/1.1 still works), the upstream learns
//! `X-Forwarded-Proto: https`, and a bad certificate file is a positioned config error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use sluice_e2e::certs::certificate;
use sluice_e2e::gateway::{run_sluice, Gateway};
use sluice_e2e::origin::Origin;
use sluice_e2e::{free_port, scratch_dir};

/// `curl` over TLS trusting `ca`: (exit code, body, HTTP version).
fn curl(port: u16, host: &str, ca: &str, extra: &[&str]) -> (i32, String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert", ca])
        .args(["--resolve", &format!("{host}:{port}:127.0.0.1")])
        .args(["-w", "\n%{http_version}"])
        .args(extra)
        .arg(format!("https://{host}:{port}/api/tls"))
        .output()
        .expect("curl (scripts/ensure-deps --test installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, version) = text.rsplit_once('\n').unwrap_or((&text, ""));
    (
        out.status.code().unwrap_or(-1),
        body.to_string(),
        version.to_string(),
    )
}

#[test]
fn https_listener_with_sni_and_http2() {
    let dir = scratch_dir("tls");
    let (a_cert, a_key) = certificate(&dir, "a.test");
    let (b_cert, b_key) = certificate(&dir, "b.test");
    let origin = Origin::start();
    let https = free_port();
    let gw = Gateway::start(&format!(
        r#"
server:
  listen: ["127.0.0.1:{{PORT}}"]
  grace_period: 1s
  tls:
    listen: ["127.0.0.1:{https}"]
    certificates:
      - {{ cert: "{a_cert}", key: "{a_key}" }}
      - {{ cert: "{b_cert}", key: "{b_key}" }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
upstreams:
  origin: {{ nodes: ["127.0.0.1:{}"] }}
routes:
  - id: api
    match: {{ paths: ["/api/*"] }}
    upstream: origin
"#,
        origin.port
    ));

    let (code, body, version) = curl(https, "a.test", &a_cert, &[]);
    assert_eq!(
        (code, version.as_str()),
        (0, "2"),
        "HTTP/2 through ALPN: {body}"
    );
    assert!(body.contains("/api/tls"), "{body}");
    let (code, _, version) = curl(https, "api.b.test", &b_cert, &["--http1.1"]);
    assert_eq!(
        (code, version.as_str()),
        (0, "1.1"),
        "wildcard name of the second certificate"
    );
    // b.test is served b's certificate: trusting only a's fails verification (60).
    assert_eq!(curl(https, "b.test", &a_cert, &[]).0, 60);
    // Unknown names get the first certificate.
    assert_eq!(curl(https, "other.test", &a_cert, &["-k"]).0, 0);

    let seen = origin.seen();
    assert_eq!(seen.len(), 3);
    for s in &seen {
        assert_eq!(s.header("x-forwarded-proto"), Some("https"), "{s:?}");
    }
    // Plain HTTP keeps working next to it.
    let r = sluice_e2e::client::get(gw.port, "/api/plain");
    assert_eq!(r.status, 200);
    assert_eq!(
        origin.seen().last().unwrap().header("x-forwarded-proto"),
        Some("http")
    );
}

#[test]
fn unusable_certificates_are_config_errors() {
    let dir = scratch_dir("tls-bad");
    let (cert, _) = certificate(&dir, "c.test");
    let file = dir.join("bad.yaml");
    std::fs::write(
        &file,
        format!(
            "server:\n  listen: [\"127.0.0.1:1\"]\n  tls:\n    listen: [\"127.0.0.1:2\"]\n    certificates:\n      - {{ cert: \"{cert}\", key: \"{}/missing.key\" }}\n",
            dir.display()
        ),
    )
    .unwrap();
    let out = run_sluice(&["-t", "-c", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(":6:9: server.tls.certificates[0]: cannot read"),
        "{err}"
    );
}
