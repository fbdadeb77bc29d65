//! `server.limits:` — what a client may send before any route or plugin sees the request
//! (request smuggling, oversized headers, slowloris, connection floods). Field docs are
//! user documentation.

use std::time::Duration;

use serde::Deserialize;

use super::decode::FieldError;
use super::path::FieldPath;
use super::units::{ByteSize, HumanDuration};

/// `server.limits:`
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RequestLimits {
    /// Time from a request's first byte (CR/LF before the request line included) to the
    /// end of its header; slower clients are disconnected (slowloris). On HTTP/2: time
    /// for the connection preface and for each header block. 1s to 5m. Default `10s`.
    #[serde(default = "default_header_timeout")]
    pub header_timeout: HumanDuration,
    /// Largest request header (request line and all fields); larger → `431`. 1KiB to
    /// 1MiB. Default `32KiB`.
    #[serde(default = "default_header_bytes")]
    pub max_header_bytes: ByteSize,
    /// Most header fields in a request; more → `431`. 1 to 256 (past 256 the HTTP parser
    /// answers `400`). Default `100`.
    #[serde(default = "default_headers")]
    pub max_headers: usize,
    /// Open connections per client IP address; further connections are closed at once.
    /// `0` = no cap. Default `1000`.
    #[serde(default = "default_conns")]
    pub max_connections_per_ip: usize,
    /// Requests one HTTP/2 connection may have open at once (`SETTINGS_MAX_CONCURRENT_
    /// STREAMS`); a client opening more gets `REFUSED_STREAM`, counted as
    /// `http2_stream_limit`. With `max_connections_per_ip` it bounds a client's concurrent
    /// requests. 1 to 1000. Default `100`.
    #[serde(default = "default_streams")]
    pub http2_max_concurrent_streams: u32,
    /// Read buffer of each client connection, held for the connection's whole life, idle
    /// keep-alive time included (Pingora's own default is 64KiB). Header size is not
    /// bounded by it (see `max_header_bytes`); bodies are read in pieces of this size.
    /// 4KiB to 1MiB. Default `16KiB`.
    #[serde(default = "default_read_buffer")]
    pub read_buffer: ByteSize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            header_timeout: default_header_timeout(),
            max_header_bytes: default_header_bytes(),
            max_headers: default_headers(),
            max_connections_per_ip: default_conns(),
            http2_max_concurrent_streams: default_streams(),
            read_buffer: default_read_buffer(),
        }
    }
}

const fn default_header_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}
const fn default_header_bytes() -> ByteSize {
    ByteSize(32 * 1024)
}
const fn default_headers() -> usize {
    100
}
const fn default_conns() -> usize {
    1000
}
const fn default_streams() -> u32 {
    100
}
const fn default_read_buffer() -> ByteSize {
    ByteSize(16 * 1024)
}

impl RequestLimits {
    /// Check the ranges; errors carry paths under `at`.
    pub fn check(&self, at: &FieldPath, errors: &mut Vec<FieldError>) {
        let t = self.header_timeout.0;
        if !(Duration::from_secs(1)..=Duration::from_secs(300)).contains(&t) {
            errors.push(FieldError::value(
                at.key("header_timeout"),
                "must be between 1s and 5m",
            ));
        }
        if !(1024..=1024 * 1024).contains(&self.max_header_bytes.0) {
            errors.push(FieldError::value(
                at.key("max_header_bytes"),
                "must be between 1KiB and 1MiB",
            ));
        }
        if !(1..=256).contains(&self.max_headers) {
            errors.push(FieldError::value(
                at.key("max_headers"),
                "must be between 1 and 256",
            ));
        }
        if !(4 * 1024..=1024 * 1024).contains(&self.read_buffer.0) {
            errors.push(FieldError::value(
                at.key("read_buffer"),
                "must be between 4KiB and 1MiB",
            ));
        }
        if !(1..=1000).contains(&self.http2_max_concurrent_streams) {
            errors.push(FieldError::value(
                at.key("http2_max_concurrent_streams"),
                "must be between 1 and 1000",
            ));
        }
    }
}
