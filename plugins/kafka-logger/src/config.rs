//! `plugins.kafka-logger:` — the plugin's configuration. These docs are the user docs
//! (mirrored in the crate README).

use serde::Deserialize;
use sluice_core::config::units::ByteSize;

/// Configuration of one `kafka-logger` instance.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaLoggerConfig {
    /// The cluster (a name under `kafka.clusters`). Default `default`.
    #[serde(default = "default_cluster")]
    pub cluster: String,
    /// Topic template, e.g. `http-log` or `http-log.{route_id}`. Required. An event whose
    /// topic renders to an invalid name is discarded and counted (`invalid_topic`).
    pub topic: String,
    /// Topics a templated `topic` may render to: exact names and prefixes ending in `*`
    /// (e.g. `["ev.orders", "ev.payments", "tenant-*"]`); an event whose topic is not on it is
    /// discarded and counted (`topic_not_allowed`). Required when `topic`
    /// uses request data (`{path.N}`, `{header.X}`, `{query.X}`, `{host}`, claims,
    /// ...), so requests never choose (or, with broker-side auto-creation, create) a
    /// topic; optional otherwise. Default `[]`.
    #[serde(default)]
    pub topics_allowed: Vec<String>,
    /// Record key template, e.g. `{header.x-tenant}` or `{client_ip}`. Empty or absent:
    /// no key, records are spread over partitions.
    #[serde(default)]
    pub key: Option<String>,
    /// Delivery: `best_effort` (default: events that Kafka cannot take in time — queue
    /// full, broker down past the cluster's `delivery_timeout` — are discarded and
    /// counted) or `at_least_once` (they go to the cluster's disk spool and are replayed;
    /// needs `kafka.clusters.<name>.spool`).
    #[serde(default)]
    pub delivery: Delivery,
    /// Record layout: `json` (default: the entry as JSON, `content-type` header) or
    /// `cloudevents` (the same JSON as CloudEvents binary content mode: `ce_id`,
    /// `ce_source`, `ce_type`, `ce_specversion`, `ce_time` headers).
    #[serde(default)]
    pub format: Format,
    /// With `format: cloudevents`: the `ce_type`. Default `io.sluice.http.exchange`.
    #[serde(default = "default_ce_type")]
    pub ce_type: String,
    /// With `format: cloudevents`: the `ce_source`. Default `/routes/<route id>`.
    #[serde(default)]
    pub ce_source: Option<String>,
    /// Include the request body (up to `max_req_body_bytes`). Default `false`.
    #[serde(default)]
    pub include_req_body: bool,
    /// Cap on the logged request body; longer bodies are cut and flagged
    /// `body_truncated: true`. Default `512KiB`.
    #[serde(default = "default_body_cap")]
    pub max_req_body_bytes: ByteSize,
    /// Include the response body (up to `max_resp_body_bytes`). Default `false`.
    #[serde(default)]
    pub include_resp_body: bool,
    /// Cap on the logged response body. Default `512KiB`.
    #[serde(default = "default_body_cap")]
    pub max_resp_body_bytes: ByteSize,
    /// Request and response headers whose values are replaced by `[REDACTED]`.
    /// Replaces the default list: `authorization`, `proxy-authorization`, `cookie`,
    /// `set-cookie`, `x-api-key`, `apikey`.
    #[serde(default = "default_redact")]
    pub redact_headers: Vec<String>,
    /// Query parameters whose values are replaced by `[REDACTED]` in `uri` and `query`.
    /// The header and query names of the route's authentication plugins are always
    /// redacted too, whether authentication succeeded or not. Replaces the default list:
    /// `apikey`, `api_key`, `access_token`, `token`, `jwt`, `password`, `secret`.
    #[serde(default = "default_redact_query")]
    pub redact_query: Vec<String>,
    /// Log request and response headers at all. Default `true`.
    #[serde(default = "default_true")]
    pub include_headers: bool,
}

/// Delivery guarantee.
#[derive(Debug, Clone, Copy, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// Bounded memory; failures are discarded and counted.
    #[default]
    BestEffort,
    /// Failures go to the disk spool and are replayed.
    AtLeastOnce,
}

/// Record layout.
#[derive(Debug, Clone, Copy, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// The JSON entry as the value.
    #[default]
    Json,
    /// CloudEvents 1.0, Kafka binary content mode.
    Cloudevents,
}

fn default_cluster() -> String {
    "default".into()
}
fn default_ce_type() -> String {
    "io.sluice.http.exchange".into()
}
const fn default_body_cap() -> ByteSize {
    ByteSize(512 * 1024)
}
const fn default_true() -> bool {
    true
}
/// The default `redact_query` list.
pub fn default_redact_query() -> Vec<String> {
    [
        "apikey",
        "api_key",
        "access_token",
        "token",
        "jwt",
        "password",
        "secret",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

/// The default `redact_headers` list.
pub fn default_redact() -> Vec<String> {
    [
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "apikey",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

impl KafkaLoggerConfig {
    /// The Kafka target fields, for [`sluice_kafka::Destination::build`].
    pub fn target(&self) -> sluice_kafka::Target<'_> {
        sluice_kafka::Target {
            cluster: &self.cluster,
            topic: &self.topic,
            topics_allowed: &self.topics_allowed,
            key: self.key.as_deref(),
        }
    }
}
