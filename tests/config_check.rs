//! `sluice -t -c FILE` with the real binary: a valid file exits 0; a bad file exits 1
//! and prints every error as `FILE:LINE:COL: path: message`, plugin errors included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_e2e::gateway::run_sluice;
use sluice_e2e::scratch_dir;

fn check(yaml: &str) -> (bool, String, String) {
    let f = scratch_dir("check").join("conf.yaml");
    std::fs::write(&f, yaml).unwrap();
    let out = run_sluice(&["-t", "-c", f.to_str().unwrap()]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).replace(f.to_str().unwrap(), "FILE"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The credentials `conf/reference.yaml` reads from the environment.
const REFERENCE_SECRETS: [(&str, &str); 5] = [
    ("BILLING_API_KEY", "e2e-billing-key-0001"),
    ("DASHBOARD_API_KEY", "e2e-dashboard-key-0001"),
    (
        "MOBILE_JWT_SECRET",
        "e2e-mobile-jwt-secret-0123456789abcdef",
    ),
    (
        "WEBHOOK_SECRET",
        "whsec_ZTJlLXdlYmhvb2stc2VjcmV0LTAxMjM0NTY3",
    ),
    ("SSE_TOKEN_KEY", "e2e-sse-token-key-0123456789abcdef"),
];

/// `sluice -t -c f` from the repository root (relative paths in the files, such as the
/// example TLS certificate, are relative to the working directory), with `env` set and
/// the reference's credentials otherwise unset.
fn check_shipped(f: &str, env: &[(&str, &str)]) -> std::process::Output {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cmd = std::process::Command::new(sluice_e2e::gateway::sluice_bin());
    cmd.args(["-t", "-c", f]).current_dir(&root);
    for (name, _) in REFERENCE_SECRETS {
        cmd.env_remove(name);
    }
    cmd.envs(env.iter().copied());
    cmd.output().unwrap()
}

#[test]
fn quickstart_and_reference_configs_are_valid() {
    for f in ["conf/quickstart.yaml", "conf/reference.yaml"] {
        let out = check_shipped(f, &REFERENCE_SECRETS);
        assert!(
            out.status.success(),
            "{f}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("is valid"));
    }
}

#[test]
fn no_credential_has_a_usable_default() {
    // Without the environment, every credential of the reference file is an error at
    // its position: none falls back to a value shipped in the file.
    let out = check_shipped("conf/reference.yaml", &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for (name, _) in REFERENCE_SECRETS {
        assert!(
            stderr
                .lines()
                .any(|l| l.starts_with("conf/reference.yaml:") && l.contains(name)),
            "{name} is not reported:\n{stderr}"
        );
    }
    // A `${VAR:-default}` fallback on a credential is refused even when it would be valid.
    let (ok, stderr, _) = check(
        "consumers:\n  - name: a\n    key-auth: { key: \"${E2E_UNSET_KEY:-change-me-0001}\" }\n",
    );
    assert!(!ok);
    assert!(
        stderr.contains("FILE:3:22: consumers[0].key-auth.key: a credential never falls back to a default: set `E2E_UNSET_KEY`"),
        "{stderr}"
    );
}

/// `sluice plugins`: (name, priority, kind) of every registered plugin.
fn registered() -> Vec<(String, String, String)> {
    let out = run_sluice(&["plugins"]);
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            assert_eq!(f.len(), 3, "{l}");
            (f[0].to_string(), f[1].to_string(), f[2].to_string())
        })
        .collect()
}

/// The README's plugin table (name, priority, kind) is the registry's: a plugin added,
/// removed or re-prioritized without the README fails here.
#[test]
fn readme_plugin_table_matches_the_registry() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let table = readme
        .split("\n## Plugins\n")
        .nth(1)
        .expect("a Plugins section")
        .split("\n\n")
        .find(|block| block.trim_start().starts_with("| plugin |"))
        .expect("a plugin table");
    let mut rows: Vec<(String, String, String)> = table
        .lines()
        .filter(|l| l.starts_with("| ["))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let name = cells[1].split('`').nth(1).unwrap_or(cells[1]).to_string();
            (name, cells[2].to_string(), cells[3].to_string())
        })
        .collect();
    let mut want = registered();
    rows.sort();
    want.sort();
    assert_eq!(
        rows, want,
        "README.md's plugin table (name | priority | kind) drifted from `sluice plugins`"
    );
    // Every plugin crate under plugins/ is registered.
    let crates: std::collections::BTreeSet<String> = std::fs::read_dir(root.join("plugins"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let names: std::collections::BTreeSet<String> = want.into_iter().map(|(n, _, _)| n).collect();
    assert_eq!(crates, names, "plugins/ and the registry differ");
}

#[test]
fn consumer_credentials_are_checked_by_their_plugins() {
    let yaml = "consumers:\n  - name: billing\n    key-auth: { key: short }\n  - name: billing\n    key-auth: { key: \"0123456789\" }\n  - name: \"bad name\"\n    key-auth: { key: \"0123456789\" }\n  - { name: x, jwt: 1, key-auth: {} }\n  - name: a\n    jwt-auth: { key: k, secret: short }\n";
    let (ok, stderr, _) = check(yaml);
    assert!(!ok);
    for e in [
        "FILE:4:11: consumers[1].name: duplicate consumer name (first used at consumers[0])",
        "FILE:6:11: consumers[2].name: must be 1-64 letters, digits, `_`, `-` or `.`",
        "FILE:8:16: consumers[3].jwt: unknown field or authentication plugin `jwt` (fields: name; authentication plugins: jwt-auth, key-auth)",
        "FILE:3:22: consumers[0].key-auth.key: an API key needs at least 8 characters",
        "FILE:7:22: consumers[2].key-auth.key: consumer `billing` has the same key",
        "FILE:8:34: consumers[3].key-auth: missing field `key`",
        "FILE:10:33: consumers[4].jwt-auth.secret: an HMAC secret needs at least 32 characters",
    ] {
        assert!(stderr.lines().any(|l| l.starts_with(e)), "missing: {e}\nstderr:\n{stderr}");
    }
    assert!(stderr.contains("7 error(s)"), "{stderr}");
}

#[test]
fn subscription_plugin_blocks_are_checked() {
    let yaml = "subscriptions:\n  - { id: a, topics: [t], kafka-webhok: { url: \"http://x/\" } }\n  - { id: b, topics: [t] }\nkafka: { clusters: { default: { brokers: [\"127.0.0.1:9092\"] } } }\n";
    let (ok, stderr, _) = check(yaml);
    assert!(!ok);
    for e in [
        "FILE:2:27: subscriptions[0].kafka-webhok: unknown field or subscription plugin `kafka-webhok` (fields: id, cluster, topics, group, start, properties; plugins: kafka-webhook)",
        "FILE:3:5: subscriptions[1]: a subscription needs the block of the plugin that delivers its records (one of: kafka-webhook)",
    ] {
        assert!(stderr.lines().any(|l| l.starts_with(e)), "missing: {e}\nstderr:\n{stderr}");
    }
}

#[test]
fn bad_file_reports_every_error_and_exits_1() {
    let yaml = r#"server:
  listen: ["0.0.0.0:80x"]
kafka:
  clusters:
    default:
      brokers: ["127.0.0.1:9092"]
      properties: { no.such.property: 1, compression.type: lz4 }
upstreams:
  orders: { nodes: ["127.0.0.1:9000"] }
routes:
  - id: orders
    match: { paths: ["/api/*"] }
    upstream: orders
    plugins:
      kafka-logger: { cluster: nope, topic: "bad topic!", kee: "{route_id}" }
  - id: orders
    match: { paths: ["/b"] }
    upstream: nowhere
    plugins:
      kafka-logger: { topic: "{header.x-t", max_req_body_bytes: lots }
      mocking: { status: 99 }
      rate-limit: {}
"#;
    let (ok, stderr, _) = check(yaml);
    assert!(!ok, "a bad file must fail the check");
    let mut known: Vec<String> = registered()
        .into_iter()
        .filter(|(_, _, kind)| kind != "subscription")
        .map(|(name, _, _)| name)
        .collect();
    known.sort();
    let known = known.join(", ");
    let unknown = format!(
        "FILE:22:7: routes[1].plugins.rate-limit: unknown plugin `rate-limit` (known: {known})"
    );
    let expected = [
        "FILE:2:12: server.listen[0]: \"0.0.0.0:80x\" is not an `ip:port` address",
        "FILE:7:39: kafka.clusters.default.properties.no.such.property: rejected by librdkafka",
        "FILE:15:59: routes[0].plugins.kafka-logger.kee: unknown field `kee`",
        "FILE:16:9: routes[1].id: duplicate route id `orders` (first used at routes[0])",
        "FILE:18:15: routes[1].upstream: unknown upstream `nowhere` (defined: orders)",
        "FILE:20:65: routes[1].plugins.kafka-logger.max_req_body_bytes: invalid size \"lots\"",
        "FILE:21:26: routes[1].plugins.mocking.status: must be an HTTP status (100-599)",
        &unknown,
    ];
    let lines: Vec<&str> = stderr.lines().collect();
    for e in expected {
        assert!(
            lines.iter().any(|l| l.starts_with(e)),
            "missing: {e}\nstderr:\n{stderr}"
        );
    }
    // Every error line is positioned; the summary line counts them.
    let errors: Vec<&&str> = lines.iter().filter(|l| l.starts_with("FILE:")).collect();
    assert_eq!(errors.len(), expected.len(), "stderr:\n{stderr}");
    assert!(
        stderr.contains(&format!("{} error(s)", expected.len())),
        "{stderr}"
    );
}

#[test]
fn plugin_semantic_errors_are_reported_together() {
    let yaml = r#"kafka:
  clusters:
    default: { brokers: ["127.0.0.1:9092"] }
    fast: { brokers: ["127.0.0.1:9092"], acks: leader }
upstreams:
  u: { nodes: ["127.0.0.1:9000"] }
routes:
  - id: r
    match: { paths: ["/r"] }
    upstream: u
    plugins:
      kafka-logger: { cluster: other, topic: "bad topic!", key: "{nope}", redact_headers: ["bad header"] }
  - id: t
    match: { paths: ["/t//x", "/t/%61/*"] }
    plugins:
      kafka-divert: { topic: "ev.{path.1}", idempotency: { scope: consumer } }
  - id: t2
    match: { paths: ["/t2"] }
    plugins:
      kafka-divert: { topic: fixed, topics_allowed: [other, "bad name*", "*"] }
      kafka-logger: { topic: log, include_resp_body: true, max_resp_body_bytes: 2MiB }
  - id: t3
    match: { paths: ["/t3"] }
    plugins:
      kafka-divert: { cluster: fast, topic: t3, idempotency: { scope: global } }
"#;
    let (ok, stderr, _) = check(yaml);
    assert!(!ok);
    for e in [
        "FILE:14:22: routes[1].match.paths[0]: path \"/t//x\" is not normalized: requests are matched after normalization, write \"/t/x\"",
        "FILE:14:31: routes[1].match.paths[1]: path \"/t/%61/*\" is not normalized: requests are matched after normalization, write \"/t/a/*\"",
        "FILE:16:30: routes[1].plugins.kafka-divert.topic: a topic rendered from request data needs `topics_allowed`",
        "FILE:16:67: routes[1].plugins.kafka-divert.idempotency.scope: `consumer` needs an authentication plugin",
        "FILE:20:21: routes[2].plugins.kafka-divert.idempotency: this route does not authenticate: choose `idempotency: { scope: client_ip }`",
        "FILE:20:61: routes[2].plugins.kafka-divert.topics_allowed[1]: \"bad name*\" is neither a Kafka topic name nor a `prefix*`",
        "FILE:20:74: routes[2].plugins.kafka-divert.topics_allowed[2]: \"*\" is neither",
        "FILE:20:53: routes[2].plugins.kafka-divert.topics_allowed: does not allow the route's own topic \"fixed\"",
        "FILE:25:21: routes[3].plugins.kafka-divert.acks: cluster `fast` has `acks: leader`: a 202 after the leader alone acknowledged can be lost when the leader fails",
        "FILE:21:81: routes[2].plugins.kafka-logger.max_resp_body_bytes: can never fit: the cluster's records are at most 1000000 bytes (`message.max.bytes`); use at most 997952 bytes",
        "FILE:12:32: routes[0].plugins.kafka-logger.cluster: unknown cluster `other`",
        "FILE:12:46: routes[0].plugins.kafka-logger.topic: \"bad topic!\" is not a valid Kafka topic name",
        "FILE:12:65: routes[0].plugins.kafka-logger.key: unknown placeholder `{nope}`",
        "FILE:12:92: routes[0].plugins.kafka-logger.redact_headers[0]: \"bad header\" is not a header name",
    ] {
        assert!(stderr.lines().any(|l| l.starts_with(e)), "missing: {e}\nstderr:\n{stderr}");
    }
}

#[test]
fn missing_file_is_a_clear_error() {
    let out = run_sluice(&["-t", "-c", "/nonexistent/sluice.yaml"]);
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("/nonexistent/sluice.yaml:1:1: cannot read the file"),
        "{e}"
    );
}

