//! The `kafka-divert` plugin: on its route, a request is not proxied; its body becomes
//! one Kafka record and the client is answered `202 Accepted` only after the broker
//! acknowledged the record — never before (unless the route says `acks: none`). Not
//! acknowledged in time, or refused: a `503` with `Retry-After` (or the fitting 4xx/502)
//! and an `application/problem+json` body. `Idempotency-Key` replays the stored `202`
//! without producing again, and derives the event id from the key.
//!
//! Split: [`config`] (user-facing schema), [`record`] (the Kafka
//! record), [`idempotency`] (the key store), [`reply`] (statuses), [`metrics`].

pub mod config;
pub mod idempotency;
pub mod metrics;
pub mod record;
pub mod reply;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora_error::Result;

use sluice_core::config::Acks as ClusterAcks;
use sluice_core::{Flow, HttpResponse, Phases, Plugin, Request, RequestCtx};
use sluice_kafka::{Destination, EventCounters, KafkaRuntime};

use config::{DivertAcks, IdempotencyScope, KafkaDivertConfig};
use idempotency::{Decision, Keys};
use record::{RecordInput, RecordSpec};
use reply::Rejection;

/// The plugin factory; holds the Kafka runtime whose clusters instances produce to.
pub struct KafkaDivert {
    kafka: Arc<KafkaRuntime>,
    stores: Arc<sluice_store::Stores>,
}

impl KafkaDivert {
    /// A factory producing to the clusters of `kafka`, keeping `idempotency.policy:
    /// redis` keys in the servers of `stores`.
    pub fn new(kafka: Arc<KafkaRuntime>, stores: Arc<sluice_store::Stores>) -> Self {
        Self { kafka, stores }
    }
}

/// One configured instance (one route).
pub struct KafkaDivertPlugin {
    dest: Destination,
    spec: RecordSpec,
    acks: DivertAcks,
    timeout: Duration,
    /// Its producer profile, held while the instance lives.
    profile: sluice_kafka::ProfileUse,
    max_body: usize,
    allow_empty: bool,
    retry_after_secs: u64,
    key_header: http::HeaderName,
    key_required: bool,
    key_scope: IdempotencyScope,
    keys: Keys,
    counters: Arc<EventCounters>,
}

mod build;
#[cfg(test)]
mod trait_tests;

/// The validated idempotency key of a request, or why it is refused.
fn idempotency_key(
    header: Option<&http::HeaderValue>,
    required: bool,
) -> std::result::Result<Option<String>, Rejection> {
    let Some(v) = header else {
        return if required {
            Err(Rejection::new(
                400,
                "idempotency_key_missing",
                "this route requires an Idempotency-Key header",
            ))
        } else {
            Ok(None)
        };
    };
    let raw = v.as_bytes();
    // RFC 8941 sf-string (`"..."`), or a bare token as many clients send.
    let inner = raw
        .strip_prefix(b"\"")
        .and_then(|r| r.strip_suffix(b"\""))
        .unwrap_or(raw);
    let valid = !inner.is_empty()
        && inner.len() <= 255
        && inner
            .iter()
            .all(|b| (0x21..=0x7e).contains(b) && *b != b'"' && *b != b'\\');
    if !valid {
        return Err(Rejection::new(
            400,
            "idempotency_key_invalid",
            "the Idempotency-Key must be 1-255 visible ASCII characters",
        ));
    }
    Ok(Some(String::from_utf8_lossy(inner).into_owned()))
}

impl KafkaDivertPlugin {
    fn reject(&self, ctx: &RequestCtx, r: &Rejection) -> Flow {
        metrics::count(ctx.route_id(), "rejected", &r.reason);
        Flow::Respond(r.response(&ctx.request_id, self.retry_after_secs))
    }

    /// Produce and wait as the route asks; the `202`, or why not.
    async fn produce(
        &self,
        event: &sluice_kafka::OutgoingEvent,
        id: &str,
        route: &str,
    ) -> std::result::Result<HttpResponse, Rejection> {
        if self.acks == DivertAcks::Spool {
            return self.spool(event, id).await;
        }
        let rx = self
            .dest
            .cluster
            .send_acked(event, &self.counters, Some(self.profile.profile()))
            .map_err(|refused| reply::not_queued(&refused.reason))?;
        if self.acks == DivertAcks::None {
            return Ok(reply::accepted(id, &event.topic, None));
        }
        let started = Instant::now();
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(Ok(ack))) => {
                if let Some(m) = metrics::divert() {
                    m.ack_duration
                        .with_label_values(&[route])
                        .observe(started.elapsed().as_secs_f64());
                }
                Ok(reply::accepted(id, &event.topic, Some(&ack)))
            }
            Ok(Ok(Err(e))) => Err(reply::broker_error(&e)),
            // The delivery report never came (the producer is gone) or not in time.
            Ok(Err(_)) | Err(_) => Err(Rejection::new(
                503,
                "not_acknowledged",
                format!(
                    "the broker did not acknowledge the event within {}",
                    humantime::format_duration(self.timeout)
                ),
            )),
        }
    }
}

impl KafkaDivertPlugin {
    /// `acks: spool`: the `202` once the record is synced to the disk spool.
    async fn spool(
        &self,
        event: &sluice_kafka::OutgoingEvent,
        id: &str,
    ) -> std::result::Result<HttpResponse, Rejection> {
        let rx = self
            .dest
            .cluster
            .spool_durably(event, &self.counters)
            .map_err(|reason| {
                Rejection::new(503, reason, "the event could not be stored; retry later")
            })?;
        match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(Ok(()))) => Ok(reply::spooled(id, &event.topic)),
            Ok(Ok(Err(e))) => Err(Rejection::new(
                503,
                sluice_kafka::spool_reason(&e),
                "the event could not be stored; retry later",
            )),
            Ok(Err(_)) | Err(_) => Err(Rejection::new(
                503,
                "spool_timeout",
                "the event was not stored in time; retry later",
            )),
        }
    }
}

