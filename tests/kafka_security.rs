//! TLS and SASL towards Kafka, end to end with the real binary and Tansu: SCRAM-SHA-256
//! against a broker that requires authentication (a wrong password is refused: 503,
//! never 202), and TLS with certificate and host-name verification on by default (a
//! broker certificate from an unknown CA is refused; `verify: false` accepts it).
//! Tansu 0.6 does not terminate TLS, so a TLS proxy fronts it and is what it advertises.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use sluice_e2e::client::request;
use sluice_e2e::gateway::Gateway;
use sluice_e2e::kafka::Tansu;
use sluice_e2e::tls_proxy::TlsProxy;
use sluice_e2e::{free_port, scratch_dir};

fn divert_gateway(cluster: &str) -> Gateway {
    Gateway::start(&format!(
        r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], grace_period: 0s }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
kafka:
  clusters:
    default:
      acks: leader
{cluster}
routes:
  - id: d
    match: {{ paths: ["/d/*"], methods: [POST] }}
    plugins: {{ kafka-divert: {{ topic: secured, timeout: 3s }} }}
"#
    ))
}

fn post(gw: &Gateway, body: &str) -> u16 {
    request(gw.port, "POST", "/d/x", &[], body.as_bytes()).status
}

#[test]
fn sasl_scram_authenticates_and_a_wrong_password_never_gets_202() {
    let mut tansu = Tansu::start_persistent();
    tansu.create_user("sluice", "sluice-scram-password", "scram256");
    tansu.create_topic("secured", 1);
    tansu.restart_requiring_authentication();
    let b = &tansu.bootstrap;

    let gw = divert_gateway(&format!(
        "      brokers: [\"{b}\"]\n      sasl: {{ mechanism: SCRAM-SHA-256, username: sluice, password: sluice-scram-password }}"
    ));
    assert_eq!(post(&gw, "{\"n\":1}"), 202);
    let bad = divert_gateway(&format!(
        "      brokers: [\"{b}\"]\n      sasl: {{ mechanism: SCRAM-SHA-256, username: sluice, password: wrong }}"
    ));
    assert_eq!(post(&bad, "{\"n\":2}"), 503);
    let none = divert_gateway(&format!("      brokers: [\"{b}\"]"));
    assert_eq!(post(&none, "{\"n\":3}"), 503, "no credentials");
    drop((bad, none));
    assert_eq!(post(&gw, "{\"n\":4}"), 202);
}

/// A certificate for 127.0.0.1 and localhost signed by a fresh CA: (ca, cert, key).
fn ca_and_certificate(dir: &Path, tag: &str) -> (String, String, String) {
    let p = |f: &str| dir.join(format!("{tag}-{f}")).display().to_string();
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let (ca, ca_key, cert, key, csr) = (
        p("ca.pem"),
        p("ca.key"),
        p("cert.pem"),
        p("cert.key"),
        p("cert.csr"),
    );
    run(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &ca_key,
        "-out",
        &ca,
        "-days",
        "2",
        "-subj",
        &format!("/CN={tag} test CA"),
    ]);
    run(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        &key,
        "-out",
        &csr,
        "-subj",
        "/CN=localhost",
    ]);
    let ext = p("ext.cnf");
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        &ca,
        "-CAkey",
        &ca_key,
        "-CAcreateserial",
        "-out",
        &cert,
        "-days",
        "2",
        "-extfile",
        &ext,
    ]);
    (ca, cert, key)
}

#[test]
fn tls_verifies_the_broker_certificate_by_default() {
    let dir = scratch_dir("kafka-tls");
    let (ca, cert, key) = ca_and_certificate(&dir, "broker");
    let (other_ca, _, _) = ca_and_certificate(&dir, "other");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_port = listener.local_addr().unwrap().port();
    let tansu = Tansu::start_advertising("memory://tansu/", free_port(), proxy_port);
    tansu.create_topic("secured", 1);
    let proxy = TlsProxy::start(listener, &cert, &key, tansu_port(&tansu));
    let tls_bootstrap = format!("127.0.0.1:{}", proxy.port);

    let gw = divert_gateway(&format!(
        "      brokers: [\"{tls_bootstrap}\"]\n      tls: {{ ca_file: \"{ca}\" }}"
    ));
    assert_eq!(post(&gw, "{\"tls\":1}"), 202);
    let untrusted = divert_gateway(&format!(
        "      brokers: [\"{tls_bootstrap}\"]\n      tls: {{ ca_file: \"{other_ca}\" }}"
    ));
    assert_eq!(
        post(&untrusted, "{\"tls\":2}"),
        503,
        "a broker certificate from an unknown CA"
    );
    let insecure = divert_gateway(&format!(
        "      brokers: [\"{tls_bootstrap}\"]\n      tls: {{ ca_file: \"{other_ca}\", verify: false }}"
    ));
    assert_eq!(post(&insecure, "{\"tls\":3}"), 202, "verify: false");

    // The 202s carry the broker-assigned offsets: both records are in the log, in order
    // (the reader cannot check directly: Tansu advertises the TLS port).
    let offsets: Vec<u64> = ["{\"tls\":4}", "{\"tls\":5}"]
        .iter()
        .map(|b| {
            let r = request(gw.port, "POST", "/d/x", &[], b.as_bytes());
            assert_eq!(r.status, 202);
            r.json()["offset"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(offsets, [2, 3], "records 1 and 3 took offsets 0 and 1");
}

fn tansu_port(t: &Tansu) -> u16 {
    t.bootstrap.rsplit_once(':').unwrap().1.parse().unwrap()
}
