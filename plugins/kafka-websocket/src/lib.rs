//! The `kafka-websocket` plugin: a `GET` with `Upgrade: websocket` on its route becomes a
//! WebSocket (RFC 6455) bridged to Kafka. **subscribe**: records of a topic become frames,
//! each with the position token that resumes right after it (kafka-sse's signed token,
//! given back as a query parameter on reconnect: no gap, no duplicate). **publish**: each
//! client message becomes a record, answered by an acknowledgement frame with partition
//! and offset only after the broker acknowledged it, or by an error frame, never dropped
//! silently. Pings, an idle timeout, a message size limit (`1009`), a connection cap
//! (`503` before the upgrade), a slow-client cut-off (`1008`) and a clean close on
//! shutdown (`1001`). Authentication and limits apply to the upgrade request.
//!
//! Split: [`config`], [`build`](KafkaWebsocket) (checks the config), [`handshake`],
//! [`socket`] (framing with tungstenite), [`envelope`] (frames ⇄ records), [`session`]
//! (the connection loop), [`metrics`].

mod build;
pub mod config;
pub mod envelope;
pub mod handshake;
pub mod metrics;
pub mod session;
pub mod socket;
#[cfg(test)]
mod trait_tests;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use pingora_error::Result;
use sluice_core::template::query_arg;
use sluice_core::{Flow, HttpResponse, Phases, Plugin, PluginSpec, Request, RequestCtx};
use sluice_kafka::position::Signer;
use sluice_kafka::reader::{self, Filter, Start};
use sluice_kafka::{Cluster, Destination, EventCounters, ProfileUse};

pub use build::KafkaWebsocket;
use config::{Format, KafkaWebsocketConfig};
use session::{Limits, Publisher, Subscribed};
use socket::Socket;

/// The subscription side, checked at build.
struct SubscribeSide {
    topic: String,
    start: Start,
    key: Option<sluice_core::template::Template>,
    format: Format,
    position_param: String,
    signer: Signer,
}

/// The publish side, checked at build.
struct PublishSide {
    dest: Destination,
    key_template: bool,
    counters: Arc<EventCounters>,
    /// Its producer profile, held while the instance lives.
    profile: ProfileUse,
    timeout: std::time::Duration,
    max_in_flight: usize,
    format: Format,
}

/// One configured instance (one route).
pub struct KafkaWebsocketPlugin {
    cluster: Arc<Cluster>,
    subscribe: Option<SubscribeSide>,
    publish: Option<PublishSide>,
    config: KafkaWebsocketConfig,
    open: Arc<AtomicUsize>,
}

/// Gives the connection slot back and counts the close, however the connection ends.
struct Slot(Arc<AtomicUsize>, String);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
        if let Some(m) = metrics::metrics() {
            m.connections.with_label_values(&[&self.1]).dec();
        }
    }
}

impl KafkaWebsocketPlugin {
    fn unavailable(ctx: &RequestCtx, reason: &str, detail: &str) -> Flow {
        Flow::Respond(
            HttpResponse::refusal(ctx, 503, reason, detail).with_header("retry-after", "1"),
        )
    }
}

#[async_trait]
impl Plugin for KafkaWebsocketPlugin {
    fn phases(&self) -> Phases {
        Phases::REQUEST
    }

    fn answers_requests(&self) -> bool {
        true
    }

    fn upgrades_connection(&self) -> bool {
        true
    }

