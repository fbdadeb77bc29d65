//! The answers of a diverted request: `202` with where the record landed, and every
//! rejection as an `application/problem+json` with the right status.
//!
//! | status | when |
//! |---|---|
//! | 202 | acknowledged by the broker (synced to the spool with `acks: spool`, queued with `acks: none`) |
//! | 400 | empty body (unless allowed), missing or malformed idempotency key |
//! | 409 | the idempotency key's first request is still in flight |
//! | 413 | body over `max_body_bytes`, or the broker says the record is too large |
//! | 422 | the idempotency key was used with another payload |
//! | 502 | the broker refused for good: unknown topic, not authorized, invalid record |
//! | 503 | not acknowledged in time, broker error, queue full, shutting down (`Retry-After`) |

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use serde::Serialize;
use sluice_core::HttpResponse;
use sluice_kafka::event::code_reason;
use sluice_kafka::Acked;

#[derive(Serialize)]
struct Accepted<'a> {
    id: &'a str,
    topic: &'a str,
    partition: Option<i32>,
    offset: Option<i64>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    spooled: bool,
}

/// `202 Accepted` with `{"id","topic","partition","offset"}` (partition and offset are
/// null when the route does not wait for the acknowledgement).
pub fn accepted(id: &str, topic: &str, ack: Option<&Acked>) -> HttpResponse {
    HttpResponse::json(
        202,
        &Accepted {
            id,
            topic,
            partition: ack.map(|a| a.partition),
            offset: ack.map(|a| a.offset),
            spooled: false,
        },
    )
}

/// `202 Accepted` for `acks: spool`: stored durably, delivered later
/// (`{"id","topic","partition":null,"offset":null,"spooled":true}`).
pub fn spooled(id: &str, topic: &str) -> HttpResponse {
    HttpResponse::json(
        202,
        &Accepted {
            id,
            topic,
            partition: None,
            offset: None,
            spooled: true,
        },
    )
}

/// A rejection: status, metric reason, problem body.
pub struct Rejection {
    /// HTTP status.
    pub status: u16,
    /// Low-cardinality reason for `sluice_divert_requests_total`.
    pub reason: String,
    /// Human detail for the problem body.
    pub detail: String,
    /// The Kafka error code, when the broker or client refused.
    pub kafka_error: Option<String>,
}

impl Rejection {
    /// A rejection decided by Sluice itself.
    pub fn new(status: u16, reason: &str, detail: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
            detail: detail.into(),
            kafka_error: None,
        }
    }

    /// The response; `503` carries `Retry-After` (whole seconds, at least 1).
    pub fn response(&self, request_id: &str, retry_after_secs: u64) -> HttpResponse {
        let ext: Vec<(&str, &str)> = self
            .kafka_error
            .as_deref()
            .map(|k| vec![("kafka_error", k)])
            .unwrap_or_default();
        let r = HttpResponse::problem_with(self.status, &self.detail, request_id, &ext);
        if self.status == 503 {
            r.with_header("retry-after", retry_after_secs.max(1).to_string())
        } else {
            r
        }
    }
}

/// A record the producer would not queue (`queue_full`, `shutting_down`, ...).
pub fn not_queued(reason: &str) -> Rejection {
    if reason == "message_size_too_large" {
        return Rejection::new(
            413,
            "record_too_large",
            "the record is larger than the producer accepts",
        );
    }
    Rejection::new(
        503,
        reason,
        "the event could not be queued for Kafka; retry later",
    )
}

/// A delivery report with an error.
pub fn broker_error(e: &KafkaError) -> Rejection {
    use RDKafkaErrorCode::*;
    let code = e.rdkafka_error_code();
    let kafka_error = code.map(code_reason);
    let (status, reason, detail) = match code {
        Some(MessageSizeTooLarge) => (
            413,
            "record_too_large",
            "the broker refused the record as too large",
        ),
        Some(UnknownTopicOrPartition | UnknownTopic | UnknownPartition) => {
            (502, "unknown_topic", "the broker does not know the topic")
        }
        Some(TopicAuthorizationFailed | ClusterAuthorizationFailed) => (
            502,
            "not_authorized",
            "the broker refused: not authorized for the topic",
        ),
        Some(InvalidRecord | InvalidMessage | InvalidMessageSize | InvalidTopic) => (
            502,
            "invalid_record",
            "the broker refused the record as invalid",
        ),
        Some(MessageTimedOut) => (
            503,
            "not_acknowledged",
            "the broker did not acknowledge the event in time",
        ),
        _ => (
            503,
            "broker_error",
            "the broker did not acknowledge the event",
        ),
    };
    Rejection {
        status,
        reason: reason.into(),
        detail: detail.into(),
        kafka_error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(r: &HttpResponse) -> serde_json::Value {
        serde_json::from_slice(&r.body).unwrap()
    }

    #[test]
    fn accepted_body() {
        let r = accepted(
            "id-1",
            "orders",
            Some(&Acked {
                partition: 2,
                offset: 41,
            }),
        );
        assert_eq!(r.status, 202);
        assert_eq!(
            body(&r),
            serde_json::json!({"id":"id-1","topic":"orders","partition":2,"offset":41})
        );
        let queued = accepted("id-2", "orders", None);
        assert_eq!(body(&queued)["partition"], serde_json::Value::Null);
    }

    #[test]
    fn broker_errors_map_to_statuses() {
        let e = |c| KafkaError::MessageProduction(c);
        let cases = [
            (
                RDKafkaErrorCode::MessageSizeTooLarge,
                413,
                "message_size_too_large",
            ),
            (
                RDKafkaErrorCode::UnknownTopicOrPartition,
                502,
                "unknown_topic_or_partition",
            ),
            (
                RDKafkaErrorCode::TopicAuthorizationFailed,
                502,
                "topic_authorization_failed",
            ),
            (RDKafkaErrorCode::MessageTimedOut, 503, "message_timed_out"),
            (
                RDKafkaErrorCode::NotEnoughReplicas,
                503,
                "not_enough_replicas",
            ),
        ];
        for (code, status, kafka_error) in cases {
            let r = broker_error(&e(code));
            assert_eq!(r.status, status, "{code:?}");
            let resp = r.response("rid", 2);
            let v = body(&resp);
            assert_eq!(v["kafka_error"], kafka_error);
            assert_eq!(v["status"], status);
            let retry = resp
                .headers
                .iter()
                .find(|(n, _)| n == "retry-after")
                .map(|(_, v)| v.as_str());
            assert_eq!(retry, (status == 503).then_some("2"));
        }
    }

    #[test]
    fn local_queue_errors_are_503_or_413() {
        assert_eq!(not_queued("queue_full").status, 503);
        assert_eq!(not_queued("shutting_down").status, 503);
        assert_eq!(not_queued("message_size_too_large").status, 413);
    }
}
