//! `sluice tail` does not hand request bytes to the terminal: a diverted body with
//! terminal escape sequences (set the title, clear the screen) and a carriage return is
//! printed with those characters escaped; `--raw` prints them as they are.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_e2e::client::request;
use sluice_e2e::gateway::{run_sluice, Gateway};
use sluice_e2e::kafka::Kafka;

#[test]
fn tail_escapes_control_characters_unless_raw() {
    let kafka = Kafka::start();
    kafka.create_topic("inbox", 1);
    let gw = Gateway::start(&format!(
        r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], grace_period: 1s }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
kafka:
  clusters:
    default: {{ brokers: ["{}"], linger: 1ms }}
routes:
  - id: inbox
    match: {{ paths: ["/inbox"], methods: [POST] }}
    plugins:
      kafka-divert: {{ topic: inbox, idempotency: {{ scope: client_ip }} }}
"#,
        kafka.bootstrap
    ));
    let evil = b"hello\x1b]0;owned\x07\x1b[2J\r--- inbox/0@99 key=fake\n\xc2\x9b31m";
    assert_eq!(request(gw.port, "POST", "/inbox", &[], evil).status, 202);
    let tail = |extra: &[&str]| {
        let mut args = vec![
            "tail",
            "--brokers",
            kafka.bootstrap.as_str(),
            "inbox",
            "--max",
            "1",
        ];
        args.extend_from_slice(extra);
        let out = run_sluice(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let safe = tail(&[]);
    assert!(!safe.contains(&0x1b), "an escape byte reached the terminal");
    assert!(!safe.contains(&b'\r') && !safe.contains(&0x07));
    assert!(!safe.windows(2).any(|w| w == b"\xc2\x9b"), "a C1 control");
    let text = String::from_utf8_lossy(&safe);
    assert!(
        text.contains("hello\\u{1b}]0;owned\\u{7}\\u{1b}[2J\\u{d}"),
        "{text}"
    );
    let raw = tail(&["--raw"]);
    assert!(
        raw.windows(evil.len()).any(|w| w == evil),
        "--raw keeps the bytes"
    );
}