#[test]
fn subscription_errors_are_reported_together() {
    let yaml = r#"kafka:
  clusters:
    default: { brokers: ["127.0.0.1:9092"] }
subscriptions:
  - id: hook
    topics: ["bad topic!"]
    properties: { group.id: mine, no.such.thing: 1 }
    kafka-webhook: { url: "http://x/", retires: [] }
  - id: hook
    cluster: other
    topics: [orders]
    kafka-webhook: { url: "ftp://x/", method: "GE T", timeout: 0s, headers: ["bad header"] }
  - id: nohook
    topics: [orders]
  - id: bad.values
    topics: [orders]
    kafka-webhook: { url: "http://x/{nope}", secrets: ["whsec_!!"], concurrency: 0, dlq_topic: "dlq of {topic}" }
"#;
    let (ok, stderr, _) = check(yaml);
    assert!(!ok);
    let expected = [
        "FILE:6:14: subscriptions[0].topics[0]: \"bad topic!\" is not a valid Kafka topic name",
        "FILE:7:29: subscriptions[0].properties.group.id: set by Sluice (use `group` and `start`)",
        "FILE:7:50: subscriptions[0].properties.no.such.thing: rejected by librdkafka",
        "FILE:8:40: subscriptions[0].kafka-webhook.retires: unknown field `retires`",
        "FILE:9:9: subscriptions[1].id: duplicate subscription id `hook` (first used at subscriptions[0])",
        "FILE:10:14: subscriptions[1].cluster: unknown cluster `other`",
        "FILE:12:27: subscriptions[1].kafka-webhook.url: \"ftp://x/\" must start with http:// or https://",
        "FILE:12:47: subscriptions[1].kafka-webhook.method: \"GE T\" is not an HTTP method",
        "FILE:12:64: subscriptions[1].kafka-webhook.timeout: must be greater than 0",
        "FILE:12:78: subscriptions[1].kafka-webhook.headers[0]: \"bad header\" is not a header name",
        "FILE:13:5: subscriptions[2]: a subscription needs the block of the plugin that delivers its records (one of: kafka-webhook)",
        "FILE:17:27: subscriptions[3].kafka-webhook.url: unknown placeholder `{nope}`",
        "FILE:17:56: subscriptions[3].kafka-webhook.secrets[0]: ",
        "FILE:17:82: subscriptions[3].kafka-webhook.concurrency: must be between 1 and 1024",
        "FILE:17:96: subscriptions[3].kafka-webhook.dlq_topic: must be a topic name",
    ];
    for e in expected {
        assert!(
            stderr.lines().any(|l| l.starts_with(e)),
            "missing: {e}\nstderr:\n{stderr}"
        );
    }
    assert!(
        stderr.contains(&format!("{} error(s)", expected.len())),
        "{stderr}"
    );
}

