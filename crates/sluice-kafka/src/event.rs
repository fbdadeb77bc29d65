//! The event a plugin hands to a cluster, the low-cardinality reason codes for events
//! that did not make it, and reading the headers of a record read back.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};

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

impl OutgoingEvent {
    /// The event as bytes for the disk spool: length-prefixed topic, key, value and
    /// headers (the timestamp is stored by the spool itself).
    pub fn encode(&self) -> Vec<u8> {
        fn put(out: &mut Vec<u8>, b: &[u8]) {
            out.extend_from_slice(&(b.len() as u32).to_le_bytes());
            out.extend_from_slice(b);
        }
        let mut out = Vec::with_capacity(self.value.len() + self.topic.len() + 64);
        put(&mut out, self.topic.as_bytes());
        match &self.key {
            Some(k) => {
                out.push(1);
                put(&mut out, k);
            }
            None => out.push(0),
        }
        put(&mut out, &self.value);
        out.extend_from_slice(&(self.headers.len() as u32).to_le_bytes());
        for (k, v) in &self.headers {
            put(&mut out, k.as_bytes());
            put(&mut out, v);
        }
        out
    }

    /// Decode [`Self::encode`]'s bytes; `None` if they are not an event.
    pub fn decode(b: &[u8], timestamp_ms: i64) -> Option<Self> {
        struct R<'a>(&'a [u8]);
        impl<'a> R<'a> {
            fn take(&mut self, n: usize) -> Option<&'a [u8]> {
                if self.0.len() < n {
                    return None;
                }
                let (h, t) = self.0.split_at(n);
                self.0 = t;
                Some(h)
            }
            fn u32(&mut self) -> Option<usize> {
                let b = self.take(4)?;
                Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            }
            fn bytes(&mut self) -> Option<&'a [u8]> {
                let n = self.u32()?;
                self.take(n)
            }
        }
        let mut r = R(b);
        let topic = String::from_utf8(r.bytes()?.to_vec()).ok()?;
        let key = match r.take(1)?[0] {
            0 => None,
            _ => Some(r.bytes()?.to_vec()),
        };
        let value = r.bytes()?.to_vec();
        let n = r.u32()?;
        let mut headers = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            let k = String::from_utf8(r.bytes()?.to_vec()).ok()?;
            headers.push((k, r.bytes()?.to_vec()));
        }
        r.0.is_empty().then_some(Self {
            topic,
            key,
            value,
            headers,
            timestamp_ms: Some(timestamp_ms),
        })
    }
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

/// Errors no retry can fix: the record itself (too large, invalid, bad timestamp) or
/// its topic (invalid, unknown after a metadata refresh, not authorized). Such events
/// are never spooled, and a spooled one is set aside at once.
pub fn permanent(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::MessageSizeTooLarge
            | C::InvalidMessageSize
            | C::InvalidMessage
            | C::InvalidRecord
            | C::MessageBatchTooLarge
            | C::InvalidTimestamp
            | C::InvalidTopic
            | C::UnknownTopic
            | C::TopicAuthorizationFailed
    )
}

/// [`permanent`] for an error, and for a refusal reason (a snake-case code name).
pub fn permanent_error(e: &KafkaError) -> bool {
    e.rdkafka_error_code().is_some_and(permanent)
}

/// [`permanent`] for a reason returned by a refused enqueue.
pub fn permanent_reason(reason: &str) -> bool {
    matches!(
        reason,
        "message_size_too_large"
            | "invalid_message_size"
            | "invalid_message"
            | "invalid_record"
            | "message_batch_too_large"
            | "invalid_timestamp"
            | "invalid_topic"
            | "unknown_topic"
            | "topic_authorization_failed"
    )
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

/// The value of record `m`'s first header `name` (none for a null value).
pub fn header<'a, M: Message>(m: &'a M, name: &str) -> Option<&'a [u8]> {
    m.headers()
        .and_then(|h| h.iter().find(|x| x.key == name).and_then(|x| x.value))
}

/// Every header of record `m`, as an event carries them (a null value is empty).
pub fn headers<M: Message>(m: &M) -> Vec<(String, Vec<u8>)> {
    m.headers()
        .map(|h| {
            h.iter()
                .map(|x| (x.key.to_string(), x.value.unwrap_or_default().to_vec()))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permanent_codes_and_their_reasons_agree() {
        use RDKafkaErrorCode as C;
        for c in [
            C::MessageSizeTooLarge,
            C::InvalidMessageSize,
            C::InvalidMessage,
            C::InvalidRecord,
            C::MessageBatchTooLarge,
            C::InvalidTimestamp,
            C::InvalidTopic,
            C::UnknownTopic,
            C::TopicAuthorizationFailed,
        ] {
            assert!(permanent(c));
            assert!(permanent_reason(&code_reason(c)), "{}", code_reason(c));
        }
        for c in [
            C::MessageTimedOut,
            C::QueueFull,
            C::AllBrokersDown,
            C::NotLeaderForPartition,
        ] {
            assert!(!permanent(c));
            assert!(!permanent_reason(&code_reason(c)));
        }
    }

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
    fn spool_encoding_round_trips() {
        let e = OutgoingEvent {
            topic: "orders".into(),
            key: Some(b"k".to_vec()),
            value: vec![0, 255, 7],
            headers: vec![("ce_id".into(), b"id-1".to_vec()), ("x".into(), vec![])],
            timestamp_ms: Some(42),
        };
        assert_eq!(OutgoingEvent::decode(&e.encode(), 42), Some(e.clone()));
        let no_key = OutgoingEvent {
            key: None,
            ..e.clone()
        };
        assert_eq!(OutgoingEvent::decode(&no_key.encode(), 42), Some(no_key));
        let bytes = e.encode();
        assert_eq!(OutgoingEvent::decode(&bytes[..bytes.len() - 1], 42), None);
        assert_eq!(OutgoingEvent::decode(b"\xff\xff\xff\xff", 0), None);
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
