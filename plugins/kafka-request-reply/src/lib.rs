//! The `kafka-request-reply` plugin: synchronous HTTP over asynchronous topics (Zilla's
//! correlated request-reply). A request becomes a record on the request topic with a
//! correlation id and the reply topic in its headers; the route waits (up to `timeout`)
//! for the record with that correlation id on the reply topic and answers with it
//! (status from `sluice-status`, headers, body = value); `504` on timeout. With
//! `Prefer: respond-async` the client gets `202` and a status URL (`Location`) to poll
//! with `GET`.
//!
//! Split: [`config`], [`build`](KafkaRequestReply), [`exchange`] (request record, reply
//! response), [`replies`] (the reply reader and the waiting table), [`results`] (recent
//! ids, asynchronous results), [`metrics`].

pub mod async_id;
mod build;
pub mod config;
pub mod exchange;
mod matching;
pub mod metrics;
pub mod replies;
pub mod results;
#[cfg(test)]
mod trait_tests;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use http::HeaderName;
use pingora_error::Result;
use sluice_core::template::query_arg;
use sluice_core::{Flow, HttpResponse, Phases, Plugin, Request, RequestCtx};
use sluice_kafka::{Destination, EventCounters, ProfileUse};

pub use build::KafkaRequestReply;
use exchange::{request_record, response, RequestRecord};
use replies::{Replies, Status};

/// The query parameter of a status URL.
pub const STATUS_PARAM: &str = "reply_id";

/// One configured instance (one route).
pub struct RequestReplyPlugin {
    dest: Destination,
    reply_topic: String,
    replies: Arc<Replies>,
    counters: Arc<EventCounters>,
    /// Its producer profile, held while the instance lives.
    profile: ProfileUse,
    timeout: Duration,
    max_body: usize,
    forward: Vec<HeaderName>,
}

/// Stops waiting for a reply when the request ends without one (timed out, refused, or
/// the client went away and the request was dropped), unless kept for a status URL.
struct Pending<'a> {
    replies: &'a Replies,
    id: &'a str,
    keep: bool,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.keep {
            self.replies.give_up(self.id);
        }
    }
}

/// `Prefer: respond-async` (RFC 7240).
fn prefers_async(req: &pingora_http::RequestHeader) -> bool {
    req.headers.get_all("prefer").iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("respond-async"))
        })
    })
}

impl RequestReplyPlugin {
    fn refuse(ctx: &RequestCtx, status: u16, reason: &str, detail: &str) -> Flow {
        metrics::request(ctx.route_id(), reason);
        let r = HttpResponse::refusal(ctx, status, reason, detail);
        Flow::Respond(if status == 503 {
            r.with_header("retry-after", "1")
        } else {
            r
        })
    }

    /// `GET ...?reply_id=ID`: the result of an asynchronous request. Its reply may
    /// reach this instance only through its own reader (another instance took the
    /// request, or this one restarted): the reader is started first, reading back
    /// `async_ttl`.
    async fn status(&self, ctx: &RequestCtx, id: &str, path: &str) -> Flow {
        let mut status = self.replies.status(id, ctx.consumer_name());
        if !matches!(status, Status::Done(_)) && async_id::parse(id).is_some() {
            let reading = self.dest.cluster.is_started()
                && self.replies.ensure_started(self.timeout).await.is_ok();
            if !reading {
                return Self::refuse(
                    ctx,
                    503,
                    "replies_unavailable",
                    "the reply topic cannot be read",
                );
            }
            status = self.replies.status(id, ctx.consumer_name());
        }
        match status {
            Status::Pending => Flow::Respond(
                HttpResponse::json(202, &serde_json::json!({"id": id, "status": "pending"}))
                    .with_header("retry-after", "1")
                    .with_header("location", format!("{path}?{STATUS_PARAM}={id}")),
            ),
            Status::Done(reply) => Flow::Respond(response(&reply, id)),
            Status::Unknown => Self::refuse(
                ctx,
                404,
                "unknown_reply_id",
                "no such request here, or its result expired",
            ),
        }
    }
}