#[test]
fn routes_whose_authentication_a_neighbour_undoes_are_warned_about() {
    let yaml = r#"consumers:
  - name: a
    key-auth: { key: "aaaaaaaaaaaa" }
upstreams:
  u: { nodes: ["127.0.0.1:9"] }
routes:
  - id: orders
    match: { paths: ["/api/orders"], methods: [GET, POST] }
    upstream: u
    plugins: { key-auth: {} }
  - id: admin
    match: { paths: ["/admin/*"] }
    upstream: u
    plugins: { key-auth: {} }
  - id: safe
    match: { paths: ["/safe", "/safe/"] }
    upstream: u
    plugins: { key-auth: {} }
  - id: all
    match: { paths: ["/*"] }
    upstream: u
"#;
    let (ok, stderr, _) = check(yaml);
    assert!(ok, "warnings, not errors: {stderr}");
    for w in [
        "route `orders` authenticates `/api/orders` for GET, POST, but HEAD, PUT, PATCH, DELETE, OPTIONS, PROPFIND reach route `all` without authentication",
        "route `orders` authenticates `/api/orders`, but `/api/orders/` reaches route `all` without authentication",
        "route `admin` authenticates `/admin/`, but `/admin` reaches route `all` without authentication",
    ] {
        assert!(stderr.contains(w), "missing warning: {w}\n{stderr}");
    }
    assert!(!stderr.contains("route `safe`"), "{stderr}");
}

