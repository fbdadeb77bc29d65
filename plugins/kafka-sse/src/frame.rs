//! Server-Sent Events framing (WHATWG HTML §9.2). A record's value becomes `data:` lines —
//! one per line of the value, whatever the line ending — so no payload can inject a
//! field or end the event early; `id` and `event` are validated (no CR, LF or NUL).

/// One `text/event-stream` event.
pub fn event(id: &str, event: Option<&str>, data: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(data);
    let mut out = Vec::with_capacity(data.len() + id.len() + 32);
    if field_ok(id) {
        out.extend_from_slice(b"id: ");
        out.extend_from_slice(id.as_bytes());
        out.push(b'\n');
    }
    if let Some(e) = event.filter(|e| field_ok(e) && !e.is_empty()) {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(e.as_bytes());
        out.push(b'\n');
    }
    // Split on \r\n, \n and \r: the three line endings of the format.
    let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
    for line in normalized.split('\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.replace('\0', "\u{fffd}").as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
    out
}

/// An event id without data: the client's `lastEventId` becomes `id` and no event
/// fires (the stream's starting position, so a client that drops before its first event
/// resumes where it started).
pub fn position(id: &str) -> Vec<u8> {
    if field_ok(id) {
        format!("id: {id}\n\n").into_bytes()
    } else {
        Vec::new()
    }
}

/// A comment line (keep-alive).
pub fn comment(text: &str) -> Vec<u8> {
    format!(": {}\n\n", text.replace(['\r', '\n'], " ")).into_bytes()
}

/// The reconnection hint.
pub fn retry(ms: u128) -> Vec<u8> {
    format!("retry: {ms}\n\n").into_bytes()
}

fn field_ok(v: &str) -> bool {
    !v.contains(['\r', '\n', '\0'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_cannot_inject_fields() {
        let e = event(
            "v1.abc",
            Some("order"),
            b"line one\nid: evil\r\ndata: x\revent: y\n\nend",
        );
        let text = String::from_utf8(e).unwrap();
        assert_eq!(
            text,
            "id: v1.abc\nevent: order\ndata: line one\ndata: id: evil\ndata: data: x\ndata: event: y\ndata: \ndata: end\n\n"
        );
        // A parser joining the data lines gets the payload back (line endings as \n).
        let data: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .collect();
        assert_eq!(
            data.join("\n"),
            "line one\nid: evil\ndata: x\nevent: y\n\nend"
        );
    }

    #[test]
    fn bad_ids_and_event_names_are_left_out() {
        let text = String::from_utf8(event("a\nb", Some("x\ry"), b"d")).unwrap();
        assert_eq!(text, "data: d\n\n");
        assert_eq!(
            String::from_utf8(comment("keep\nalive")).unwrap(),
            ": keep alive\n\n"
        );
        assert_eq!(String::from_utf8(retry(3000)).unwrap(), "retry: 3000\n\n");
    }

    #[test]
    fn positions_are_ids_without_data() {
        assert_eq!(position("v2.abc.def"), b"id: v2.abc.def\n\n");
        assert!(position("bad\nid").is_empty());
    }
}
