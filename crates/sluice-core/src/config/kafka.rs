//! The `kafka.clusters.<name>` section: brokers or the dev broker, producer bounds and
//! settings, and the optional disk spool. Field docs are user documentation.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::kafka_security::{KafkaTlsConfig, SaslConfig};
use super::units::{ByteSize, HumanDuration};

/// `kafka.clusters.<name>:` — one Kafka cluster and the producer Sluice keeps for it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Bootstrap brokers, as `host:port`. Required unless `dev_broker` is set.
    #[serde(default)]
    pub brokers: Vec<String>,
    /// Run an embedded development broker (librdkafka's mock cluster) instead of
    /// connecting to `brokers`. Data lives in memory only: for demos and tests.
    #[serde(default)]
    pub dev_broker: Option<DevBrokerConfig>,
    /// librdkafka properties passed through as-is (e.g. `compression.type: lz4`).
    /// Properties that have a typed field here (`queue.buffering.max.kbytes`, ...,
    /// and the `tls`/`sasl` ones when those are set) must be set with that field.
    #[serde(default)]
    pub properties: BTreeMap<String, PropertyValue>,
    /// Memory bound of the producer queue (`queue.buffering.max.kbytes`). When it is
    /// full, mirrored events are discarded and counted. Default `64MiB`.
    #[serde(default = "default_queue_bytes")]
    pub queue_max_bytes: ByteSize,
    /// Message bound of the producer queue (`queue.buffering.max.messages`).
    /// Default `100000`.
    #[serde(default = "default_queue_messages")]
    pub queue_max_messages: u32,
    /// How long the producer keeps trying to deliver an event before it counts as
    /// failed (`message.timeout.ms`). Default `30s`.
    #[serde(default = "default_delivery_timeout")]
    pub delivery_timeout: HumanDuration,
    /// How long the producer waits to fill a batch (`linger.ms`). Default `5ms`.
    #[serde(default = "default_linger")]
    pub linger: HumanDuration,
    /// Producer acknowledgements: `all` (default, with the idempotent producer),
    /// `leader`, or `none`.
    #[serde(default)]
    pub acks: Acks,
    /// On shutdown, how long to wait for queued events to be delivered; what is still
    /// queued then goes to the spool (or is counted as failed without one). Default `10s`.
    #[serde(default = "default_flush_timeout")]
    pub flush_timeout: HumanDuration,
    /// A disk spool for events that cannot be handed to Kafka in time (routes with
    /// `delivery: at_least_once` or `acks: spool`, and whatever is queued at shutdown).
    #[serde(default)]
    pub spool: Option<SpoolConfig>,
    /// TLS to the brokers (verification on by default).
    #[serde(default)]
    pub tls: Option<KafkaTlsConfig>,
    /// SASL authentication (`PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`).
    #[serde(default)]
    pub sasl: Option<SaslConfig>,
}

impl ClusterConfig {
    /// The librdkafka properties of `tls` and `sasl`.
    pub fn security_properties(&self) -> Vec<(&'static str, String)> {
        super::kafka_security::security_properties(self.tls.as_ref(), self.sasl.as_ref())
    }
}

/// `kafka.clusters.<name>.spool:`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    /// Directory of the spool (one per cluster; created if missing).
    pub dir: String,
    /// Bound on the spool's bytes on disk. When full, `at_least_once` events are
    /// discarded (counted) and `acks: spool` requests get `503`. Default `1GiB`.
    #[serde(default = "default_spool_bytes")]
    pub max_bytes: ByteSize,
    /// When written events are synced to disk: `batch` (every write batch; nothing
    /// accepted is lost on a crash) or `interval` (every `sync_interval`; a crash loses
    /// at most that interval). Default `batch`.
    #[serde(default)]
    pub sync: SpoolSync,
    /// With `sync: interval`: the interval. Default `500ms`.
    #[serde(default = "default_sync_interval")]
    pub sync_interval: HumanDuration,
    /// Memory for events waiting to be written; beyond it appends are refused like a
    /// full spool. Default `8MiB`.
    #[serde(default = "default_spool_buffer")]
    pub buffer_bytes: ByteSize,
}

/// Spool sync policy.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SpoolSync {
    /// Sync every write batch.
    #[default]
    Batch,
    /// Sync every `sync_interval`.
    Interval,
}

const fn default_spool_bytes() -> ByteSize {
    ByteSize(1 << 30)
}
const fn default_sync_interval() -> HumanDuration {
    HumanDuration(Duration::from_millis(500))
}
const fn default_spool_buffer() -> ByteSize {
    ByteSize(8 << 20)
}

/// `kafka.clusters.<name>.dev_broker:`
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DevBrokerConfig {
    /// A fixed `ip:port` where the dev broker accepts clients. Default: a random free
    /// port, printed at start-up.
    #[serde(default)]
    pub listen: Option<String>,
    /// Topics created at start-up (others are created on first produce). List the
    /// topics that subscriptions consume: a consumer group waiting for a topic that
    /// does not exist yet can stall on the dev broker.
    #[serde(default)]
    pub topics: Vec<String>,
    /// Partitions of each topic it creates. Default `4`.
    #[serde(default = "default_dev_partitions")]
    pub partitions: u16,
}

const fn default_dev_partitions() -> u16 {
    4
}

/// Producer acknowledgement level.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Acks {
    /// All in-sync replicas (`acks=all`, idempotent producer).
    #[default]
    All,
    /// The partition leader only (`acks=1`).
    Leader,
    /// No acknowledgement (`acks=0`): delivery reports say nothing about the broker.
    None,
}

/// A librdkafka property value: written as a string, number or boolean.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum PropertyValue {
    /// `true` / `false`.
    Bool(bool),
    /// A number.
    Int(i64),
    /// Anything else.
    Str(String),
}

impl PropertyValue {
    /// The value as librdkafka expects it.
    pub fn to_property(&self) -> String {
        match self {
            PropertyValue::Bool(b) => b.to_string(),
            PropertyValue::Int(n) => n.to_string(),
            PropertyValue::Str(s) => s.clone(),
        }
    }
}

const fn default_queue_bytes() -> ByteSize {
    ByteSize(64 << 20)
}
const fn default_queue_messages() -> u32 {
    100_000
}
const fn default_delivery_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}
const fn default_linger() -> HumanDuration {
    HumanDuration(Duration::from_millis(5))
}
const fn default_flush_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}
