//! What goes over the socket: a record as a frame (a JSON envelope with its position
//! token, or the raw value), a client message as a record (an envelope or the raw
//! value), and the acknowledgement or error frame answering each published message.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rdkafka::message::{Headers, Message};
use serde_json::{json, Map, Value};
use tungstenite::Message as Frame;

use crate::config::Format;

/// Headers a published message may carry at most.
const MAX_HEADERS: usize = 32;

/// `text` as JSON when it is UTF-8, else under `<name>_base64`.
fn bytes_field(out: &mut Map<String, Value>, name: &str, bytes: Option<&[u8]>) {
    match bytes.map(std::str::from_utf8) {
        None => {
            out.insert(name.into(), Value::Null);
        }
        Some(Ok(s)) => {
            out.insert(name.into(), Value::String(s.into()));
        }
        Some(Err(_)) => {
            out.insert(
                format!("{name}_base64"),
                Value::String(STANDARD.encode(bytes.unwrap_or_default())),
            );
        }
    }
}

/// The frame for record `m`; `position` resumes right after it.
pub fn record<M: Message>(m: &M, position: &str, format: Format) -> Frame {
    if format == Format::Raw {
        return Frame::binary(m.payload().unwrap_or_default().to_vec());
    }
    let mut out = Map::new();
    out.insert("type".into(), json!("record"));
    out.insert("topic".into(), json!(m.topic()));
    out.insert("partition".into(), json!(m.partition()));
    out.insert("offset".into(), json!(m.offset()));
    out.insert("timestamp".into(), json!(m.timestamp().to_millis()));
    bytes_field(&mut out, "key", m.key());
    let mut headers = Map::new();
    if let Some(h) = m.headers() {
        for x in h.iter() {
            let v = String::from_utf8_lossy(x.value.unwrap_or_default()).into_owned();
            headers.insert(x.key.to_string(), Value::String(v));
        }
    }
    out.insert("headers".into(), Value::Object(headers));
    bytes_field(&mut out, "value", Some(m.payload().unwrap_or_default()));
    out.insert("position".into(), json!(position));
    Frame::text(Value::Object(out).to_string())
}

/// A client message to produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// The client's id for the acknowledgement (its sequence number in `raw`).
    pub id: Value,
    /// The key the message asks for.
    pub key: Option<Vec<u8>>,
    /// Record headers.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The record value.
    pub value: Vec<u8>,
}

/// Why a client message is not produced (the error frame's `reason`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub &'static str, pub String);

/// Read message number `seq` of the connection.
pub fn publish(frame: Frame, seq: u64, format: Format) -> Result<Publish, (Value, Invalid)> {
    let raw = |value: Vec<u8>| Publish {
        id: json!(seq),
        key: None,
        headers: Vec::new(),
        value,
    };
    let text = match (format, frame) {
        (Format::Raw, Frame::Text(t)) => return Ok(raw(t.as_bytes().to_vec())),
        (Format::Raw, Frame::Binary(b)) => return Ok(raw(b.to_vec())),
        (Format::Envelope, Frame::Text(t)) => t,
        _ => {
            let why = "binary messages need `publish.format: raw`; send a JSON text message";
            return Err((json!(seq), Invalid("invalid_message", why.into())));
        }
    };
    let invalid = |id: &Value, why: &str| (id.clone(), Invalid("invalid_message", why.into()));
    let Ok(Value::Object(mut o)) = serde_json::from_str::<Value>(text.as_str()) else {
        return Err(invalid(&json!(seq), "not a JSON object"));
    };
    let id = o.remove("id").unwrap_or(json!(seq));
    if !(id.is_string() || id.is_u64() || id.is_i64()) {
        return Err(invalid(&json!(seq), "`id` must be a string or an integer"));
    }
    for k in o.keys() {
        if !matches!(k.as_str(), "key" | "headers" | "value") {
            return Err(invalid(
                &id,
                &format!("unknown field `{k}` (id, key, headers, value)"),
            ));
        }
    }
    let key = match o.remove("key") {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) => Some(k.into_bytes()),
        Some(_) => return Err(invalid(&id, "`key` must be a string")),
    };
    let mut headers = Vec::new();
    match o.remove("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(h)) if h.len() <= MAX_HEADERS => {
            for (name, v) in h {
                let Value::String(v) = v else {
                    return Err(invalid(&id, "header values must be strings"));
                };
                if name.is_empty() || name.len() > 256 {
                    return Err(invalid(&id, "header names are 1 to 256 bytes"));
                }
                headers.push((name, v.into_bytes()));
            }
        }
        Some(_) => {
            return Err(invalid(
                &id,
                &format!("`headers` must be an object of at most {MAX_HEADERS} strings"),
            ))
        }
    }
    let value = match o.remove("value") {
        None => return Err(invalid(&id, "`value` is required")),
        Some(Value::String(s)) => s.into_bytes(),
        Some(v) => v.to_string().into_bytes(),
    };
    Ok(Publish {
        id,
        key,
        headers,
        value,
    })
}