#[async_trait]
impl Plugin for KafkaDivertPlugin {
    fn phases(&self) -> Phases {
        Phases::REQUEST
    }

    fn answers_requests(&self) -> bool {
        true
    }

    fn reads_request_body(&self) -> bool {
        true
    }

    async fn request(&self, req: &mut Request<'_>, ctx: &mut RequestCtx) -> Result<Flow> {
        let key = match idempotency_key(req.header_value(&self.key_header), self.key_required) {
            // Keys are scoped (to the consumer, the client address, or not at all): two
            // clients in different scopes using the same key do not see each other's
            // responses, and their events get different ids.
            Ok(k) => k.map(|k| match self.key_scope {
                // (The format of earlier versions, so event ids stay the same.)
                IdempotencyScope::Consumer => {
                    format!("{}\n{k}", ctx.consumer_name().unwrap_or(""))
                }
                IdempotencyScope::ClientIp => format!(
                    "ip\n{}\n{k}",
                    ctx.client_ip.map(|i| i.to_string()).unwrap_or_default()
                ),
                IdempotencyScope::Global => k,
            }),
            Err(r) => return Ok(self.reject(ctx, &r)),
        };
        let Some(mut reader) = req.body() else {
            return Err(pingora_error::Error::explain(
                pingora_error::ErrorType::InternalError,
                "kafka-divert was not lent the request body",
            ));
        };
        let body = match reader.read_capped(self.max_body).await? {
            Some(b) => b,
            None => {
                // The rest of the body is not read: close the connection after answering.
                reader.close_after_response();
                let r = Rejection::new(
                    413,
                    "body_too_large",
                    format!("the body is larger than {} bytes", self.max_body),
                );
                return Ok(self.reject(ctx, &r));
            }
        };
        if body.is_empty() && !self.allow_empty {
            return Ok(self.reject(
                ctx,
                &Rejection::new(400, "empty_body", "the request has no body"),
            ));
        }
        let req = req.header();
        let route = ctx.route_id().to_string();
        let claim = match &key {
            None => None,
            Some(k) => match self
                .keys
                .begin(k, record::fingerprint(req, &body), Instant::now())
                .await
            {
                Decision::Proceed(c) => Some(c),
                Decision::Replay(stored) => {
                    metrics::count(&route, "replayed", "");
                    return Ok(Flow::Respond(
                        stored.with_header("idempotent-replayed", "true"),
                    ));
                }
                Decision::InFlight => {
                    let r = Rejection::new(
                        409,
                        "idempotency_conflict",
                        "a request with this Idempotency-Key is still being processed",
                    );
                    return Ok(self.reject(ctx, &r));
                }
                Decision::Mismatch => {
                    let r = Rejection::new(
                        422,
                        "idempotency_mismatch",
                        "this Idempotency-Key was used with a different request",
                    );
                    return Ok(self.reject(ctx, &r));
                }
                Decision::Full => {
                    let r = Rejection::new(
                        503,
                        "idempotency_store_full",
                        "too many requests with idempotency keys in flight",
                    );
                    return Ok(self.reject(ctx, &r));
                }
                Decision::Unavailable => {
                    let r = Rejection::new(
                        503,
                        "idempotency_store_unavailable",
                        "the idempotency key store is unavailable; retry later",
                    );
                    return Ok(self.reject(ctx, &r));
                }
            },
        };
        let data = ctx.request_data(req);
        let topic = match self.dest.topic(&data) {
            Ok(t) => t,
            Err(e) => {
                self.counters.discarded_unsent(e.reason());
                sluice_core::metrics::reject(ctx.route_id(), e.reason());
                let r = Rejection::new(404, e.reason(), "no topic for this request");
                return Ok(self.reject(ctx, &r));
            }
        };
        let id = record::event_id(&route, key.as_deref());
        let event = record::build(
            &self.spec,
            RecordInput {
                topic,
                key: self.dest.key(&data),
                id: &id,
                time: ctx.started_at(),
                req,
                body: body.to_vec(),
                consumer: ctx.consumer.as_ref(),
            },
        );
        match self.produce(&event, &id, &route).await {
            Ok(resp) => {
                metrics::count(&route, "accepted", "");
                if let Some(c) = claim {
                    c.complete(&resp, Instant::now()).await;
                }
                Ok(Flow::Respond(resp))
            }
            Err(r) => Ok(self.reject(ctx, &r)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(v: Option<&str>, required: bool) -> std::result::Result<Option<String>, u16> {
        let hv = v.map(|s| http::HeaderValue::from_str(s).unwrap());
        idempotency_key(hv.as_ref(), required).map_err(|r| r.status)
    }

    #[test]
    fn idempotency_keys_are_validated() {
        assert_eq!(key(None, false), Ok(None));
        assert_eq!(key(None, true), Err(400));
        assert_eq!(
            key(Some("\"8e03978e-40d5-43e8-bc93-6894a57f9324\""), true),
            Ok(Some("8e03978e-40d5-43e8-bc93-6894a57f9324".into()))
        );
        assert_eq!(key(Some("order-42"), false), Ok(Some("order-42".into())));
        assert_eq!(key(Some("\"\""), false), Err(400));
        assert_eq!(key(Some("has space"), false), Err(400));
        assert_eq!(key(Some(&"x".repeat(256)), false), Err(400));
        assert_eq!(
            key(Some(&"x".repeat(255)), false).map(|k| k.map(|k| k.len())),
            Ok(Some(255))
        );
    }
}
