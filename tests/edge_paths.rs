//! Authentication cannot be bypassed through the path or the host: a protected prefix
//! (`/files/admin/*`, key-auth) sits next to an open catch-all, in front of a stock
//! `python3 -m http.server` (which decodes escapes and resolves `..` itself). A table of
//! encodings, dot segments, slashes, parameters, overlong UTF-8 and host spellings must
//! never return the protected file without credentials, and each refusal is counted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sluice_e2e::client::{request, request_raw};
use sluice_e2e::gateway::Gateway;
use sluice_e2e::metrics::scrape;
use sluice_e2e::{free_port, scratch_dir, wait_for};

const SECRET: &str = "the-admin-secret-7f3a";
const KEY: &str = "ops-key-0123456789";

/// `python3 -m http.server` over a directory with `files/admin/secret.txt`.
struct PyOrigin {
    port: u16,
    child: Child,
}

impl PyOrigin {
    fn start() -> Self {
        let dir = scratch_dir("pyorigin");
        std::fs::create_dir_all(dir.join("files/admin")).unwrap();
        std::fs::write(dir.join("files/admin/secret.txt"), SECRET).unwrap();
        std::fs::write(dir.join("files/public.txt"), "public").unwrap();
        let port = free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                &port.to_string(),
            ])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 (scripts/ensure-deps --test installs it)");
        wait_for("python3 http.server", Duration::from_secs(30), || {
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
        Self { port, child }
    }
}

impl Drop for PyOrigin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn gateway(origin: u16, extra_server: &str) -> Gateway {
    Gateway::start(&format!(
        r#"
server:
  listen: ["127.0.0.1:{{PORT}}"]
  grace_period: 1s
{extra_server}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
consumers:
  - name: ops
    key-auth: {{ key: "{KEY}" }}
upstreams:
  files: {{ nodes: ["127.0.0.1:{origin}"] }}
routes:
  - id: admin-files
    match: {{ paths: ["/files/admin/*"] }}
    upstream: files
    plugins: {{ key-auth: {{}} }}
  - id: admin-host
    match: {{ paths: ["/*"], hosts: ["admin.example"] }}
    upstream: files
    plugins: {{ key-auth: {{}} }}
  - id: open
    match: {{ paths: ["/*"] }}
    upstream: files
"#
    ))
}

/// `GET target` with `host`, raw bytes on the wire: (status, body); status 0 when the
/// connection closed without an answer.
fn get(port: u16, target: &[u8], host: &str, key: bool) -> (u16, String) {
    let mut raw = b"GET ".to_vec();
    raw.extend_from_slice(target);
    raw.extend_from_slice(format!(" HTTP/1.1\r\nHost: {host}\r\n").as_bytes());
    if key {
        raw.extend_from_slice(format!("apikey: {KEY}\r\n").as_bytes());
    }
    raw.extend_from_slice(b"Connection: close\r\n\r\n");
    match request_raw(port, &raw) {
        Some(r) => (r.status, r.text()),
        None => (0, String::new()),
    }
}

