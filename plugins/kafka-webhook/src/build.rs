//! Building a [`Subscription`] from its configuration: every meaning check, with
//! positions, and the consumer properties it runs with.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use http::HeaderName;
use sluice_core::config::decode::FieldError;
use sluice_core::config::path::FieldPath;
use sluice_core::config::{SubscriptionConfig, SubscriptionStart};
use sluice_core::plugin::{SubscriptionScope, SubscriptionSpec};
use sluice_kafka::{EventCounters, KafkaRuntime};

use crate::config::WebhookConfig;
use crate::target::{self, UrlTemplate};
use crate::{sign, Subscription};

/// The subscription plugin (`kafka-webhook`).
pub struct KafkaWebhook {
    kafka: Arc<KafkaRuntime>,
}

impl KafkaWebhook {
    /// The plugin, consuming from the clusters of `kafka`.
    pub fn new(kafka: Arc<KafkaRuntime>) -> Self {
        Self { kafka }
    }
}

impl SubscriptionSpec for KafkaWebhook {
    const NAME: &'static str = "kafka-webhook";
    type Config = WebhookConfig;

    fn init_metrics(&self) -> Result<(), sluice_core::metric_set::MetricsError> {
        crate::metrics::init()
    }

    fn check(&self, sub: &SubscriptionConfig, at: &FieldPath) -> Vec<FieldError> {
        let mut errors = Vec::new();
        for key in sub.properties.keys() {
            let at = at.key("properties").key(key);
            if OWN_PROPERTIES.contains(&key.as_str()) {
                errors.push(FieldError::value(
                    at,
                    "set by Sluice (use `group` and `start`)",
                ));
            } else if let Err(e) = consumer_properties(rdkafka::ClientConfig::new(), sub, Some(key))
                .create_native_config()
            {
                errors.push(FieldError::value(
                    at,
                    format!("rejected by librdkafka: {e}"),
                ));
            }
        }
        errors
    }

    fn build(
        &self,
        sub: &SubscriptionConfig,
        config: WebhookConfig,
        at: &FieldPath,
        _scope: &SubscriptionScope<'_>,
    ) -> Result<Arc<dyn sluice_core::plugin::Subscription>, Vec<FieldError>> {
        Ok(build(sub, config, at, &self.kafka)?)
    }
}

/// Build the subscription `sub` with its webhook block `c` (found at `wat`); errors
/// carry positions.
fn build(
    sub: &SubscriptionConfig,
    c: WebhookConfig,
    wat: &FieldPath,
    kafka: &KafkaRuntime,
) -> Result<Arc<Subscription>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let url = UrlTemplate::parse(&c.url)
        .map_err(|e| errors.push(FieldError::value(wat.key("url"), e)))
        .ok();
    let method = reqwest::Method::from_bytes(c.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| {
            errors.push(FieldError::value(
                wat.key("method"),
                format!("{:?} is not an HTTP method", c.method),
            ))
        })
        .ok();
    let mut forward = Vec::new();
    for (i, h) in c.headers.iter().enumerate() {
        match HeaderName::from_bytes(h.as_bytes()) {
            Ok(n) => forward.push(n),
            Err(_) => errors.push(FieldError::value(
                wat.key("headers").index(i),
                format!("{h:?} is not a header name"),
            )),
        }
    }
    let mut keys = Vec::new();
    for (i, s) in c.secrets.iter().enumerate() {
        match sign::decode_secret(s) {
            Ok(k) => keys.push(k),
            Err(e) => errors.push(FieldError::value(wat.key("secrets").index(i), e)),
        }
    }
    if c.concurrency == 0 || c.concurrency > 1024 {
        errors.push(FieldError::value(
            wat.key("concurrency"),
            "must be between 1 and 1024",
        ));
    }
    if c.timeout.0.is_zero() {
        errors.push(FieldError::value(
            wat.key("timeout"),
            "must be greater than 0",
        ));
    }
    if !c
        .dlq_topic
        .replace("{topic}", "t")
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        errors.push(FieldError::value(
            wat.key("dlq_topic"),
            "must be a topic name, with `{topic}` for the source topic",
        ));
    }
    let cluster = kafka.cluster(&sub.cluster);
    let client = target::client(c.allow_private_targets, c.timeout.0)
        .map_err(|e| {
            errors.push(FieldError::value(
                wat.clone(),
                format!("cannot build the HTTP client: {e}"),
            ))
        })
        .ok();
    let (Some(url), Some(method), Some(cluster), Some(client), true) =
        (url, method, cluster, client, errors.is_empty())
    else {
        return Err(errors);
    };
    Ok(Arc::new(Subscription {
        id: sub.id.clone(),
        config: sub.clone(),
        cluster,
        url,
        method,
        forward,
        keys,
        retries: c.retries.iter().map(|d| d.0).collect(),
        max_retry_after: c.max_retry_after.0,
        dlq_topic: c.dlq_topic,
        concurrency: c.concurrency,
        max_response_bytes: c.max_response_bytes.0 as usize,
        allow_private: c.allow_private_targets,
        client,
        disabled: AtomicBool::new(false),
        dlq_counters: Arc::new(EventCounters::new(&sub.id, "kafka-webhook")),
        assignment: Arc::default(),
    }))
}

/// Consumer properties Sluice sets itself.
const OWN_PROPERTIES: &[&str] = &[
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "auto.offset.reset",
];

/// `cfg` with the subscription's own properties (only `only`, when given) and Sluice's.
pub(crate) fn consumer_properties(
    mut cfg: rdkafka::ClientConfig,
    sub: &SubscriptionConfig,
    only: Option<&String>,
) -> rdkafka::ClientConfig {
    for (k, v) in &sub.properties {
        if only.is_none_or(|o| o == k) {
            cfg.set(k, v.to_property());
        }
    }
    cfg.set("group.id", sub.group())
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set(
            "auto.offset.reset",
            match sub.start {
                SubscriptionStart::Earliest => "earliest",
                SubscriptionStart::Latest => "latest",
            },
        );
    cfg
}
