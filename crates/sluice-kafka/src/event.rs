//! The event a plugin hands to a cluster, and the low-cardinality reason codes for
//! events that did not make it.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// One Kafka record to produce.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutgoingEvent {
    /// Destination topic.
    pub topic: String,
    /// Record key; `None` lets the partitioner spread records.
    pub key: Option<Vec<u8>>,
    /// Record value.
    pub value: Vec<u8>,
    /// Record headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// CreateTime in milliseconds since the epoch; `None` means "now".
    pub timestamp_ms: Option<i64>,
}

/// True for a legal Kafka topic name (1-249 of `[a-zA-Z0-9._-]`, not `.` or `..`).
pub fn valid_topic(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 249
        && t != "."
        && t != ".."
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// A metric-label reason for a Kafka error: the error code in snake case
/// (`queue_full`, `message_timed_out`, `msg_size_too_large`, ...).
pub fn reason(e: &KafkaError) -> String {
    match e.rdkafka_error_code() {
        Some(code) => code_reason(code),
        None => "client_error".into(),
    }
}

/// The snake-case name of an error code.
pub fn code_reason(code: RDKafkaErrorCode) -> String {
    let name = format!("{code:?}");
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_snake_case() {
        assert_eq!(code_reason(RDKafkaErrorCode::QueueFull), "queue_full");
        assert_eq!(
            code_reason(RDKafkaErrorCode::MessageTimedOut),
            "message_timed_out"
        );
        assert_eq!(
            reason(&KafkaError::MessageProduction(
                RDKafkaErrorCode::MessageSizeTooLarge
            )),
            "message_size_too_large"
        );
    }

    #[test]
    fn topic_names() {
        assert!(valid_topic("http-log.v1_x"));
        assert!(!valid_topic(""));
        assert!(!valid_topic(".."));
        assert!(!valid_topic("a/b"));
        assert!(!valid_topic(&"a".repeat(250)));
    }
}
