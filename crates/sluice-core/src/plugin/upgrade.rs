//! The upgrade capability: lent to a plugin that declares
//! [`Plugin::upgrades_connection`](super::Plugin::upgrades_connection) (WebSocket). The
//! plugin checks the handshake, answers `101 Switching Protocols` with [`Upgrade::accept`],
//! then reads and writes raw bytes on the connection until it ends; or refuses with a
//! normal answer.

use bytes::Bytes;
use pingora_error::Result;
use pingora_http::{RequestHeader, ResponseHeader};

use super::exchange::Exchange;

/// The client connection, for a protocol upgrade.
pub struct Upgrade<'a>(pub(super) &'a mut dyn Exchange);

impl Upgrade<'_> {
    /// The request header.
    pub fn request(&self) -> &RequestHeader {
        self.0.request()
    }

    /// True when the request asks for an HTTP/1.1 upgrade to `protocol` (`Connection:
    /// upgrade` and `Upgrade: <protocol>`, case-insensitive, on a `GET`).
    pub fn requested(&self, protocol: &str) -> bool {
        let req = self.0.request();
        let has = |name: http::HeaderName, token: &str| {
            req.headers.get_all(name).iter().any(|v| {
                v.to_str()
                    .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            })
        };
        req.method == http::Method::GET
            && req.version == http::Version::HTTP_11
            && has(http::header::CONNECTION, "upgrade")
            && has(http::header::UPGRADE, protocol)
    }

    /// Answer `header` (a `101`): from now on the connection carries the new protocol and
    /// is closed when the plugin is done.
    pub async fn accept(&mut self, header: ResponseHeader) -> Result<()> {
        self.0.close_after_response();
        self.0.write_header(header, false).await
    }

    /// The next bytes from the client after [`Upgrade::accept`]; `None` once it closed
    /// its side. Cancel-safe: nothing is lost when the future is dropped unfinished.
    pub async fn read(&mut self) -> Result<Option<Bytes>> {
        self.0.read_body().await
    }

    /// Write bytes to the client.
    pub async fn write(&mut self, bytes: Bytes) -> Result<()> {
        self.0.write_body(Some(bytes), false).await
    }

    /// End the connection's output.
    pub async fn finish(&mut self) -> Result<()> {
        self.0.write_body(None, true).await
    }

    /// Cut the connection at once, dropping what is unsent (a client that does not read).
    pub fn abort(&mut self) {
        self.0.abort();
    }

    /// True once Sluice is shutting down gracefully.
    pub fn shutting_down(&self) -> bool {
        self.0.shutting_down()
    }
}