#[test]
fn redis_section_and_policy_errors_have_positions() {
    let (ok, stderr, _) = check(
        "redis:\n  address: nohost\n  timeout: 0s\n  key_prefix: \"has space\"\nroutes:\n  - id: r\n    match: { paths: [\"/\"] }\n    plugins:\n      limit-count: { count: 1, time_window: 1s, policy: sliding, window_type: fixed }\n      mocking: { status: 200 }\n",
    );
    assert!(!ok);
    for line in [
        "FILE:2:12: redis.address: \"nohost\" is not a `host:port` address",
        "FILE:3:12: redis.timeout: must be between 1ms and 10s",
        "FILE:4:15: redis.key_prefix: must be at most 64 visible ASCII characters",
        "FILE:9:79: routes[0].plugins.limit-count.window_type: conflicts with `policy: sliding` (an earlier spelling of `window_type`)",
    ] {
        assert!(stderr.lines().any(|l| l == line), "{line}\nnot in:\n{stderr}");
    }
    // `policy: redis` without a `redis:` section.
    let (ok, stderr, _) = check(
        "routes:\n  - id: r\n    match: { paths: [\"/\"] }\n    plugins:\n      limit-count: { count: 1, time_window: 1s, policy: redis }\n      mocking: { status: 200 }\n",
    );
    assert!(!ok);
    assert!(
        stderr.lines().any(|l| l
            == "FILE:5:57: routes[0].plugins.limit-count.policy: `redis` needs a valid top-level `redis:` section"),
        "{stderr}"
    );
}

