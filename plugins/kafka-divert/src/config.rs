//! `plugins.kafka-divert:` — the plugin's configuration. These docs are the user docs
//! (mirrored in the crate README).

use std::time::Duration;

use serde::Deserialize;
use sluice_core::config::units::{ByteSize, HumanDuration};
use sluice_store::StorePolicy;

/// Configuration of one `kafka-divert` instance.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaDivertConfig {
    /// The cluster (a name under `kafka.clusters`). Default `default`.
    #[serde(default = "default_cluster")]
    pub cluster: String,
    /// Topic template, e.g. `orders` or `events.{path.1}`. Required.
    pub topic: String,
    /// Topics a templated `topic` may render to: exact names and prefixes ending in `*`
    /// (e.g. `["ev.orders", "ev.payments", "tenant-*"]`); a request whose topic is not on it gets
    /// `404` (`topic_not_allowed`). Required when `topic`
    /// uses request data (`{path.N}`, `{header.X}`, `{query.X}`, `{host}`, claims,
    /// ...), so requests never choose (or, with broker-side auto-creation, create) a
    /// topic; optional otherwise. Default `[]`.
    #[serde(default)]
    pub topics_allowed: Vec<String>,
    /// Record key template, e.g. `{header.x-order-id}`. Empty or absent: no key.
    #[serde(default)]
    pub key: Option<String>,
    /// When to answer: `all` (default) answers `202` only after the broker acknowledged
    /// the record; `spool` answers `202` once the record is synced to the cluster's disk
    /// spool and delivers it later (needs `kafka.clusters.<name>.spool`); `none` answers
    /// `202` once the record is queued in memory — fastest, but an event can be lost if
    /// Sluice crashes or Kafka stays down.
    #[serde(default)]
    pub acks: DivertAcks,
    /// How long to wait for the acknowledgement before answering `503`. Also the
    /// producer's delivery timeout for this route (`message.timeout.ms`). Default `5s`.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// How long the producer waits to batch this route's records before sending
    /// (`linger.ms`). `0ms` answers fastest; under load, records still share requests
    /// while earlier ones are in flight. Default `0ms`.
    #[serde(default = "default_linger")]
    pub linger: HumanDuration,
    /// Largest accepted body; larger requests get `413` and nothing is produced.
    /// Keep it below the topic's `max.message.bytes` (1 MB by default). Default `900KiB`.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: ByteSize,
    /// Accept requests without a body (an empty record). Default `false` (`400`).
    #[serde(default)]
    pub allow_empty_body: bool,
    /// The CloudEvents `ce_type` header. Default `io.sluice.request.diverted`.
    #[serde(default = "default_ce_type")]
    pub ce_type: String,
    /// The CloudEvents `ce_source` header. Default `/routes/<route id>`.
    #[serde(default)]
    pub ce_source: Option<String>,
    /// Request headers copied to the record as Kafka headers (same names, lower case).
    /// Credential headers are only copied when listed here; hop-by-hop headers never.
    #[serde(default)]
    pub forward_headers: Vec<String>,
    /// The `Retry-After` sent with `503`. Default `1s`.
    #[serde(default = "default_retry_after")]
    pub retry_after: HumanDuration,
    /// Idempotency keys (IETF `Idempotency-Key`).
    #[serde(default)]
    pub idempotency: IdempotencyConfig,
}

/// When a diverted request is answered.
#[derive(Debug, Clone, Copy, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DivertAcks {
    /// After the broker acknowledged the record.
    #[default]
    All,
    /// After the record was synced to the disk spool.
    Spool,
    /// After the record was queued in memory (may lose on crash).
    None,
}

/// `plugins.kafka-divert.idempotency:`
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct IdempotencyConfig {
    /// The request header carrying the key. Default `Idempotency-Key`.
    #[serde(default = "default_key_header")]
    pub header: String,
    /// Reject requests without a key (`400`). Default `false`.
    #[serde(default)]
    pub required: bool,
    /// How long an accepted request's response is remembered. Default `24h`.
    #[serde(default = "default_ttl")]
    pub ttl: HumanDuration,
    /// Most keys remembered by this route; the oldest finished ones are forgotten
    /// first. Default `100000`.
    #[serde(default = "default_max_entries")]
    pub max_entries: usize,
    /// Whose keys these are: `consumer` (each authenticated client has its own keys;
    /// the default on a route with `key-auth`/`jwt-auth`), `client_ip` (per client
    /// address) or `global` (one key space for everyone: whoever sends a key first
    /// answers for all). Required on a route without authentication.
    #[serde(default)]
    pub scope: Option<IdempotencyScope>,
    /// Where keys live: `local` (default: in this process, `max_entries` at most) or
    /// `redis` (in the top-level `redis:` server, so that every instance using it
    /// answers a key the same way). With `redis`, a Redis that does not answer within
    /// `redis.timeout` makes keyed requests `503` with `Retry-After` (never a second
    /// record).
    #[serde(default)]
    pub policy: StorePolicy,
}

/// `idempotency.scope`.
#[derive(Debug, Clone, Copy, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum IdempotencyScope {
    /// Per authenticated consumer.
    Consumer,
    /// Per client IP address.
    ClientIp,
    /// Shared by every client.
    Global,
}

impl Default for IdempotencyConfig {
    fn default() -> Self {
        Self {
            header: default_key_header(),
            required: false,
            ttl: default_ttl(),
            max_entries: default_max_entries(),
            scope: None,
            policy: StorePolicy::Local,
        }
    }
}

fn default_cluster() -> String {
    "default".into()
}
const fn default_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(5))
}
const fn default_linger() -> HumanDuration {
    HumanDuration(Duration::ZERO)
}
const fn default_max_body() -> ByteSize {
    ByteSize(900 * 1024)
}
fn default_ce_type() -> String {
    "io.sluice.request.diverted".into()
}
const fn default_retry_after() -> HumanDuration {
    HumanDuration(Duration::from_secs(1))
}
fn default_key_header() -> String {
    "Idempotency-Key".into()
}
const fn default_ttl() -> HumanDuration {
    HumanDuration(Duration::from_secs(24 * 3600))
}
const fn default_max_entries() -> usize {
    100_000
}

impl KafkaDivertConfig {
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
