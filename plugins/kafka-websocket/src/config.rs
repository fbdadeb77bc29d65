//! `plugins.kafka-websocket:` — the plugin's configuration. These docs are the user docs
//! (mirrored in the crate README).

use std::time::Duration;

use serde::Deserialize;
use sluice_core::config::units::{ByteSize, HumanDuration};

/// Configuration of one `kafka-websocket` instance. At least one of `subscribe` and
/// `publish`.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaWebsocketConfig {
    /// The cluster (a name under `kafka.clusters`). Default `default`.
    #[serde(default = "default_cluster")]
    pub cluster: String,
    /// Records of a topic sent to the client as frames.
    #[serde(default)]
    pub subscribe: Option<SubscribeConfig>,
    /// Client messages produced as records, each acknowledged to the client.
    #[serde(default)]
    pub publish: Option<PublishConfig>,
    /// Largest message (and frame) accepted from the client; larger ones close the
    /// connection with `1009`. Default `64KiB`.
    #[serde(default = "default_max_message")]
    pub max_message_bytes: ByteSize,
    /// A ping is sent after this long without traffic to the client. Default `30s`.
    #[serde(default = "default_ping")]
    pub ping_interval: HumanDuration,
    /// The connection is closed (`1001`, `idle timeout`) after this long without any
    /// frame from the client (pongs count). Default `90s`.
    #[serde(default = "default_idle")]
    pub idle_timeout: HumanDuration,
    /// Connections open at once on this route; more get `503` with `Retry-After` before
    /// the upgrade. Default `1000`.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// A client that does not take a frame within this time is disconnected (`1008`,
    /// `slow consumer`): the gateway never buffers without bound for it. Default `10s`.
    #[serde(default = "default_slow")]
    pub slow_client_timeout: HumanDuration,
    /// `Origin` values allowed to open a connection (exact, e.g.
    /// `https://app.example.com`); others get `403`. Browsers send their page's origin,
    /// so this stops other sites from opening connections with a user's cookies. Empty
    /// (default): any origin.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
}

/// `kafka-websocket.subscribe:`
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SubscribeConfig {
    /// The topic. Required.
    pub topic: String,
    /// Where a connection without a position token starts: `latest` (default),
    /// `earliest`, or an RFC 3339 time.
    #[serde(default = "default_start")]
    pub start: String,
    /// Only records whose key equals this template, e.g. `{consumer}` or `{path.2}`.
    #[serde(default)]
    pub key: Option<String>,
    /// Frame layout: `envelope` (default: a JSON text frame with topic, partition,
    /// offset, key, headers, timestamp, value and the position token) or `raw` (the
    /// value alone as a binary frame; no position token, so no resume).
    #[serde(default)]
    pub format: Format,
    /// Query parameter carrying the position token to resume from (browsers cannot set
    /// headers on a WebSocket). Default `position`.
    #[serde(default = "default_position_param")]
    pub position_param: String,
    /// Keys (at least 16 bytes each) signing the position tokens, as kafka-sse's
    /// `token_keys`: the first signs, all are accepted. Default none: a key made at
    /// process start.
    #[serde(default)]
    pub token_keys: Vec<String>,
}

/// `kafka-websocket.publish:`
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PublishConfig {
    /// Topic template, e.g. `chat` or `events.{path.2}`. Required.
    pub topic: String,
    /// Topics a templated `topic` may render to (exact names or `prefix*`); required
    /// when `topic` uses request data.
    #[serde(default)]
    pub topics_allowed: Vec<String>,
    /// Record key template (used when the message does not give a key).
    #[serde(default)]
    pub key: Option<String>,
    /// Message layout: `envelope` (default: a JSON object `{"id", "key", "headers",
    /// "value"}`) or `raw` (the message is the value; acknowledgements carry its
    /// sequence number on the connection).
    #[serde(default)]
    pub format: Format,
    /// How long to wait for the broker's acknowledgement before an error frame
    /// (`timeout`). Default `5s`.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Messages awaiting acknowledgement at once per connection; the gateway stops
    /// reading from a client that reaches it (backpressure). Default `64`.
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
}

/// Frame and message layout.
#[derive(Debug, Clone, Copy, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// JSON with metadata.
    #[default]
    Envelope,
    /// The value alone.
    Raw,
}

fn default_cluster() -> String {
    "default".into()
}
fn default_start() -> String {
    "latest".into()
}
fn default_position_param() -> String {
    "position".into()
}
const fn default_max_message() -> ByteSize {
    ByteSize(64 << 10)
}
const fn default_ping() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}
const fn default_idle() -> HumanDuration {
    HumanDuration(Duration::from_secs(90))
}
const fn default_max_connections() -> usize {
    1000
}
const fn default_slow() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}
const fn default_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(5))
}
const fn default_in_flight() -> usize {
    64
}

impl PublishConfig {
    /// The Kafka target fields, for [`sluice_kafka::Destination::build`].
    pub fn target<'a>(&'a self, cluster: &'a str) -> sluice_kafka::Target<'a> {
        sluice_kafka::Target {
            cluster,
            topic: &self.topic,
            topics_allowed: &self.topics_allowed,
            key: self.key.as_deref(),
        }
    }
}
