//! The `kafka-logger` plugin: mirrors every request/response exchange of its route to
//! Kafka as **one record per request** (never an array of many), built in the log
//! phase and handed to the cluster's shared producer with a non-blocking enqueue. The
//! proxied response never waits on Kafka; when the producer queue is full the event is
//! discarded and counted (`sluice_kafka_events_total{outcome="discarded"}`).
//!
//! Split as in Vector: [`config`] (the user-facing schema), [`capture`] (capped body
//! capture), [`encoder`] (entry JSON and record headers), and the plugin here.

pub mod capture;
pub mod config;
pub mod encoder;
#[cfg(test)]
mod trait_tests;

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use pingora_error::Result;
use sluice_core::config::decode::FieldError;
use sluice_core::config::path::FieldPath;
use sluice_core::{BuildScope, Phases, Plugin, PluginSpec, RequestCtx, Summary};
use sluice_kafka::{Destination, EventCounters, KafkaRuntime, OutgoingEvent};

use capture::LoggerState;
use config::{Delivery, KafkaLoggerConfig};
use encoder::{encode_entry_within, record_headers, EncodeOptions, Exchange};

/// The plugin factory; holds the Kafka runtime whose clusters instances send to.
pub struct KafkaLogger {
    kafka: Arc<KafkaRuntime>,
}

impl KafkaLogger {
    /// A factory sending to the clusters of `kafka`.
    pub fn new(kafka: Arc<KafkaRuntime>) -> Self {
        Self { kafka }
    }
}

/// One configured instance (one route).
pub struct KafkaLoggerPlugin {
    dest: Destination,
    delivery: Delivery,
    opts: EncodeOptions,
    req_cap: Option<usize>,
    resp_cap: Option<usize>,
    /// Largest record the cluster's producer sends (`message.max.bytes`).
    max_record: usize,
    counters: Arc<EventCounters>,
}

/// librdkafka's default `message.max.bytes`.
const DEFAULT_MAX_RECORD: usize = 1_000_000;
/// Room kept in a record for the key, headers and framing besides the entry.
const RECORD_OVERHEAD: usize = 512;

/// The cluster's record size limit: its `message.max.bytes` property, or librdkafka's
/// default.
fn max_record(
    props: &std::collections::BTreeMap<String, sluice_core::config::kafka::PropertyValue>,
) -> usize {
    props
        .get("message.max.bytes")
        .and_then(|v| v.to_property().parse().ok())
        .unwrap_or(DEFAULT_MAX_RECORD)
}

impl PluginSpec for KafkaLogger {
    const NAME: &'static str = "kafka-logger";
    // APISIX's kafka-logger priority.
    const PRIORITY: i32 = 403;
    type Config = KafkaLoggerConfig;

    fn build(
        &self,
        c: KafkaLoggerConfig,
        at: &FieldPath,
        scope: &BuildScope<'_>,
    ) -> std::result::Result<Arc<dyn Plugin>, Vec<FieldError>> {
        let mut errors = Vec::new();
        let dest = Destination::build(&self.kafka, c.target(), at, scope, &mut errors);
        if let (Some(d), Delivery::AtLeastOnce) = (&dest, c.delivery) {
            d.require_spool(at, "delivery", "`at_least_once`", &mut errors);
        }
        let mut redact = Vec::new();
        for (i, h) in c.redact_headers.iter().enumerate() {
            match http::HeaderName::from_bytes(h.as_bytes()) {
                Ok(n) => redact.push(n.as_str().to_string()),
                Err(_) => errors.push(FieldError::value(
                    at.key("redact_headers").index(i),
                    format!("{h:?} is not a header name"),
                )),
            }
        }
        let limit = dest.as_ref().map_or(DEFAULT_MAX_RECORD, |d| {
            max_record(&d.cluster.config().properties)
        });
        for (field, on, cap) in [
            (
                "max_req_body_bytes",
                c.include_req_body,
                c.max_req_body_bytes.0,
            ),
            (
                "max_resp_body_bytes",
                c.include_resp_body,
                c.max_resp_body_bytes.0,
            ),
        ] {
            // A body alone must fit in a record with the entry's other fields.
            let fits = limit.saturating_sub(4 * RECORD_OVERHEAD) as u64;
            if cap > 64 << 20 {
                errors.push(FieldError::value(at.key(field), "must be at most 64MiB"));
            } else if on && cap > fits {
                errors.push(FieldError::value(
                    at.key(field),
                    format!(
                        "can never fit: the cluster's records are at most {limit} bytes (`message.max.bytes`); use at most {fits} bytes"
                    ),
                ));
            }
        }
        let (Some(dest), true) = (dest, errors.is_empty()) else {
            return Err(errors);
        };
        Ok(Arc::new(KafkaLoggerPlugin {
            dest,
            delivery: c.delivery,
            opts: EncodeOptions {
                redact,
                redact_query: c.redact_query,
                include_headers: c.include_headers,
                format: c.format,
                ce_source: c
                    .ce_source
                    .unwrap_or_else(|| format!("/routes/{}", scope.route_id)),
                ce_type: c.ce_type,
            },
            req_cap: c
                .include_req_body
                .then_some(c.max_req_body_bytes.0 as usize),
            resp_cap: c
                .include_resp_body
                .then_some(c.max_resp_body_bytes.0 as usize),
            max_record: limit,
            counters: Arc::new(EventCounters::new(scope.route_id, Self::NAME)),
        }))
    }
}

