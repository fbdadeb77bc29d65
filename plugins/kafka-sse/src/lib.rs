//! The `kafka-sse` plugin: a `GET` on its route opens a `text/event-stream` of a Kafka
//! topic. Each record is one event whose `id` is a token of every partition's next
//! offset, so a client reconnecting with `Last-Event-ID` resumes exactly after the last
//! event it got — no gap, no duplicate. Each stream has its own consumer (partitions
//! assigned and seeked, no consumer group); streams per route are capped.
//!
//! Split: [`config`], [`token`] (resume ids), [`frame`] (SSE framing), [`stream`] (the
//! consumer and write loop).

pub mod config;
pub mod frame;
pub mod stream;
#[cfg(test)]
mod trait_tests;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use pingora_error::Result;
use pingora_http::{RequestHeader, ResponseHeader};
use prometheus::{IntCounterVec, IntGaugeVec, Opts};
use sluice_core::config::decode::FieldError;
use sluice_core::config::path::FieldPath;
use sluice_core::kept::OpenCounts;
use sluice_core::metric_set::{MetricSet, MetricsError};
use sluice_core::template::{query_arg, Template};
use sluice_core::{
    BuildScope, Flow, HttpResponse, Phases, Plugin, PluginSpec, Request, RequestCtx,
};
use sluice_kafka::destination::{check_topic, cluster_at};
use sluice_kafka::{Cluster, KafkaRuntime};

use config::KafkaSseConfig;
use sluice_kafka::position::Signer;
use sluice_kafka::reader::{self, Filter, Start};
use stream::Run;

struct Metrics {
    streams: IntGaugeVec,
    events: IntCounterVec,
    disconnects: IntCounterVec,
}

static METRICS: MetricSet<Metrics> = MetricSet::new("kafka-sse", || {
    let m = Metrics {
        streams: IntGaugeVec::new(
            Opts::new("sluice_sse_streams", "Open Server-Sent Events streams"),
            &["route"],
        )?,
        events: IntCounterVec::new(
            Opts::new("sluice_sse_events_total", "Events sent on SSE streams"),
            &["route"],
        )?,
        disconnects: IntCounterVec::new(
            Opts::new(
                "sluice_sse_disconnects_total",
                "Ended SSE streams by reason",
            ),
            &["route", "reason"],
        )?,
    };
    let r = prometheus::default_registry();
    r.register(Box::new(m.streams.clone()))?;
    r.register(Box::new(m.events.clone()))?;
    r.register(Box::new(m.disconnects.clone()))?;
    Ok(m)
});

/// Register the metrics now; the binary refuses to start if this fails.
fn init() -> std::result::Result<(), MetricsError> {
    METRICS.init()
}

/// The plugin factory.
pub struct KafkaSse {
    kafka: Arc<KafkaRuntime>,
}

impl KafkaSse {
    /// A factory streaming from the clusters of `kafka`.
    pub fn new(kafka: Arc<KafkaRuntime>) -> Self {
        Self { kafka }
    }
}

/// One configured instance.
pub struct KafkaSsePlugin {
    cluster: Arc<Cluster>,
    config: KafkaSseConfig,
    start: Start,
    key: Option<Template>,
    header: Option<(String, Template)>,
    active: Arc<AtomicUsize>,
    signer: Signer,
}

impl PluginSpec for KafkaSse {
    const NAME: &'static str = "kafka-sse";
    // Answers the request, after authentication (like kafka-divert).
    const PRIORITY: i32 = 1000;
    type Config = KafkaSseConfig;

    fn init_metrics(&self) -> std::result::Result<(), MetricsError> {
        init()
    }

    fn build(
        &self,
        c: KafkaSseConfig,
        at: &FieldPath,
        scope: &BuildScope<'_>,
    ) -> std::result::Result<Arc<dyn Plugin>, Vec<FieldError>> {
        let mut errors = Vec::new();
        let cluster = cluster_at(&self.kafka, &c.cluster, at, scope, &mut errors);
        check_topic(&c.topic, at, "topic", &mut errors);
        let start = Start::parse(&c.start)
            .map_err(|e| errors.push(FieldError::value(at.key("start"), e)))
            .ok();
        let key = c
            .key
            .as_deref()
            .map(Template::parse)
            .transpose()
            .map_err(|e| errors.push(FieldError::value(at.key("key"), e)))
            .ok()
            .flatten();
        let header = c
            .header
            .as_ref()
            .and_then(|h| match Template::parse(&h.value) {
                Ok(t) => Some((h.name.clone(), t)),
                Err(e) => {
                    errors.push(FieldError::value(at.key("header").key("value"), e));
                    None
                }
            });
        for (field, d) in [
            ("keepalive", c.keepalive.0),
            ("slow_client_timeout", c.slow_client_timeout.0),
        ] {
            if d.is_zero() {
                errors.push(FieldError::value(at.key(field), "must be greater than 0"));
            }
        }
        if c.max_streams == 0 {
            errors.push(FieldError::value(
                at.key("max_streams"),
                "must be at least 1",
            ));
        }
        for (i, k) in c.token_keys.iter().enumerate() {
            if k.len() < 16 {
                errors.push(FieldError::value(
                    at.key("token_keys").index(i),
                    "a token key needs at least 16 bytes",
                ));
            }
        }
        if c.token_keys.is_empty() {
            log::warn!(
                "kafka-sse on route `{}`: no token_keys, event ids are signed with a key made at start (resuming fails after a restart or on another instance)",
                scope.route_id
            );
        }
        let (Some(cluster), Some(start), true) = (cluster, start, errors.is_empty()) else {
            return Err(errors);
        };
        Ok(Arc::new(KafkaSsePlugin {
            signer: Signer::new(&c.token_keys, scope.route_id, &c.topic),
            cluster,
            start,
            key,
            header,
            active: OPEN.for_route(scope.route_id),
            config: c,
        }))
    }
}