    async fn request(&self, req: &mut Request<'_>, ctx: &mut RequestCtx) -> Result<Flow> {
        let route = ctx.route_id().to_string();
        let data_header = req.header().clone();
        let Some(mut up) = req.upgrade() else {
            return Err(pingora_error::Error::explain(
                pingora_error::ErrorType::InternalError,
                "kafka-websocket was not lent the connection",
            ));
        };
        let key = match handshake::check(&up, &self.config.allowed_origins) {
            Ok(k) => k.to_string(),
            Err(refusal) => return Ok(Flow::Respond(handshake::refuse(ctx, refusal))),
        };
        let data = ctx.request_data(&data_header);
        // Everything that can refuse the connection is checked before the upgrade.
        let resume = match &self.subscribe {
            None => None,
            Some(s) => match data_header
                .uri
                .query()
                .and_then(|q| query_arg(q, &s.position_param))
                .filter(|t| !t.is_empty())
                .map(|t| s.signer.decode(&t))
            {
                None => None,
                Some(Some(p)) => Some(p),
                Some(None) => {
                    let refusal = (
                        400,
                        "invalid_position",
                        "the position token is not one of this route",
                    );
                    return Ok(Flow::Respond(handshake::refuse(ctx, refusal)));
                }
            },
        };
        let publisher = match &self.publish {
            None => None,
            Some(p) => match p.dest.topic(&data) {
                Ok(topic) => Some(Publisher {
                    cluster: self.cluster.clone(),
                    topic,
                    key: p.key_template.then(|| p.dest.key(&data)),
                    counters: p.counters.clone(),
                    profile: p.profile.profile(),
                    timeout: p.timeout,
                    max_in_flight: p.max_in_flight,
                    format: p.format,
                }),
                Err(e) => {
                    let refusal = (404, e.reason(), "no topic of this route for this request");
                    return Ok(Flow::Respond(handshake::refuse(ctx, refusal)));
                }
            },
        };
        if self.open.fetch_add(1, Ordering::AcqRel) >= self.config.max_connections {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return Ok(Self::unavailable(
                ctx,
                "too_many_connections",
                "too many WebSocket connections on this route",
            ));
        }
        let _slot = Slot(self.open.clone(), route.clone());
        if let Some(m) = metrics::metrics() {
            m.connections.with_label_values(&[&route]).inc();
        }
        if !self.cluster.is_started() {
            return Ok(Self::unavailable(
                ctx,
                "kafka_unavailable",
                "Kafka is not available yet",
            ));
        }
        let subscribed = match &self.subscribe {
            None => None,
            Some(s) => {
                let Some(cfg) = self.cluster.consumer_config() else {
                    return Ok(Self::unavailable(
                        ctx,
                        "kafka_unavailable",
                        "Kafka is not available yet",
                    ));
                };
                match reader::open(cfg, "sluice-websocket", &s.topic, s.start, resume).await {
                    Ok((consumer, positions)) => Some(Subscribed {
                        consumer,
                        topic: &s.topic,
                        positions,
                        filter: Filter {
                            key: s.key.as_ref().map(|k| k.render(&data).into_bytes()),
                            header: None,
                        },
                        signer: &s.signer,
                        format: s.format,
                    }),
                    Err(e) => {
                        log::warn!("websocket route `{route}`: {e}");
                        return Ok(Self::unavailable(
                            ctx,
                            "topic_unavailable",
                            "the topic is not available",
                        ));
                    }
                }
            }
        };
        up.accept(handshake::accepted(&key)?).await?;
        ctx.responded_by = Some(KafkaWebsocket::NAME);
        let mut socket = Socket::new(self.config.max_message_bytes.0 as usize);
        if let Some(s) = &subscribed {
            // The starting position, so a client that gets no record can still resume.
            let hello = serde_json::json!({"type": "subscribed", "topic": s.topic, "position": s.signer.encode(&s.positions)});
            if s.format == Format::Envelope {
                let _ = socket.send(tungstenite::Message::text(hello.to_string()));
            }
        }
        let limits = Limits {
            ping: self.config.ping_interval.0,
            idle: self.config.idle_timeout.0,
            slow: self.config.slow_client_timeout.0,
        };
        let cluster = self.cluster.clone();
        let closed = session::run(
            &route,
            &mut up,
            &mut socket,
            subscribed,
            publisher,
            &limits,
            &|| cluster.is_closed(),
        )
        .await;
        if let Some(m) = metrics::metrics() {
            // Codes a client may choose (3000-4999) are not labels of their own.
            let code = match closed.code {
                1000..=1015 => closed.code.to_string(),
                _ => "other".to_string(),
            };
            m.closes.with_label_values(&[&route, &code]).inc();
        }
        Ok(Flow::Responded)
    }
}