impl KafkaLoggerPlugin {
    fn with_state(ctx: &mut RequestCtx, f: impl FnOnce(&mut LoggerState)) {
        match ctx.ext.get_mut::<LoggerState>() {
            Some(s) => f(s),
            None => {
                let mut s = LoggerState::default();
                f(&mut s);
                ctx.ext.insert(s);
            }
        }
    }
}

#[async_trait]
impl Plugin for KafkaLoggerPlugin {
    fn phases(&self) -> Phases {
        let mut phases = Phases::LOG;
        if self.req_cap.is_some() {
            phases = phases | Phases::REQUEST_BODY;
        }
        if self.resp_cap.is_some() {
            phases = phases | Phases::RESPONSE_BODY;
        }
        phases
    }

    async fn request_body(
        &self,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let (Some(cap), Some(chunk)) = (self.req_cap, body.as_ref()) {
            Self::with_state(ctx, |s| s.request.push(chunk, cap));
        }
        Ok(())
    }

    fn response_body(
        &self,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let (Some(cap), Some(chunk)) = (self.resp_cap, body.as_ref()) {
            Self::with_state(ctx, |s| s.response.push(chunk, cap));
        }
        Ok(())
    }

    async fn log(&self, done: &Summary<'_>, ctx: &mut RequestCtx) {
        let state = ctx.ext.remove::<LoggerState>();
        let req = done.request;
        let data = ctx.request_data(req);
        let topic = match self.dest.topic(&data) {
            Ok(t) => t,
            Err(e) => {
                self.counters.discarded_unsent(e.reason());
                return;
            }
        };
        let key = self.dest.key(&data);
        let id = uuid::Uuid::now_v7().to_string();
        let error_kind = done.error.map(|e| e.etype().as_str());
        let started_at = ctx.started_at();
        let exchange = Exchange {
            id: &id,
            started_at,
            route_id: ctx.route_id(),
            request_id: &ctx.request_id,
            client_ip: ctx.client_ip,
            consumer: ctx.consumer.as_ref(),
            credentials: &ctx.credentials,
            request: req,
            request_size: done.request_body_bytes,
            request_body: self.req_cap.and(state.as_ref().map(|s| &s.request)),
            response: done.response,
            response_size: done.response_body_bytes,
            response_body: self.resp_cap.and(state.as_ref().map(|s| &s.response)),
            upstream: ctx.upstream.addr.as_deref(),
            error: error_kind,
            total_seconds: ctx.started.elapsed().as_secs_f64(),
            upstream_seconds: ctx.upstream_seconds(),
        };
        let event = OutgoingEvent {
            topic,
            key,
            value: Vec::new(),
            headers: record_headers(&exchange, &self.opts),
            timestamp_ms: started_at
                .duration_since(std::time::UNIX_EPOCH)
                .ok()
                .map(|d| d.as_millis() as i64),
        };
        let mut event = event;
        let around = event.key.as_ref().map_or(0, Vec::len)
            + event
                .headers
                .iter()
                .map(|(n, v)| n.len() + v.len() + 8)
                .sum::<usize>()
            + RECORD_OVERHEAD;
        event.value = encode_entry_within(
            &exchange,
            &self.opts,
            self.max_record.saturating_sub(around),
        );
        match self.delivery {
            Delivery::BestEffort => self.dest.cluster.send(&event, &self.counters),
            Delivery::AtLeastOnce => self.dest.cluster.send_reliable(&event, &self.counters),
        }
    }
}
