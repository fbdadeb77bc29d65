//! The `kafka-webhook` plugin: a subscription consumes Kafka topics with a consumer
//! group (Sluice instances sharing a group share the partitions) and delivers each
//! record as an HTTP request to a webhook: body = record value, `content-type` from the
//! record, Standard Webhooks headers (`webhook-id` stable across retries,
//! `webhook-timestamp`, `webhook-signature`). Failures are retried on a schedule with
//! jitter; what cannot be delivered goes to a dead-letter topic with `sluice-dlq-*`
//! headers. Offsets are committed only after a 2xx or the dead-letter topic's
//! acknowledgement: delivery is at least once.
//!
//! Split: [`KafkaWebhook`] (the spec: a subscription from its config, in `build`),
//! [`config`], [`sign`], [`target`] (URL template, SSRF-safe client),
//! [`deliver`] (attempts and retries), [`dispatch`] (ordering, concurrency, commits),
//! [`context`] (consumer lag, the partitions this member owns), [`metrics`].

mod build;
pub mod config;
pub mod context;
pub mod deliver;
pub mod dispatch;
pub mod metrics;
pub mod sign;
pub mod target;
#[cfg(test)]
mod trait_tests;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message, OwnedMessage};
use sluice_core::config::SubscriptionConfig;
use sluice_kafka::event::header;
use sluice_kafka::{Cluster, EventCounters, OutgoingEvent};
use tokio::sync::watch;

use build::consumer_properties;
pub use build::KafkaWebhook;
use context::SubscriptionContext;
use deliver::{deliver, forwarded, Outcome, Request, Target};
use metrics::webhook;
use target::UrlTemplate;

/// A running (or ready to run) webhook subscription.
pub struct Subscription {
    /// Its id.
    pub id: String,
    config: SubscriptionConfig,
    cluster: Arc<Cluster>,
    url: UrlTemplate,
    method: reqwest::Method,
    forward: Vec<HeaderName>,
    keys: Vec<Vec<u8>>,
    retries: Vec<Duration>,
    max_retry_after: Duration,
    dlq_topic: String,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    max_response_bytes: usize,
    allow_private: bool,
    client: reqwest::Client,
    disabled: AtomicBool,
    dlq_counters: Arc<EventCounters>,
    /// The partitions this instance owns while it runs.
    assignment: Arc<context::Assignment>,
}

/// Resolves once `stop` is set (or its sender is gone).
pub async fn stopped(stop: &watch::Receiver<bool>) {
    let mut stop = stop.clone();
    let _ = stop.wait_for(|s| *s).await;
}

impl Subscription {
    /// Consume and deliver until `stop` is set.
    async fn consume(self: Arc<Self>, stop: watch::Receiver<bool>) {
        // A new instance (start, or a reload that changed it) starts enabled.
        if let Some(m) = webhook() {
            m.disabled.with_label_values(&[&self.id]).set(0);
        }
        let Some(mut cfg) = self.cluster.consumer_config() else {
            log::error!(
                "webhook subscription `{}`: the cluster is not started",
                self.id
            );
            return;
        };
        cfg.set("statistics.interval.ms", "1000");
        // librdkafka prefetches up to 64 MiB per consumer by default; the dispatcher
        // holds at most 1000 records anyway. A property can raise it.
        // A topic created after the subscription started is noticed at the next
        // metadata refresh (librdkafka's default: 5 minutes).
        // librdkafka waits `fetch.queue.backoff.ms` (1 s by default) before fetching again
        // once that queue is full: a subscription draining it faster would stall.
        for (k, v) in [
            ("queued.max.messages.kbytes", "8192"),
            ("topic.metadata.refresh.interval.ms", "5000"),
            ("fetch.queue.backoff.ms", "10"),
        ] {
            if cfg.get(k).is_none() {
                cfg.set(k, v);
            }
        }
        let cfg = consumer_properties(cfg, &self.config, None);
        let context = SubscriptionContext::new(&self.id, self.assignment.clone());
        let consumer: StreamConsumer<SubscriptionContext> = match cfg.create_with_context(context) {
            Ok(c) => c,
            Err(e) => {
                log::error!(
                    "webhook subscription `{}`: cannot create the consumer: {e}",
                    self.id
                );
                return;
            }
        };
        let topics: Vec<&str> = self.config.topics.iter().map(String::as_str).collect();
        if let Err(e) = consumer.subscribe(&topics) {
            log::error!("webhook subscription `{}`: cannot subscribe: {e}", self.id);
            return;
        }
        log::info!(
            "webhook subscription `{}`: consuming {} as group `{}`",
            self.id,
            self.config.topics.join(", "),
            self.config.group()
        );
        let assignment = self.assignment.clone();
        dispatch::run(self, consumer, stop).await;
        assignment.clear();
    }