/// The translators' semantic errors, each with its position (one plugin per route).
#[test]
fn translator_plugin_errors_have_positions() {
    let yaml = r#"kafka:
  clusters:
    default: { brokers: ["127.0.0.1:9092"] }
routes:
  - id: ws
    match: { paths: ["/ws"] }
    plugins:
      kafka-websocket: { subscribe: { topic: "bad topic!", token_keys: [short] }, ping_interval: 90s }
  - id: ws-empty
    match: { paths: ["/ws2"] }
    plugins:
      kafka-websocket: { cluster: nope }
  - id: rr
    match: { paths: ["/rr"] }
    plugins:
      kafka-request-reply: { topic: "r.{path.1}", reply_topic: "bad topic!", max_pending: 0 }
  - id: cache
    match: { paths: ["/c/*"] }
    plugins:
      kafka-cache: { topic: items, key: "{nope}", page_size: 0, max_staleness: 1s }
"#;
    let (ok, stderr, _) = check(yaml);
    assert!(!ok);
    let expected = [
        "FILE:8:46: routes[0].plugins.kafka-websocket.subscribe.topic: \"bad topic!\" is not a valid Kafka topic name",
        "FILE:8:73: routes[0].plugins.kafka-websocket.subscribe.token_keys[0]: a token key needs at least 16 bytes",
        "FILE:8:98: routes[0].plugins.kafka-websocket.ping_interval: must be shorter than `idle_timeout`",
        "FILE:12:35: routes[1].plugins.kafka-websocket.cluster: unknown cluster `nope`",
        "FILE:12:24: routes[1].plugins.kafka-websocket: needs `subscribe`, `publish` or both",
        "FILE:16:37: routes[2].plugins.kafka-request-reply.topic: a topic rendered from request data needs `topics_allowed`",
        "FILE:16:64: routes[2].plugins.kafka-request-reply.reply_topic: \"bad topic!\" is not a valid Kafka topic name",
        "FILE:16:91: routes[2].plugins.kafka-request-reply.max_pending: must be greater than 0",
        "FILE:20:41: routes[3].plugins.kafka-cache.key: unknown placeholder `{nope}`",
        "FILE:20:62: routes[3].plugins.kafka-cache.page_size: must be between 1 and `max_page_size`",
        "FILE:20:80: routes[3].plugins.kafka-cache.max_staleness: must be at least 2s (the view is confirmed current every second)",
    ];
    for e in expected {
        assert!(
            stderr.lines().any(|l| l.starts_with(e)),
            "missing: {e}\nstderr:\n{stderr}"
        );
    }
    assert!(
        stderr.contains(&format!("{} error(s)", expected.len())),
        "{stderr}"
    );
}

