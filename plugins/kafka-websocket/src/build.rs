//! The plugin's spec: its name and priority, and the checks that turn a config into an
//! instance (every error with its path).

use std::sync::Arc;

use sluice_core::config::decode::FieldError;
use sluice_core::config::path::FieldPath;
use sluice_core::kept::OpenCounts;
use sluice_core::metric_set::MetricsError;
use sluice_core::template::Template;
use sluice_core::{BuildScope, Plugin, PluginSpec};
use sluice_kafka::destination::{check_topic, cluster_at};
use sluice_kafka::position::Signer;
use sluice_kafka::reader::Start;
use sluice_kafka::{Destination, EventCounters, KafkaRuntime, Profile};

use crate::config::KafkaWebsocketConfig;
use crate::{KafkaWebsocketPlugin, PublishSide, SubscribeSide};

/// Open connections per route, across reloads (`max_connections` is per route, not per
/// configuration).
static OPEN: OpenCounts = OpenCounts::new();

/// The plugin factory; holds the Kafka runtime whose clusters connections use.
pub struct KafkaWebsocket {
    kafka: Arc<KafkaRuntime>,
}

impl KafkaWebsocket {
    /// A factory using the clusters of `kafka`.
    pub fn new(kafka: Arc<KafkaRuntime>) -> Self {
        Self { kafka }
    }
}

fn subscribe_side(
    c: &KafkaWebsocketConfig,
    at: &FieldPath,
    scope: &BuildScope<'_>,
    errors: &mut Vec<FieldError>,
) -> Option<SubscribeSide> {
    let s = c.subscribe.as_ref()?;
    let at = at.key("subscribe");
    check_topic(&s.topic, &at, "topic", errors);
    let start = Start::parse(&s.start)
        .map_err(|e| errors.push(FieldError::value(at.key("start"), e)))
        .ok();
    let key = s
        .key
        .as_deref()
        .map(Template::parse)
        .transpose()
        .map_err(|e| errors.push(FieldError::value(at.key("key"), e)))
        .ok()
        .flatten();
    for (i, k) in s.token_keys.iter().enumerate() {
        if k.len() < 16 {
            errors.push(FieldError::value(
                at.key("token_keys").index(i),
                "a token key needs at least 16 bytes",
            ));
        }
    }
    Some(SubscribeSide {
        signer: Signer::new(&s.token_keys, scope.route_id, &s.topic),
        topic: s.topic.clone(),
        start: start?,
        key,
        format: s.format,
        position_param: s.position_param.clone(),
    })
}

impl PluginSpec for KafkaWebsocket {
    const NAME: &'static str = "kafka-websocket";
    // Answers the request, after authentication and rate limiting (like kafka-sse).
    const PRIORITY: i32 = 1000;
    type Config = KafkaWebsocketConfig;

    fn init_metrics(&self) -> Result<(), MetricsError> {
        crate::metrics::init()
    }

    fn build(
        &self,
        c: KafkaWebsocketConfig,
        at: &FieldPath,
        scope: &BuildScope<'_>,
    ) -> Result<Arc<dyn Plugin>, Vec<FieldError>> {
        let mut errors = Vec::new();
        if c.subscribe.is_none() && c.publish.is_none() {
            errors.push(FieldError::value(
                at.clone(),
                "needs `subscribe`, `publish` or both",
            ));
        }
        let cluster = cluster_at(&self.kafka, &c.cluster, at, scope, &mut errors);
        let subscribe = subscribe_side(&c, at, scope, &mut errors);
        let publish = c.publish.as_ref().and_then(|p| {
            let at = at.key("publish");
            let dest =
                Destination::build(&self.kafka, p.target(&c.cluster), &at, scope, &mut errors)?;
            let profile = Profile {
                delivery_timeout: p.timeout.0,
                linger: std::time::Duration::ZERO,
            };
            let profile = dest.cluster.register_profile(profile);
            Some(PublishSide {
                dest,
                key_template: p.key.is_some(),
                counters: Arc::new(EventCounters::new(scope.route_id, Self::NAME)),
                profile,
                timeout: p.timeout.0,
                max_in_flight: p.max_in_flight.max(1),
                format: p.format,
            })
        });
        for (field, zero) in [
            ("ping_interval", c.ping_interval.0.is_zero()),
            ("idle_timeout", c.idle_timeout.0.is_zero()),
            ("slow_client_timeout", c.slow_client_timeout.0.is_zero()),
            ("max_connections", c.max_connections == 0),
            ("max_message_bytes", c.max_message_bytes.0 < 16),
        ] {
            if zero {
                errors.push(FieldError::value(at.key(field), "is too small"));
            }
        }
        if c.ping_interval.0 >= c.idle_timeout.0 {
            errors.push(FieldError::value(
                at.key("ping_interval"),
                "must be shorter than `idle_timeout` (a client's pong keeps the connection open)",
            ));
        }
        if c.max_message_bytes.0 > 64 << 20 {
            errors.push(FieldError::value(
                at.key("max_message_bytes"),
                "must be at most 64MiB",
            ));
        }
        let (Some(cluster), true) = (cluster, errors.is_empty()) else {
            return Err(errors);
        };
        Ok(Arc::new(KafkaWebsocketPlugin {
            cluster,
            subscribe,
            publish,
            config: c,
            open: OPEN.for_route(scope.route_id),
        }))
    }
}
