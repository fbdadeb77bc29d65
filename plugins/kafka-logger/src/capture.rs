//! Capped body capture: keeps at most `cap` bytes of a body and remembers whether more
//! arrived, so the event can flag `body_truncated`.

/// A captured (possibly cut) body.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Captured {
    /// The first bytes of the body.
    pub bytes: Vec<u8>,
    /// True when the body was longer than the cap.
    pub truncated: bool,
}

impl Captured {
    /// Append a chunk, keeping at most `cap` bytes in total.
    pub fn push(&mut self, chunk: &[u8], cap: usize) {
        let room = cap.saturating_sub(self.bytes.len());
        if chunk.len() > room {
            self.truncated = true;
        }
        self.bytes
            .extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
}

/// The per-request state of the plugin.
#[derive(Debug, Default)]
pub struct LoggerState {
    /// Captured request body, when enabled.
    pub request: Captured,
    /// Captured response body, when enabled.
    pub response: Captured,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_and_flags() {
        let mut c = Captured::default();
        c.push(b"hello ", 8);
        assert!(!c.truncated);
        c.push(b"world", 8);
        assert_eq!(c.bytes, b"hello wo");
        assert!(c.truncated);
        c.push(b"", 8);
        assert!(c.truncated);
        let mut exact = Captured::default();
        exact.push(b"12345678", 8);
        assert!(!exact.truncated);
    }
}