/// Every metric the code registers (a `"sluice_..."` name in `crates/*/src` or
/// `plugins/*/src`) is in the README's metrics table, and every name in that table is
/// one the code registers: the README stays the user's truth about what to scrape.
#[test]
fn readme_metrics_table_matches_the_code() {
    use std::collections::BTreeSet;
    fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                rust_files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let names_in = |text: &str, open: &str, close: char| -> BTreeSet<String> {
        text.match_indices(open)
            .filter_map(|(i, _)| {
                let rest = &text[i + open.len()..];
                let end = rest.find(close)?;
                let name = &rest[..end];
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                    .then(|| format!("sluice_{name}"))
            })
            .collect()
    };
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for group in ["crates", "plugins"] {
        for e in std::fs::read_dir(root.join(group)).unwrap().flatten() {
            rust_files(&e.path().join("src"), &mut files);
        }
    }
    let mut code = BTreeSet::new();
    for f in &files {
        code.extend(names_in(
            &std::fs::read_to_string(f).unwrap(),
            "\"sluice_",
            '"',
        ));
    }
    assert!(code.len() > 40, "metric names found in the code: {code:?}");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let table: String = readme
        .lines()
        .filter(|l| l.starts_with("| `sluice_"))
        .map(|l| l.split('|').nth(1).unwrap_or_default().to_string() + "\n")
        .collect();
    let documented = names_in(&table, "`sluice_", '`');
    let missing: Vec<_> = code.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&code).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "README.md's metrics table drifted from the code: not documented {missing:?}, no longer in the code {stale:?}"
    );
}
