//! Credentials never reach Kafka through the audit log: a refused request (`401`) and an
//! accepted one that keeps its key (`hide_credentials: false`) are logged with the
//! key-auth query argument and header redacted, whatever names the route configured,
//! as are the logger's default credential parameters (`token`, `access_token`, ...).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sluice_e2e::client::request;
use sluice_e2e::gateway::Gateway;
use sluice_e2e::kafka::{read_topic, Kafka};
use sluice_e2e::origin::Origin;

const KEY: &str = "ops-key-5e3c9a1f7d";

/// A request: path, headers, expected status.
type Attempt<'a> = (&'a str, &'a [(&'a str, &'a str)], u16);

#[test]
fn credentials_in_the_query_or_custom_headers_are_never_logged() {
    let kafka = Kafka::start();
    kafka.create_topic("audit", 1);
    let origin = Origin::start();
    let gw = Gateway::start(&format!(
        r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], grace_period: 1s }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}" }}
kafka:
  clusters:
    default: {{ brokers: ["{}"], linger: 1ms }}
upstreams:
  origin: {{ nodes: ["127.0.0.1:{}"] }}
consumers:
  - name: ops
    key-auth: {{ key: "{KEY}" }}
routes:
  - id: logged
    match: {{ paths: ["/logged/*"] }}
    upstream: origin
    plugins:
      key-auth: {{ header: x-my-key, query: my_key, hide_credentials: false }}
      kafka-logger: {{ topic: audit }}
"#,
        kafka.bootstrap, origin.port
    ));
    let attempts: &[Attempt] = &[
        ("/logged/a?my_key=wrong-guess-1&x=1", &[], 401),
        ("/logged/b", &[("x-my-key", "wrong-guess-2")], 401),
        (
            "/logged/c?my_key=ops-key-5e3c9a1f7d&access_token=tok-3",
            &[],
            200,
        ),
        ("/logged/d?Token=tok-4", &[("x-my-key", KEY)], 200),
    ];
    for (path, headers, status) in attempts {
        assert_eq!(
            request(gw.port, "GET", path, headers, b"").status,
            *status,
            "{path}"
        );
    }
    let records = read_topic(
        &kafka.bootstrap,
        "audit",
        1,
        Duration::from_millis(500),
        Duration::from_secs(30),
    );
    assert_eq!(records.len(), attempts.len());
    for r in &records {
        let text = String::from_utf8_lossy(&r.value);
        for secret in ["wrong-guess-1", "wrong-guess-2", KEY, "tok-3", "tok-4"] {
            assert!(!text.contains(secret), "{secret} reached Kafka: {text}");
        }
    }
    let uris: Vec<String> = records
        .iter()
        .map(|r| r.json()["request"]["uri"].as_str().unwrap().to_string())
        .collect();
    assert!(
        uris.contains(&"/logged/a?my_key=[REDACTED]&x=1".to_string()),
        "{uris:?}"
    );
    assert!(
        uris.contains(&"/logged/d?Token=[REDACTED]".to_string()),
        "{uris:?}"
    );
}
