//! `subscriptions[].kafka-webhook:` — webhook delivery settings. These docs are the user
//! docs (mirrored in the crate README).

use std::time::Duration;

use serde::Deserialize;
use sluice_core::config::units::{ByteSize, HumanDuration};

/// Configuration of a webhook subscription.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Target URL (`http://` or `https://`); a template over the record: `{topic}`,
    /// `{partition}`, `{offset}`, `{key}`, `{header.NAME}` (values are percent-encoded).
    pub url: String,
    /// HTTP method. Default `POST`.
    #[serde(default = "default_method")]
    pub method: String,
    /// Kafka headers copied to the request as HTTP headers (values with CR, LF or NUL
    /// are not copied).
    #[serde(default)]
    pub headers: Vec<String>,
    /// Signing secrets in the Standard Webhooks form `whsec_<base64>` (a secret without
    /// the prefix is used as raw bytes). With several (rotation), every request carries a
    /// signature per secret. Empty: requests are not signed.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Timeout of each attempt (connect to last response byte). Default `10s`.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Delays before each retry; the number of entries is the number of retries. Each
    /// delay gets ±20% jitter; a `429` with `Retry-After` waits that long instead.
    /// Default `[1s, 5s, 30s]`.
    #[serde(default = "default_retries")]
    pub retries: Vec<HumanDuration>,
    /// Longest wait a `Retry-After` may impose before the next attempt; longer ones are
    /// cut to this (and counted), so one target cannot park a key and its partition's
    /// commits for a day. Default `5m`.
    #[serde(default = "default_max_retry_after")]
    pub max_retry_after: HumanDuration,
    /// Dead-letter topic for records that could not be delivered; `{topic}` is the
    /// source topic. Default `{topic}.dlq`.
    #[serde(default = "default_dlq")]
    pub dlq_topic: String,
    /// Deliveries in flight at once. Records with the same key are delivered one after
    /// the other, in order; other keys go on while one is retried. Default `16`.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// How much of a response body is read (the rest is dropped). Default `64KiB`.
    #[serde(default = "default_response_bytes")]
    pub max_response_bytes: ByteSize,
    /// Allow targets on loopback, private, link-local (incl. cloud metadata) and other
    /// non-public addresses. Default `false`.
    #[serde(default)]
    pub allow_private_targets: bool,
}

fn default_method() -> String {
    "POST".into()
}
const fn default_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}
fn default_retries() -> Vec<HumanDuration> {
    [1, 5, 30]
        .into_iter()
        .map(|s| HumanDuration(Duration::from_secs(s)))
        .collect()
}
const fn default_max_retry_after() -> HumanDuration {
    HumanDuration(Duration::from_secs(300))
}
fn default_dlq() -> String {
    "{topic}.dlq".into()
}
const fn default_concurrency() -> usize {
    16
}
const fn default_response_bytes() -> ByteSize {
    ByteSize(64 * 1024)
}
