//! The plugin's spec: its name and priority, and the checks that turn a config into an
//! instance (every error with its path).

use std::sync::Arc;

use http::HeaderName;
use sluice_core::config::decode::FieldError;
use sluice_core::config::path::FieldPath;
use sluice_core::metric_set::MetricsError;
use sluice_core::{BuildScope, Plugin, PluginSpec};
use sluice_kafka::destination::check_topic;
use sluice_kafka::{Destination, EventCounters, KafkaRuntime, Profile};

use crate::config::RequestReplyConfig;
use crate::replies::{replies_for, AsyncBounds};
use crate::RequestReplyPlugin;

/// The plugin factory; holds the Kafka runtime whose clusters requests use.
pub struct KafkaRequestReply {
    kafka: Arc<KafkaRuntime>,
}

impl KafkaRequestReply {
    /// A factory using the clusters of `kafka`.
    pub fn new(kafka: Arc<KafkaRuntime>) -> Self {
        Self { kafka }
    }
}

impl PluginSpec for KafkaRequestReply {
    const NAME: &'static str = "kafka-request-reply";
    // Answers the request, after authentication and rate limiting (like kafka-divert).
    const PRIORITY: i32 = 1000;
    type Config = RequestReplyConfig;

    fn init_metrics(&self) -> Result<(), MetricsError> {
        crate::metrics::init()
    }

    fn build(
        &self,
        c: RequestReplyConfig,
        at: &FieldPath,
        scope: &BuildScope<'_>,
    ) -> Result<Arc<dyn Plugin>, Vec<FieldError>> {
        let mut errors = Vec::new();
        let dest = Destination::build(&self.kafka, c.target(), at, scope, &mut errors);
        check_topic(&c.reply_topic, at, "reply_topic", &mut errors);
        let mut forward = Vec::new();
        for (i, h) in c.forward_headers.iter().enumerate() {
            match HeaderName::from_bytes(h.as_bytes()) {
                Ok(n) => forward.push(n),
                Err(_) => errors.push(FieldError::value(
                    at.key("forward_headers").index(i),
                    format!("{h:?} is not a header name"),
                )),
            }
        }
        for (field, bad) in [
            ("timeout", c.timeout.0.is_zero()),
            ("max_pending", c.max_pending == 0),
            ("async_ttl", c.async_ttl.0.is_zero()),
            ("async_max_entries", c.async_max_entries == 0),
            ("async_max_bytes", c.async_max_bytes.0 == 0),
        ] {
            if bad {
                errors.push(FieldError::value(at.key(field), "must be greater than 0"));
            }
        }
        if c.max_body_bytes.0 > 64 << 20 {
            errors.push(FieldError::value(
                at.key("max_body_bytes"),
                "must be at most 64MiB",
            ));
        }
        let (Some(dest), true) = (dest, errors.is_empty()) else {
            return Err(errors);
        };
        let profile = Profile {
            delivery_timeout: c.timeout.0,
            linger: std::time::Duration::ZERO,
        };
        let profile = dest.cluster.register_profile(profile);
        Ok(Arc::new(RequestReplyPlugin {
            replies: replies_for(
                scope.route_id,
                dest.cluster.clone(),
                &c.reply_topic,
                c.max_pending,
                AsyncBounds {
                    ttl: c.async_ttl.0,
                    max_entries: c.async_max_entries,
                    max_bytes: c.async_max_bytes.0 as usize,
                },
            ),
            dest,
            reply_topic: c.reply_topic,
            counters: Arc::new(EventCounters::new(scope.route_id, Self::NAME)),
            profile,
            timeout: c.timeout.0,
            max_body: c.max_body_bytes.0 as usize,
            forward,
        }))
    }
}
