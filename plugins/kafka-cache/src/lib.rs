//! The `kafka-cache` plugin: `GET` on its route answered from an in-memory view of a
//! (typically compacted) topic — the latest record per key — built by reading the topic
//! from its beginning at start and kept current as records arrive. `ETag` is the
//! record's position, so `If-None-Match` gives `304`; a tombstone makes the key `404`; a
//! key template that renders empty lists items by prefix, a page at a time. Until the
//! view reached the topic's ends seen at start it answers `503` and `/readyz` waits. The
//! view is bounded (`max_bytes`): what does not fit is not kept, and reads that depend
//! on it get `507`, never a stale answer.
//!
//! Split: [`config`], [`view`] (the bounded view), [`feed`] (the reading thread),
//! [`answer`] (responses), [`metrics`].

pub mod answer;
pub mod config;
pub mod feed;
pub mod freshness;
pub mod metrics;
#[cfg(test)]
mod trait_tests;
pub mod view;

use std::sync::Arc;

use async_trait::async_trait;
use pingora_error::Result;
use sluice_core::config::decode::FieldError;
use sluice_core::config::path::FieldPath;
use sluice_core::metric_set::MetricsError;
use sluice_core::template::Template;
use sluice_core::{
    BuildScope, Flow, HttpResponse, Phases, Plugin, PluginSpec, Request, RequestCtx,
};
use sluice_kafka::destination::{check_topic, cluster_at};
use sluice_kafka::KafkaRuntime;

use config::KafkaCacheConfig;
use feed::Feed;

/// The plugin factory; holds the Kafka runtime whose clusters views read.
pub struct KafkaCache {
    kafka: Arc<KafkaRuntime>,
}

impl KafkaCache {
    /// A factory using the clusters of `kafka`.
    pub fn new(kafka: Arc<KafkaRuntime>) -> Self {
        Self { kafka }
    }
}

/// One configured instance (one route) and its view.
pub struct KafkaCachePlugin {
    feed: Arc<Feed>,
    key: Template,
    page_size: usize,
    max_page_size: usize,
    max_staleness: std::time::Duration,
    reads: metrics::Reads,
}

impl PluginSpec for KafkaCache {
    const NAME: &'static str = "kafka-cache";
    // Answers the request, after authentication and rate limiting.
    const PRIORITY: i32 = 1000;
    type Config = KafkaCacheConfig;

    fn init_metrics(&self) -> std::result::Result<(), MetricsError> {
        metrics::init()
    }

    fn build(
        &self,
        c: KafkaCacheConfig,
        at: &FieldPath,
        scope: &BuildScope<'_>,
    ) -> std::result::Result<Arc<dyn Plugin>, Vec<FieldError>> {
        let mut errors = Vec::new();
        let cluster = cluster_at(&self.kafka, &c.cluster, at, scope, &mut errors);
        check_topic(&c.topic, at, "topic", &mut errors);
        let key = Template::parse(&c.key)
            .map_err(|e| errors.push(FieldError::value(at.key("key"), e)))
            .ok();
        if c.max_bytes.0 < 1 << 10 {
            errors.push(FieldError::value(
                at.key("max_bytes"),
                "must be at least 1KiB",
            ));
        }
        if c.max_staleness.0 < std::time::Duration::from_secs(2) {
            errors.push(FieldError::value(
                at.key("max_staleness"),
                "must be at least 2s (the view is confirmed current every second)",
            ));
        }
        if c.page_size == 0 || c.page_size > c.max_page_size {
            errors.push(FieldError::value(
                at.key("page_size"),
                "must be between 1 and `max_page_size`",
            ));
        }
        let (Some(cluster), Some(key), true) = (cluster, key, errors.is_empty()) else {
            return Err(errors);
        };
        Ok(Arc::new(KafkaCachePlugin {
            feed: feed::feed_for(scope.route_id, cluster, &c.topic, c.max_bytes.0 as usize),
            key,
            page_size: c.page_size,
            max_page_size: c.max_page_size,
            max_staleness: c.max_staleness.0,
            reads: metrics::Reads::of(scope.route_id),
        }))
    }
}

impl KafkaCachePlugin {
    /// Why the view cannot answer now (the read result and rejection reason, and the
    /// detail): still catching up, or not confirmed current within `max_staleness`.
    fn unavailable(&self) -> Option<(&'static str, &'static str)> {
        let shared = &self.feed.shared;
        if !shared.caught_up() {
            return Some(("warming_up", "the view is still reading its topic"));
        }
        shared
            .freshness
            .staleness()
            .is_none_or(|s| s > self.max_staleness)
            .then_some((
                "stale",
                "the view has not been confirmed current within max_staleness",
            ))
    }
}

#[async_trait]
impl Plugin for KafkaCachePlugin {
    fn phases(&self) -> Phases {
        Phases::REQUEST
    }

    fn answers_requests(&self) -> bool {
        true
    }

    fn not_ready(&self) -> Option<String> {
        (!self.feed.shared.caught_up()).then(|| self.feed.shared.progress())
    }

    async fn request(&self, req: &mut Request<'_>, ctx: &mut RequestCtx) -> Result<Flow> {
        let head = req.header();
        if head.method != http::Method::GET {
            let r = HttpResponse::refusal(
                ctx,
                405,
                "method_not_allowed",
                "this route only answers GET",
            );
            return Ok(Flow::Respond(r.with_header("allow", "GET")));
        }
        if let Some((reason, detail)) = self.unavailable() {
            self.reads.count(reason);
            let r = HttpResponse::refusal(ctx, 503, reason, detail);
            return Ok(Flow::Respond(r.with_header("retry-after", "1")));
        }
        let key = self.key.render(&ctx.request_data(head));
        let Ok(view) = self.feed.shared.view.read() else {
            return Ok(Flow::Respond(HttpResponse::problem(
                500,
                "the view is unavailable",
                &ctx.request_id,
            )));
        };
        let answer = if key.is_empty() {
            let page = answer::page(&view, head, self.page_size, self.max_page_size);
            drop(view);
            page.map_or_else(|refused| refused, answer::list)
        } else {
            answer::item(&view, key.as_bytes(), head)
        };
        self.reads.count(answer.result);
        Ok(Flow::Respond(match answer.refusal {
            Some((status, reason, detail)) => HttpResponse::refusal(ctx, status, reason, detail),
            None => answer.response,
        }))
    }
}
