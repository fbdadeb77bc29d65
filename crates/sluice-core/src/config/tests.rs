//! Table-driven tests of the loader: each bad config with its expected errors (line,
//! column, path, message), plus env expansion and plugin building.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use super::*;
use crate::plugin::{BuildScope, Phases, Plugin, PluginSpec, Registry};

/// A plugin with a typed config, to exercise plugin errors.
struct Probe;

#[derive(Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct ProbeConfig {
    topic: String,
    #[serde(default)]
    answer: bool,
}

struct ProbePlugin(bool);

#[async_trait]
impl Plugin for ProbePlugin {
    fn phases(&self) -> Phases {
        Phases::NONE
    }
    fn answers_requests(&self) -> bool {
        self.0
    }
}

impl PluginSpec for Probe {
    const NAME: &'static str = "probe";
    const PRIORITY: i32 = 1;
    type Config = ProbeConfig;
    fn build(
        &self,
        c: ProbeConfig,
        at: &FieldPath,
        _scope: &BuildScope<'_>,
    ) -> Result<Arc<dyn Plugin>, Vec<FieldError>> {
        if c.topic.is_empty() {
            return Err(vec![FieldError::value(
                at.key("topic"),
                "must not be empty",
            )]);
        }
        Ok(Arc::new(ProbePlugin(c.answer)))
    }
}

fn registry() -> Registry {
    let mut r = Registry::new();
    r.register(Probe);
    r
}

fn env(name: &str) -> Option<String> {
    (name == "BROKER").then(|| "kafka-1:9092".to_string())
}

fn load(text: &str) -> Result<Config, Vec<String>> {
    let mut doc = ConfigDoc::parse("t.yaml", text, &env).map_err(|e| lines(&e))?;
    let _router = doc.build_routes(&registry());
    doc.finish().map_err(|e| lines(&e))
}

fn lines(e: &ConfigErrors) -> Vec<String> {
    e.0.iter().map(|e| e.to_string()).collect()
}

const GOOD: &str = r#"
server:
  listen: ["127.0.0.1:8080"]
kafka:
  clusters:
    default:
      brokers: ["${BROKER}"]
      properties: { compression.type: lz4, batch.num.messages: 1000 }
upstreams:
  orders:
    nodes: ["127.0.0.1:9000", "127.0.0.1:9001"]
    balance: consistent_hash
    hash_key: "{header.x-user}"
routes:
  - id: orders-api
    match: { paths: ["/api/orders", "/api/orders/*"], methods: [GET, post], hosts: [] }
    upstream: orders
    plugins:
      probe: { topic: http-log }
  - id: ingest
    match: { paths: ["/events/*"] }
    plugins:
      probe: { topic: events, answer: true }
"#;

#[test]
fn good_config_loads_with_env_expansion() {
    let c = load(GOOD).unwrap();
    assert_eq!(c.clusters["default"].brokers, ["kafka-1:9092"]);
    assert_eq!(c.routes.len(), 2);
    assert_eq!(c.server.threads, 2);
    assert_eq!(c.admin.listen, "127.0.0.1:9180");
    assert_eq!(c.upstreams["orders"].retries, 1);
}

