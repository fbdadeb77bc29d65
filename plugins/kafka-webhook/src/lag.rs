//! The consumer's librdkafka context: per-partition consumer lag from the statistics.

use rdkafka::consumer::ConsumerContext;
use rdkafka::statistics::Statistics;
use rdkafka::ClientContext;

use crate::metrics::webhook;

/// Exports `sluice_webhook_consumer_lag` for one subscription.
pub struct LagContext {
    /// The subscription id.
    pub subscription: String,
}

impl ClientContext for LagContext {
    fn stats(&self, s: Statistics) {
        let Some(m) = webhook() else { return };
        for (topic, t) in &s.topics {
            for (id, p) in &t.partitions {
                if *id >= 0 && p.consumer_lag >= 0 {
                    m.lag
                        .with_label_values(&[&self.subscription, topic, &id.to_string()])
                        .set(p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for LagContext {}
