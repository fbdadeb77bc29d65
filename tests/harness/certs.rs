//! Self-signed certificates for the HTTPS tests, made with the `openssl` command line.

use std::path::Path;
use std::process::Command;

/// A self-signed certificate for `name` and `*.name` in `dir`: (cert, key) paths.
pub fn certificate(dir: &Path, name: &str) -> (String, String) {
    let cert = dir.join(format!("{name}.pem")).display().to_string();
    let key = dir.join(format!("{name}.key")).display().to_string();
    let ok = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args([
            "-keyout",
            &key,
            "-out",
            &cert,
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
        ])
        .args([
            "-addext",
            &format!("subjectAltName=DNS:{name},DNS:*.{name}"),
        ])
        .output()
        .expect("openssl (scripts/ensure-deps --test installs it)");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    (cert, key)
}