    /// Deliver one record (or dead-letter it); false when stopped before it was done.
    pub async fn handle(&self, m: &OwnedMessage, stop: &watch::Receiver<bool>) -> bool {
        let id = header(m, "ce_id")
            .and_then(|v| std::str::from_utf8(v).ok())
            .filter(|v| !v.is_empty() && v.len() <= 256)
            .map(str::to_string)
            .unwrap_or_else(|| format!("{}-{}-{}", m.topic(), m.partition(), m.offset()));
        let mut headers = HeaderMap::new();
        let ct = header(m, "content-type")
            .and_then(|v| HeaderValue::from_bytes(v).ok())
            .unwrap_or(HeaderValue::from_static("application/octet-stream"));
        headers.insert(http::header::CONTENT_TYPE, ct);
        if let Some(h) = m.headers() {
            forwarded(
                &self.forward,
                h.iter().map(|x| (x.key, x.value.unwrap_or_default())),
                &mut headers,
            );
        }
        let request = Request {
            id,
            url: self.url.render(m),
            headers,
            body: m.payload().unwrap_or_default().to_vec(),
        };
        let target = Target {
            subscription: &self.id,
            client: &self.client,
            method: &self.method,
            keys: &self.keys,
            retries: &self.retries,
            max_retry_after: self.max_retry_after,
            max_response_bytes: self.max_response_bytes,
            allow_private: self.allow_private,
            disabled: &self.disabled,
        };
        match deliver(&target, &request, stop).await {
            None => false,
            Some(Outcome::Delivered { .. }) => {
                if let Some(w) = webhook() {
                    w.deliveries
                        .with_label_values(&[&self.id, "delivered"])
                        .inc();
                }
                true
            }
            Some(Outcome::Dead {
                attempts,
                status,
                error,
            }) => self.dead_letter(m, attempts, status, &error, stop).await,
        }
    }

    /// Produce the record to the dead-letter topic, retrying until the broker acknowledges
    /// it; false when stopped first.
    async fn dead_letter(
        &self,
        m: &OwnedMessage,
        attempts: u32,
        status: Option<u16>,
        error: &str,
        stop: &watch::Receiver<bool>,
    ) -> bool {
        let mut headers = sluice_kafka::event::headers(m);
        for (k, v) in [
            ("sluice-dlq-topic", m.topic().to_string()),
            ("sluice-dlq-partition", m.partition().to_string()),
            ("sluice-dlq-offset", m.offset().to_string()),
            ("sluice-dlq-attempts", attempts.to_string()),
            (
                "sluice-dlq-last-status",
                status.map(|s| s.to_string()).unwrap_or_default(),
            ),
            ("sluice-dlq-last-error", error.to_string()),
            ("sluice-dlq-subscription", self.id.clone()),
        ] {
            headers.push((k.to_string(), v.into_bytes()));
        }
        let event = OutgoingEvent {
            topic: self.dlq_topic.replace("{topic}", m.topic()),
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().unwrap_or_default().to_vec(),
            headers,
            timestamp_ms: m.timestamp().to_millis(),
        };
        let mut backoff = Duration::from_secs(1);
        loop {
            if let Ok(rx) = self.cluster.send_acked(&event, &self.dlq_counters, None) {
                if let Ok(Ok(_)) = rx.await {
                    if let Some(w) = webhook() {
                        w.deliveries
                            .with_label_values(&[&self.id, "dead_lettered"])
                            .inc();
                    }
                    return true;
                }
            }
            log::warn!(
                "webhook subscription `{}`: the dead-letter topic did not take a record; retrying",
                self.id
            );
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stopped(stop) => return false,
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }
}

#[async_trait::async_trait]
impl sluice_core::plugin::Subscription for Subscription {
    fn id(&self) -> &str {
        &self.id
    }

    /// Both use the same cluster (the same producer and settings).
    fn same_runtime(&self, other: &dyn sluice_core::plugin::Subscription) -> bool {
        other
            .as_any()
            .downcast_ref::<Subscription>()
            .is_some_and(|o| Arc::ptr_eq(&self.cluster, &o.cluster))
    }

    /// The partitions this instance owns now (none when it is not running).
    fn assigned(&self) -> Vec<(String, i32)> {
        self.assignment.owned()
    }

    /// True after the target answered `410 Gone`.
    fn is_disabled(&self) -> bool {
        self.disabled.load(std::sync::atomic::Ordering::Acquire)
    }

    async fn run(self: Arc<Self>, stop: watch::Receiver<bool>) {
        self.consume(stop).await
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