#[async_trait]
impl Plugin for RequestReplyPlugin {
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
        let started = Instant::now();
        let head = req.header().clone();
        let route = ctx.route_id().to_string();
        if head.method == http::Method::GET {
            if let Some(id) = head.uri.query().and_then(|q| query_arg(q, STATUS_PARAM)) {
                return Ok(self.status(ctx, &id, head.uri.path()).await);
            }
        }
        if !self.dest.cluster.is_started() {
            return Ok(Self::refuse(
                ctx,
                503,
                "kafka_unavailable",
                "Kafka is not available yet",
            ));
        }
        if let Err(e) = self.replies.ensure_started(self.timeout).await {
            log::warn!(
                "request-reply route `{route}`: reply topic `{}`: {e}",
                self.reply_topic
            );
            return Ok(Self::refuse(
                ctx,
                503,
                "replies_unavailable",
                "the reply topic cannot be read",
            ));
        }
        let Some(mut reader) = req.body() else {
            return Err(pingora_error::Error::explain(
                pingora_error::ErrorType::InternalError,
                "kafka-request-reply was not lent the request body",
            ));
        };
        let Some(body) = reader.read_capped(self.max_body).await? else {
            reader.close_after_response();
            let detail = format!("the body is larger than {} bytes", self.max_body);
            return Ok(Self::refuse(ctx, 413, "body_too_large", &detail));
        };
        let data = ctx.request_data(&head);
        let topic = match self.dest.topic(&data) {
            Ok(t) => t,
            Err(e) => {
                return Ok(Self::refuse(
                    ctx,
                    404,
                    e.reason(),
                    "no topic for this request",
                ))
            }
        };
        let asynchronous = prefers_async(&head);
        let id = if asynchronous {
            async_id::new_id(ctx.consumer_name(), self.replies.async_ttl())
        } else {
            uuid::Uuid::now_v7().to_string()
        };
        let waiting = if asynchronous {
            let owner = async_id::owner_tag(ctx.consumer_name());
            self.replies.wait_async(&id, owner).map(|()| None)
        } else {
            self.replies.wait(&id).map(Some)
        };
        let Ok(waiting) = waiting else {
            return Ok(Self::refuse(
                ctx,
                503,
                "too_many_pending",
                "too many requests wait for replies",
            ));
        };
        // If this request ends early (the client went away), nobody waits any more.
        let mut pending = Pending {
            replies: &self.replies,
            id: &id,
            keep: false,
        };
        let event = request_record(RequestRecord {
            topic,
            key: self.dest.key(&data),
            id: &id,
            reply_to: &self.reply_topic,
            req: &head,
            body: body.to_vec(),
            forward: &self.forward,
        });
        let acked =
            match self
                .dest
                .cluster
                .send_acked(&event, &self.counters, Some(self.profile.profile()))
            {
                Ok(rx) => tokio::time::timeout(self.timeout, rx).await,
                Err(refused) => {
                    self.replies.give_up(&id);
                    let detail = format!(
                        "the request could not be queued for Kafka ({})",
                        refused.reason
                    );
                    return Ok(Self::refuse(ctx, 503, "not_queued", &detail));
                }
            };
        match acked {
            Ok(Ok(Ok(_))) => {}
            Ok(Ok(Err(e))) => {
                self.replies.give_up(&id);
                log::debug!("request-reply route `{route}`: {e}");
                return Ok(Self::refuse(
                    ctx,
                    502,
                    "broker_error",
                    "Kafka refused the request record",
                ));
            }
            Ok(Err(_)) | Err(_) => {
                self.replies.give_up(&id);
                return Ok(Self::refuse(
                    ctx,
                    504,
                    "timeout",
                    "Kafka did not acknowledge the request in time",
                ));
            }
        }
        let sent = Instant::now();
        let Some(rx) = waiting else {
            pending.keep = true;
            metrics::request(&route, "accepted");
            let location = format!("{}?{STATUS_PARAM}={id}", head.uri.path());
            return Ok(Flow::Respond(
                HttpResponse::json(202, &serde_json::json!({"id": id, "status": "pending"}))
                    .with_header("location", location)
                    .with_header("preference-applied", "respond-async"),
            ));
        };
        let left = self.timeout.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, rx).await {
            Ok(Ok(reply)) => {
                metrics::request(&route, "replied");
                if let Some(m) = metrics::metrics() {
                    m.wait
                        .with_label_values(&[&route])
                        .observe(sent.elapsed().as_secs_f64());
                }
                Ok(Flow::Respond(response(&reply, &id)))
            }
            Ok(Err(_)) | Err(_) => {
                self.replies.give_up(&id);
                Ok(Self::refuse(ctx, 504, "timeout", "no reply in time"))
            }
        }
    }
}
