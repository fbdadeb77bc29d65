//! `plugins.kafka-request-reply:` — the plugin's configuration. These docs are the user
//! docs (mirrored in the crate README).

use std::time::Duration;

use serde::Deserialize;
use sluice_core::config::units::{ByteSize, HumanDuration};

/// Configuration of one `kafka-request-reply` instance.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RequestReplyConfig {
    /// The cluster (a name under `kafka.clusters`). Default `default`.
    #[serde(default = "default_cluster")]
    pub cluster: String,
    /// Request topic template, e.g. `orders.requests`. Required.
    pub topic: String,
    /// Topics a templated `topic` may render to (exact names or `prefix*`); required
    /// when `topic` uses request data.
    #[serde(default)]
    pub topics_allowed: Vec<String>,
    /// Request record key template, e.g. `{path.2}`. Default none.
    #[serde(default)]
    pub key: Option<String>,
    /// The topic replies are read from (a literal name). Required. Every instance reads
    /// all its partitions, so a reply reaches the instance that waits for it wherever
    /// the responder wrote it.
    pub reply_topic: String,
    /// How long a request waits for its reply before `504`. Default `10s`.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Largest request body; larger ones get `413` and nothing is produced. Default
    /// `900KiB`.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: ByteSize,
    /// Requests waiting for a reply at once on this route and instance; more get `503`.
    /// Default `10000`.
    #[serde(default = "default_max_pending")]
    pub max_pending: usize,
    /// Request headers copied to the request record (same names, lower case).
    #[serde(default)]
    pub forward_headers: Vec<String>,
    /// How long the result of a `Prefer: respond-async` request can be fetched from its
    /// status URL (`Location`). Default `60s`.
    #[serde(default = "default_async_ttl")]
    pub async_ttl: HumanDuration,
    /// Results of asynchronous requests kept at once (oldest dropped first). Default
    /// `10000`.
    #[serde(default = "default_async_max")]
    pub async_max_entries: usize,
    /// Bytes of asynchronous results kept at once, about (reply bodies and headers; the
    /// oldest dropped first). This instance's results and the replies to other
    /// instances' requests each have this much. Default `64MiB`.
    #[serde(default = "default_async_max_bytes")]
    pub async_max_bytes: ByteSize,
}

fn default_cluster() -> String {
    "default".into()
}
const fn default_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}
const fn default_max_body() -> ByteSize {
    ByteSize(900 << 10)
}
const fn default_max_pending() -> usize {
    10_000
}
const fn default_async_ttl() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}
const fn default_async_max() -> usize {
    10_000
}
const fn default_async_max_bytes() -> ByteSize {
    ByteSize(64 << 20)
}

impl RequestReplyConfig {
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