/// (config, expected errors as `line:col: path: message-fragment`)
const BAD: &[(&str, &[&str])] = &[
    (
        "servr: {}\nroutes: []\n",
        &["1:1: servr: unknown field `servr`"],
    ),
    (
        "server:\n  listen: [\"nope\"]\n  threads: 0\n  treads: 3\n",
        &["4:3: server.treads: unknown field `treads`"],
    ),
    (
        "server:\n  listen: [\"nope\"]\n  threads: 0\n",
        &[
            "2:12: server.listen[0]: \"nope\" is not an `ip:port` address",
            "3:12: server.threads: must be between 1 and 256",
        ],
    ),
    (
        "server:\n  threads: many\n",
        &["2:12: server.threads: wrong type: string \"many\", expected usize"],
    ),
    (
        "kafka:\n  clusters:\n    a: {}\n    b:\n      brokers: [\"x\"]\n      dev_broker: {}\n      properties: { linger.ms: 5 }\n      queue_max_bytes: 10\n",
        &[
            "3:8: kafka.clusters.a: set `brokers`",
            "5:16: kafka.clusters.b.brokers: `brokers` and `dev_broker` exclude each other",
            "5:17: kafka.clusters.b.brokers[0]: \"x\" is not a `host:port` broker address",
            "7:21: kafka.clusters.b.properties.linger.ms: set this with the cluster's `linger` field",
            "8:24: kafka.clusters.b.queue_max_bytes: must be between 1KiB and 2GiB",
        ],
    ),
    (
        "kafka:\n  clusters:\n    a: { brokers: [\"${MISSING}\"] }\n",
        &["3:20: kafka.clusters.a.brokers[0]: environment variable `MISSING` is not set"],
    ),
    (
        "upstreams:\n  u:\n    nodes: []\n    hash_key: \"{client_ip}\"\n    pass_host: rewrite\n    connect_timeout: 5\n",
        &["6:22: upstreams.u.connect_timeout: expected a duration such as `5s` or `250ms`"],
    ),
    (
        "upstreams:\n  u:\n    nodes: []\n    hash_key: \"{client_ip}\"\n    pass_host: rewrite\n",
        &[
            "3:12: upstreams.u.nodes: at least one node is needed",
            "4:5: upstreams.u.hash_key: `hash_key` needs `balance: consistent_hash`",
            "5:16: upstreams.u.pass_host: `pass_host: rewrite` needs `upstream_host`",
        ],
    ),
    (
        concat!(
            "upstreams: { u: { nodes: [\"127.0.0.1:1\"] } }\n",
            "routes:\n",
            "  - id: a\n",
            "    match: { paths: [\"/x\"], methods: [GETT, \"B D\"] }\n",
            "    upstream: missing\n",
            "  - id: a\n",
            "    match: { paths: [\"x\", \"/a/*/b\"], hosts: [\"bad host\"] }\n",
            "    upstream: u\n",
            "    plugins:\n",
            "      nope: {}\n",
            "      probe: { topic: \"\", extra: 1 }\n",
            "  - id: c\n",
            "    match: { paths: [\"/c\"], methodz: [] }\n",
        ),
        &[
            "4:45: routes[0].match.methods[1]: \"B D\" is not an HTTP method",
            "5:15: routes[0].upstream: unknown upstream `missing` (defined: u)",
            "6:9: routes[1].id: duplicate route id `a` (first used at routes[0])",
            "7:22: routes[1].match.paths[0]: path \"x\" must start with `/`",
            "7:27: routes[1].match.paths[1]: path \"/a/*/b\": `*` is only allowed at the end",
            "7:46: routes[1].match.hosts[0]: host \"bad host\" must be a host name",
            "10:7: routes[1].plugins.nope: unknown plugin `nope` (known: probe)",
            "11:27: routes[1].plugins.probe.extra: unknown field `extra`",
            "13:29: routes[2].match.methodz: unknown field `methodz`",
        ],
    ),
    (
        "routes:\n  - id: lonely\n    match: { paths: [\"/x\"] }\n  - id: dup\n    match: { paths: [\"/x\"] }\n    plugins: { probe: { topic: t, answer: true } }\n",
        &[
            "2:5: routes[0].upstream: the route has no `upstream`",
            "5:12: routes[1].match: path \"/x\" with the same methods and hosts is already taken by route `lonely`",
        ],
    ),
    (
        "routes:\n  - id: p\n    match: { paths: [\"/p\"] }\n    plugins: { probe: { topic: \"\", answer: true } }\n",
        &["4:32: routes[0].plugins.probe.topic: must not be empty"],
    ),
    (
        "server: [\n",
        &["2:1: invalid YAML"],
    ),
    (
        "server:\n  limits: { header_timeout: 0s, max_header_bytes: 10, max_headers: 999, read_buffer: 1KiB }\n",
        &[
            "2:29: server.limits.header_timeout: must be between 1s and 5m",
            "2:51: server.limits.max_header_bytes: must be between 1KiB and 1MiB",
            "2:68: server.limits.max_headers: must be between 1 and 256",
            "2:86: server.limits.read_buffer: must be between 4KiB and 1MiB",
        ],
    ),
    (
        "kafka:\n  clusters:\n    k:\n      brokers: [\"b:9093\"]\n      tls: { cert_file: /nonexistent/c.pem }\n      sasl: { mechanism: GSSAPI, username: u, password: p }\n      properties: { security.protocol: ssl }\n",
        &[
            "5:12: kafka.clusters.k.tls: `cert_file` and `key_file` go together (mutual TLS)",
            "5:25: kafka.clusters.k.tls.cert_file: cannot read /nonexistent/c.pem",
            "6:26: kafka.clusters.k.sasl.mechanism: one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512",
            "7:21: kafka.clusters.k.properties.security.protocol: set this with the cluster's `tls` / `sasl` fields",
        ],
    ),
    (
        "consumers:\n  - name: billing\n  - name: billing\n  - name: \"bad name\"\n  - { name: x, jwt: 1 }\n",
        &[
            "3:11: consumers[1].name: duplicate consumer name (first used at consumers[0])",
            "4:11: consumers[2].name: must be 1-64 letters, digits, `_`, `-` or `.`",
            "5:16: consumers[3].jwt: unknown field or authentication plugin `jwt` (fields: name; authentication plugins: )",
        ],
    ),
];

#[test]
fn bad_configs_report_every_error_with_position() {
    for (text, expected) in BAD {
        let got = load(text).expect_err(text);
        assert_eq!(
            got.len(),
            expected.len(),
            "config:\n{text}\ngot:\n{}\nexpected:\n{}",
            got.join("\n"),
            expected.join("\n")
        );
        for (g, e) in got.iter().zip(expected.iter()) {
            assert!(
                g.starts_with(&format!("t.yaml:{e}")) || g.contains(&format!("t.yaml:{e}")),
                "config:\n{text}\ngot:      {g}\nexpected: t.yaml:{e}…\nall:\n{}",
                got.join("\n")
            );
        }
    }
}
