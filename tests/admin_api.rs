//! The read-only admin API (`GET /v1/...`) of the real binary: routes with their
//! plugins' configs and priorities, credentials redacted; upstream nodes with their
//! health as the active checks see it; Kafka clusters; the running file's hash and the
//! last reload, rejected or applied. With `admin.token`, `/metrics` and `/v1/...` need
//! the bearer token (a wrong one, or none, is `401`), the probes do not; an admin
//! listener off loopback without a token is a config error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sluice_e2e::client::{get, request, Response};
use sluice_e2e::gateway::{run_sluice, Gateway};
use sluice_e2e::origin::Origin;
use sluice_e2e::{free_port, scratch_dir, wait_for};

const TOKEN: &str = "e2e-admin-token-0123456789";

fn admin(gw: &Gateway, path: &str, token: Option<&str>) -> Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
    request(gw.admin, "GET", path, &headers, b"")
}

fn config(origin: u16, dead: u16, broker: u16, label: &str) -> String {
    format!(
        r#"
server: {{ listen: ["127.0.0.1:{{PORT}}"], grace_period: 1s }}
admin: {{ listen: "127.0.0.1:{{ADMIN}}", token: "{TOKEN}" }}
kafka:
  clusters:
    default:
      dev_broker: {{ listen: "127.0.0.1:{broker}", topics: [news] }}
upstreams:
  web:
    nodes: ["127.0.0.1:{origin}", "127.0.0.1:{dead}"]
    health_check: {{ kind: tcp, interval: 200ms }}
routes:
  - id: {label}
    match: {{ paths: ["/api/*"], methods: [GET] }}
    upstream: web
    plugins:
      limit-count: {{ count: 5, time_window: 60s }}
  - id: news
    match: {{ paths: ["/news"] }}
    plugins:
      kafka-sse: {{ topic: news, start: latest, token_keys: ["e2e-sse-token-key-0123456789abcdef"] }}
  - id: logged
    match: {{ paths: ["/logged"] }}
    upstream: web
    plugins:
      kafka-logger: {{ topic: news }}
      mocking: {{ status: 200 }}
  - id: ingest
    match: {{ paths: ["/ingest"], methods: [POST] }}
    plugins:
      key-auth: {{}}
      jwt-auth: {{}}
      consumer-restriction: {{ allow: [billing] }}
      limit-req: {{ rate: 10 }}
      kafka-divert: {{ topic: news }}
consumers:
  - name: billing
    key-auth: {{ key: "e2e-billing-key-0001" }}
  - name: mobile
    jwt-auth: {{ key: mobile-app, secret: "e2e-mobile-jwt-secret-0123456789abcdef" }}
"#
    )
}

