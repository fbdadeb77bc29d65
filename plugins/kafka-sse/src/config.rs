//! `plugins.kafka-sse:` — the plugin's configuration. These docs are the user docs
//! (mirrored in the crate README).

use std::time::Duration;

use serde::Deserialize;
use sluice_core::config::units::HumanDuration;

/// Configuration of one `kafka-sse` instance.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSseConfig {
    /// The cluster (a name under `kafka.clusters`). Default `default`.
    #[serde(default = "default_cluster")]
    pub cluster: String,
    /// The topic to stream. Required.
    pub topic: String,
    /// Where a stream without `Last-Event-ID` starts: `latest` (default: only new
    /// records), `earliest`, or an RFC 3339 time (the first record at or after it).
    #[serde(default = "default_start")]
    pub start: String,
    /// Only records whose key equals this template's value, e.g. `{path.2}` or
    /// `{query.customer}`. Default: every record.
    #[serde(default)]
    pub key: Option<String>,
    /// Only records carrying this Kafka header with this value (a template).
    #[serde(default)]
    pub header: Option<HeaderFilter>,
    /// The Kafka header whose value names the SSE `event`, e.g. `ce_type`. Default: none
    /// (`default_event`).
    #[serde(default)]
    pub event_header: Option<String>,
    /// The SSE `event` when there is no `event_header` value. Default `message`.
    #[serde(default = "default_event")]
    pub default_event: String,
    /// Keep-alive comment interval. Default `15s`.
    #[serde(default = "default_keepalive")]
    pub keepalive: HumanDuration,
    /// The `retry:` reconnection hint sent to clients. Default `3s`.
    #[serde(default = "default_retry")]
    pub retry: HumanDuration,
    /// Most concurrent streams on this route; more get `503`. Default `100`.
    #[serde(default = "default_max_streams")]
    pub max_streams: usize,
    /// A client that does not take an event within this time is disconnected (counted
    /// as `slow_client`), so the gateway never buffers without bound. Default `10s`.
    #[serde(default = "default_slow")]
    pub slow_client_timeout: HumanDuration,
    /// Query parameter accepted instead of the `Last-Event-ID` header. Default
    /// `last_event_id`.
    #[serde(default = "default_resume_param")]
    pub resume_param: String,
    /// Keys signing the event ids (HMAC-SHA256), so a client can resume only from a
    /// position this route gave it: the first signs, all are accepted (add the new key
    /// first, drop the old one once clients moved on). At least 16 bytes each; use
    /// `${ENV}`. Default none: a key made at process start, so ids do not survive a
    /// restart and are refused by other instances (`400`).
    #[serde(default)]
    pub token_keys: Vec<String>,
}

/// `kafka-sse.header:`
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderFilter {
    /// The Kafka header name.
    pub name: String,
    /// The value template it must equal.
    pub value: String,
}

fn default_cluster() -> String {
    "default".into()
}
fn default_start() -> String {
    "latest".into()
}
fn default_event() -> String {
    "message".into()
}
const fn default_keepalive() -> HumanDuration {
    HumanDuration(Duration::from_secs(15))
}
const fn default_retry() -> HumanDuration {
    HumanDuration(Duration::from_secs(3))
}
const fn default_max_streams() -> usize {
    100
}
const fn default_slow() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}
fn default_resume_param() -> String {
    "last_event_id".into()
}