#[test]
fn no_encoding_reaches_the_protected_path_without_credentials() {
    let py = PyOrigin::start();
    let gw = gateway(py.port, "");
    // The setup is sound: the file is there, and open paths are served.
    let (s, body) = get(gw.port, b"/files/admin/secret.txt", "localhost", true);
    assert_eq!((s, body.as_str()), (200, SECRET));
    assert_eq!(
        get(gw.port, b"/files/public.txt", "localhost", false).0,
        200
    );

    // (target, host, expected status without credentials)
    let l = "localhost";
    let cases: &[(&[u8], &str, u16)] = &[
        (b"/files/admin/secret.txt", l, 401),
        (b"/files/%61dmin/secret.txt", l, 401),
        (b"/files/adm%69n/secret.txt", l, 401),
        (b"/files/%61%64%6D%69%6E/secret.txt", l, 401),
        (b"/files//admin/secret.txt", l, 401),
        (b"//files///admin//secret.txt", l, 401),
        (b"/files/./admin/secret.txt", l, 401),
        (b"/files/admin/./secret.txt", l, 401),
        (b"/files/x/../admin/secret.txt", l, 401),
        (b"/files/%2e/admin/secret.txt", l, 401),
        (b"/files/x/%2e%2e/admin/secret.txt", l, 401),
        (b"/files/x/%2E%2E/admin/secret.txt", l, 401),
        (b"/files/x/.%2e/admin/secret.txt", l, 401),
        (b"/files/public/../../files/admin/secret.txt", l, 401),
        (b"http://localhost/files/%61dmin/secret.txt", l, 401),
        (b"/files/admin%2fsecret.txt", l, 400),
        (b"/files/admin%2Fsecret.txt", l, 400),
        (b"/files/x/..%2fadmin/secret.txt", l, 400),
        (b"/files%2fadmin/secret.txt", l, 400),
        (b"/files/admin%5csecret.txt", l, 400),
        (b"/files/x/..%5Cadmin/secret.txt", l, 400),
        (b"/files\\admin\\secret.txt", l, 400),
        (b"/files/x/..\\admin/secret.txt", l, 400),
        (b"/files/admin%252fsecret.txt", l, 400),
        (b"/files/%2561dmin/secret.txt", l, 400),
        (b"/files/x/%252e%252e/admin/secret.txt", l, 400),
        (b"/files/admin%00/secret.txt", l, 400),
        (b"/files/admin;x=1/secret.txt", l, 400),
        (b"/files/admin;/secret.txt", l, 400),
        (b"/files/x/..;/admin/secret.txt", l, 400),
        (b"/files/%c0%ae%c0%ae/files/admin/secret.txt", l, 400),
        (b"/files/x/%c0%ae%c0%ae%c0%afadmin/secret.txt", l, 400),
        (b"/files/%e0%80%ae%e0%80%ae/admin/secret.txt", l, 400),
        (b"/files/%c0%afadmin/secret.txt", l, 400),
        (b"/files/\xc0\xae\xc0\xae/admin/secret.txt", l, 400),
        (b"/files/%ff/../admin/secret.txt", l, 400),
        (b"/files/%zzadmin/secret.txt", l, 400),
        (b"/files/admin%2/secret.txt", l, 400),
        (b"/files/admin%25%32%46secret.txt", l, 400),
        (b"/files/%25%36%31dmin/secret.txt", l, 400),
        // Hosts: case and a trailing dot reach the protected host's route.
        (b"/files/public.txt", "admin.example", 401),
        (b"/files/public.txt", "admin.example.", 401),
        (b"/files/public.txt", "ADMIN.Example.", 401),
        (b"/files/public.txt", "Admin.Example.:8080", 401),
        (b"/files/public.txt", "admin.example..", 401),
    ];
    assert!(cases.len() >= 30);
    let mut refused_400 = 0;
    for (target, host, want) in cases {
        let shown = String::from_utf8_lossy(target);
        let (status, body) = get(gw.port, target, host, false);
        assert!(
            !body.contains(SECRET),
            "{shown} (Host {host}) reached the protected file without credentials"
        );
        assert_eq!(status, *want, "{shown} (Host {host}): {body}");
        if status == 400 {
            refused_400 += 1;
        }
    }
    // A lower-case method would miss a method-limited route; it is refused.
    let r = request_raw(
        gw.port,
        b"get /files/admin/secret.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(r.status, 400);
    assert!(!r.text().contains(SECRET));
    // Each 400 is counted under a path reason, or as `malformed_request` when the HTTP
    // parser itself refused the request line (a raw non-UTF-8 byte).
    let m = scrape(gw.admin);
    let counted: f64 = [
        "escaped_slash",
        "path_parameters",
        "invalid_path",
        "malformed_request",
    ]
    .iter()
    .map(|r| m.sum("sluice_http_rejections_total", &[("reason", r)]))
    .sum();
    assert_eq!(counted, f64::from(refused_400), "rejections by path reason");
    assert!(
        m.sum(
            "sluice_http_rejections_total",
            &[("reason", "escaped_slash")]
        ) >= 6.0
    );
    assert!(
        m.sum(
            "sluice_http_rejections_total",
            &[("reason", "path_parameters")]
        ) >= 3.0
    );
}

#[test]
fn what_was_authorized_is_what_the_upstream_receives() {
    let py = PyOrigin::start();
    let gw = gateway(py.port, "");
    // With credentials, an encoded spelling is served as its normal form.
    for target in [
        &b"/files/%61dmin/secret.txt"[..],
        b"/files//admin/./secret.txt",
        b"/files/x/../admin/secret.txt?q=%2F",
    ] {
        let (s, body) = get(gw.port, target, "localhost", true);
        assert_eq!((s, body.as_str()), (200, SECRET));
    }
    // The echo origin shows the exact target forwarded.
    let origin = sluice_e2e::origin::Origin::start();
    let gw = gateway(origin.port, "");
    let r = request(gw.port, "GET", "/a/%7euser//x/../b%3f?k=%2F&v=1", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(origin.seen()[0].url, "/a/~user/b%3F?k=%2F&v=1");
}

#[test]
fn escaped_slash_and_semicolon_actions_are_configurable() {
    let origin = sluice_e2e::origin::Origin::start();
    let gw = gateway(
        origin.port,
        "  paths: { escaped_slashes: keep, semicolons: keep }",
    );
    let r = request(gw.port, "GET", "/files/admin%2fx;v=1", &[], b"");
    assert_eq!(r.status, 200);
    assert_eq!(origin.seen()[0].url, "/files/admin%2Fx;v=1");
    let gw = gateway(origin.port, "  paths: { escaped_slashes: decode }");
    let r = request(gw.port, "GET", "/files/admin%2fx", &[], b"");
    assert_eq!(
        r.status, 401,
        "decoded, the path is under the protected prefix"
    );
    let r = request(gw.port, "GET", "/files/admin;v=1", &[], b"");
    assert_eq!(r.status, 400, "semicolons are still refused");
}