#[test]
fn the_admin_api_reports_what_runs_and_redacts_credentials() {
    let origin = Origin::start();
    let dead = free_port();
    let gw = Gateway::start(&config(origin.port, dead, free_port(), "api"));

    // The token guards /metrics and /v1, not the probes.
    assert_eq!(admin(&gw, "/v1/routes", None).status, 401);
    assert_eq!(
        admin(&gw, "/v1/routes", Some("e2e-admin-token-0123456780")).status,
        401
    );
    assert_eq!(admin(&gw, "/metrics", None).status, 401);
    assert_eq!(admin(&gw, "/metrics", Some(TOKEN)).status, 200);
    assert_eq!(get(gw.admin, "/healthz").status, 200);
    assert_eq!(get(gw.admin, "/readyz").status, 200);

    let routes = admin(&gw, "/v1/routes", Some(TOKEN)).json();
    let api = &routes["routes"][0];
    assert_eq!(api["id"], "api");
    assert_eq!(api["match"]["paths"][0], "/api/*");
    assert_eq!(api["upstream"], "web");
    assert_eq!(api["plugins"]["limit-count"]["config"]["count"], 5);
    assert_eq!(api["plugins"]["limit-count"]["priority"], 1002);
    // Effective: the defaults the file leaves out are filled in.
    let lc = &api["plugins"]["limit-count"]["config"];
    assert_eq!(lc["time_window"], "1m");
    assert_eq!(lc["rejected_code"], 429);
    assert_eq!(lc["policy"], "local");
    assert_eq!(lc["on_store_error"], "allow");
    assert_eq!(lc["max_keys"], 100000);
    // Every plugin's effective config is shown (none falls back to the text as written,
    // which would lack the defaults): each has at least one field the file left out.
    for (route, plugin, default_field) in [
        (1, "kafka-sse", "keepalive"),
        (2, "kafka-logger", "delivery"),
        (2, "mocking", "body"),
        (3, "key-auth", "header"),
        (3, "jwt-auth", "leeway"),
        (3, "consumer-restriction", "rejected_code"),
        (3, "limit-req", "burst"),
        (3, "kafka-divert", "timeout"),
    ] {
        let cfg = &routes["routes"][route]["plugins"][plugin]["config"];
        assert!(!cfg[default_field].is_null(), "{plugin}: {cfg}");
    }
    let sse = &routes["routes"][1]["plugins"]["kafka-sse"]["config"];
    assert_eq!(sse["token_keys"], "<redacted>");
    assert!(!routes.to_string().contains("0123456789abcdef"));
    assert!(!routes.to_string().contains("e2e-billing-key"));

    // The dead node is reported down once the health check has seen it.
    let ups = wait_for(
        "the dead node to be unhealthy",
        Duration::from_secs(30),
        || {
            let u = admin(&gw, "/v1/upstreams", Some(TOKEN)).json();
            let nodes = u["upstreams"]["web"]["nodes"].as_array().unwrap().clone();
            nodes.iter().any(|n| n["healthy"] == false).then_some(nodes)
        },
    );
    let healthy: Vec<bool> = ups
        .iter()
        .map(|n| n["healthy"].as_bool().unwrap())
        .collect();
    assert_eq!(healthy.iter().filter(|h| **h).count(), 1, "{ups:?}");

    let clusters = wait_for(
        "the producer to see its broker",
        Duration::from_secs(30),
        || {
            let c = admin(&gw, "/v1/clusters", Some(TOKEN)).json();
            (c["clusters"]["default"]["brokers_up"].as_u64() >= Some(1)).then_some(c)
        },
    );
    assert_eq!(clusters["clusters"]["default"]["started"], true);
    assert_eq!(clusters["clusters"]["default"]["events_in_flight"], 0);
    assert_eq!(
        clusters["clusters"]["default"]["spool"],
        serde_json::Value::Null
    );
    assert_eq!(
        admin(&gw, "/v1/subscriptions", Some(TOKEN)).json()["subscriptions"],
        serde_json::json!([])
    );

    // The running file, then a rejected reload (the old file keeps running), then an
    // applied one.
    let first = admin(&gw, "/v1/config", Some(TOKEN)).json();
    assert_eq!(first["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(first["last_reload"], serde_json::Value::Null);
    // A secret written as a YAML number: the decoder would quote it in its message.
    gw.write_config(
        "redis: { address: \"127.0.0.1:6379\", password: 987654321987 }\nroutes: [ { id: broken } ]\n",
    );
    gw.signal(libc::SIGHUP);
    let rejected = wait_for("the rejected reload", Duration::from_secs(30), || {
        let c = admin(&gw, "/v1/config", Some(TOKEN)).json();
        (!c["last_reload"].is_null()).then_some(c)
    });
    assert_eq!(rejected["last_reload"]["applied"], false);
    assert!(rejected["last_reload"]["errors"][1]
        .as_str()
        .unwrap()
        .contains("routes[0]: missing field `match`"));
    assert_eq!(rejected["sha256"], first["sha256"], "still the old file");
    let errors = rejected["last_reload"]["errors"].to_string();
    assert!(!errors.contains("987654321987"), "{errors}");
    assert!(
        errors.contains("redis.password: invalid credential value (not shown)"),
        "{errors}"
    );
    assert!(!gw.logs().contains("987654321987"), "nor in the log");
    gw.write_config(&config(origin.port, dead, free_port(), "api2"));
    gw.signal(libc::SIGHUP);
    let applied = wait_for("the applied reload", Duration::from_secs(30), || {
        let c = admin(&gw, "/v1/config", Some(TOKEN)).json();
        (c["last_reload"]["applied"] == true).then_some(c)
    });
    assert_ne!(applied["sha256"], first["sha256"]);
    assert_eq!(
        admin(&gw, "/v1/routes", Some(TOKEN)).json()["routes"][0]["id"],
        "api2"
    );
}

#[test]
fn an_admin_listener_off_loopback_needs_a_token() {
    let f = scratch_dir("admin").join("conf.yaml");
    std::fs::write(&f, "admin: { listen: \"0.0.0.0:9180\" }\n").unwrap();
    let out = run_sluice(&["-t", "-c", f.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(":1:18: admin.listen: an admin listener off loopback needs `admin.token`"),
        "{stderr}"
    );
    std::fs::write(&f, "admin: { listen: \"0.0.0.0:9180\", token: short }\n").unwrap();
    let out = run_sluice(&["-t", "-c", f.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("admin.token: must be at least 16 visible ASCII characters"),
        "{stderr}"
    );
}