/// The acknowledgement of message `id`: the broker stored it at `partition`/`offset`.
pub fn ack(id: &Value, topic: &str, partition: i32, offset: i64) -> Frame {
    Frame::text(
        json!({"type": "ack", "id": id, "topic": topic, "partition": partition, "offset": offset})
            .to_string(),
    )
}

/// Message `id` was not produced, and why.
pub fn error(id: &Value, reason: &str, detail: &str) -> Frame {
    Frame::text(json!({"type": "error", "id": id, "reason": reason, "detail": detail}).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_are_read_strictly() {
        let m = publish(
            Frame::text(r#"{"id":"c1","key":"k","headers":{"h":"v"},"value":{"a":1}}"#),
            1,
            Format::Envelope,
        )
        .unwrap();
        assert_eq!(m.id, json!("c1"));
        assert_eq!(m.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(m.headers, [("h".to_string(), b"v".to_vec())]);
        assert_eq!(m.value, br#"{"a":1}"#);
        let text = publish(Frame::text(r#"{"value":"plain"}"#), 7, Format::Envelope).unwrap();
        assert_eq!((text.id, text.value), (json!(7), b"plain".to_vec()));
        for (bad, why) in [
            ("[1]", "not a JSON object"),
            (r#"{"id":"x"}"#, "`value` is required"),
            (r#"{"id":"x","value":1,"extra":2}"#, "unknown field `extra`"),
            (r#"{"id":"x","value":1,"key":3}"#, "`key` must be a string"),
            (
                r#"{"id":"x","value":1,"headers":{"h":1}}"#,
                "header values must be strings",
            ),
            (r#"{"id":[1],"value":1}"#, "`id` must be"),
        ] {
            let (_, Invalid(reason, detail)) =
                publish(Frame::text(bad), 1, Format::Envelope).unwrap_err();
            assert_eq!(reason, "invalid_message");
            assert!(detail.contains(why), "{bad}: {detail}");
        }
        let (id, _) = publish(Frame::binary(vec![1u8]), 3, Format::Envelope).unwrap_err();
        assert_eq!(id, json!(3));
    }

    #[test]
    fn records_as_envelopes_or_raw_values() {
        use rdkafka::message::{Header, OwnedHeaders, OwnedMessage, Timestamp};
        let m = OwnedMessage::new(
            Some(b"{\"id\":1}".to_vec()),
            Some(vec![0xff, 0x00]),
            "orders".into(),
            Timestamp::CreateTime(1_700_000_000_000),
            1,
            41,
            Some(OwnedHeaders::new().insert(Header {
                key: "ce_type",
                value: Some("created"),
            })),
        );
        let Frame::Text(t) = record(&m, "pos", Format::Envelope) else {
            panic!("a text frame");
        };
        let v: Value = serde_json::from_str(t.as_str()).unwrap();
        assert_eq!(
            v,
            json!({"type": "record", "topic": "orders", "partition": 1, "offset": 41,
                   "timestamp": 1_700_000_000_000i64, "key_base64": "/wA=",
                   "headers": {"ce_type": "created"}, "value": "{\"id\":1}", "position": "pos"})
        );
        assert_eq!(
            record(&m, "pos", Format::Raw),
            Frame::binary(b"{\"id\":1}".to_vec())
        );
    }

    #[test]
    fn raw_messages_are_the_value() {
        let m = publish(Frame::binary(vec![0u8, 159]), 4, Format::Raw).unwrap();
        assert_eq!((m.id, m.value), (json!(4), vec![0u8, 159]));
    }
}