/// Open streams per route, across reloads (`max_streams` is per route, not per
/// configuration).
static OPEN: OpenCounts = OpenCounts::new();

/// Decrements the open-stream count when the stream ends, however it ends.
struct Slot(Arc<AtomicUsize>, String);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
        if let Some(m) = METRICS.get() {
            m.streams.with_label_values(&[&self.1]).dec();
        }
    }
}

impl KafkaSsePlugin {
    /// The client's resume token: `Last-Event-ID`, else the resume query parameter.
    fn resume(&self, req: &RequestHeader) -> Option<String> {
        req.headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| {
                req.uri
                    .query()
                    .and_then(|q| query_arg(q, &self.config.resume_param))
            })
            .filter(|t| !t.is_empty())
    }
}

#[async_trait]
impl Plugin for KafkaSsePlugin {
    fn phases(&self) -> Phases {
        Phases::REQUEST
    }

    fn answers_requests(&self) -> bool {
        true
    }

    fn writes_response(&self) -> bool {
        true
    }

    async fn request(&self, req: &mut Request<'_>, ctx: &mut RequestCtx) -> Result<Flow> {
        let route = ctx.route_id().to_string();
        let resume = match self.resume(req.header()).map(|t| self.signer.decode(&t)) {
            None => None,
            Some(Some(p)) => Some(p),
            Some(None) => {
                let r = HttpResponse::refusal(
                    ctx,
                    400,
                    "invalid_resume_token",
                    "Last-Event-ID is not an event id of this stream",
                );
                return Ok(Flow::Respond(r));
            }
        };
        if self.active.fetch_add(1, Ordering::AcqRel) >= self.config.max_streams {
            self.active.fetch_sub(1, Ordering::AcqRel);
            let r = HttpResponse::problem(503, "too many streams on this route", &ctx.request_id)
                .with_header(
                    "retry-after",
                    self.config.retry.0.as_secs().max(1).to_string(),
                );
            return Ok(Flow::Respond(r));
        }
        if let Some(m) = METRICS.get() {
            m.streams.with_label_values(&[&route]).inc();
        }
        let _slot = Slot(self.active.clone(), route.clone());
        let data = ctx.request_data(req.header());
        let filter = Filter {
            key: self.key.as_ref().map(|k| k.render(&data).into_bytes()),
            header: self
                .header
                .as_ref()
                .map(|(n, v)| (n.clone(), v.render(&data).into_bytes())),
        };
        let Some(mut writer) = req.writer() else {
            return Err(pingora_error::Error::explain(
                pingora_error::ErrorType::InternalError,
                "kafka-sse was not lent the response writer",
            ));
        };
        let Some(cfg) = self.cluster.consumer_config() else {
            let r = HttpResponse::problem(503, "Kafka is not available yet", &ctx.request_id)
                .with_header("retry-after", "1");
            return Ok(Flow::Respond(r));
        };
        let (consumer, positions) =
            match reader::open(cfg, "sluice-sse", &self.config.topic, self.start, resume).await {
                Ok(c) => c,
                Err(e) => {
                    log::warn!("sse route `{route}`: {e}");
                    let r =
                        HttpResponse::problem(503, "the topic is not available", &ctx.request_id)
                            .with_header("retry-after", "1");
                    return Ok(Flow::Respond(r));
                }
            };
        let mut h = ResponseHeader::build(200, Some(6))?;
        h.insert_header("content-type", "text/event-stream")?;
        h.insert_header("cache-control", "no-cache")?;
        h.insert_header("x-accel-buffering", "no")?;
        h.insert_header("transfer-encoding", "chunked")?;
        h.insert_header("x-request-id", ctx.request_id.as_str())?;
        writer.write_header(h).await?;
        let mut hello = frame::retry(self.config.retry.0.as_millis());
        let from = self.signer.encode(&positions);
        hello.extend(frame::comment(&format!(
            "stream {} from {from}",
            self.config.topic
        )));
        hello.extend(frame::position(&from));
        writer.write(hello.into()).await?;
        let on_event = || {
            if let Some(m) = METRICS.get() {
                m.events.with_label_values(&[&route]).inc();
            }
        };
        let end = stream::run(
            &mut writer,
            Run {
                consumer: &consumer,
                topic: &self.config.topic,
                positions,
                filter,
                event_header: self.config.event_header.as_deref(),
                default_event: &self.config.default_event,
                keepalive: self.config.keepalive.0,
                slow: self.config.slow_client_timeout.0,
                on_event: &on_event,
                signer: &self.signer,
                retired: &|| self.cluster.is_closed(),
            },
        )
        .await;
        if let Some(m) = METRICS.get() {
            m.disconnects
                .with_label_values(&[&route, end.label()])
                .inc();
        }
        ctx.responded_by = Some(KafkaSse::NAME);
        Ok(Flow::Responded)
    }
}
