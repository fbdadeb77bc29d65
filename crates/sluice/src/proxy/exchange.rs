//! The plugins' [`Exchange`] over Pingora's session: the one place a plugin's request
//! phase reaches the connection, through the capabilities its view lends.

use async_trait::async_trait;
use bytes::Bytes;
use pingora_error::Result;
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::Session;
use sluice_core::plugin::Exchange;

/// A session lent to the plugin chain.
pub(super) struct SessionExchange<'a>(pub &'a mut Session);

#[async_trait]
impl Exchange for SessionExchange<'_> {
    fn request(&self) -> &RequestHeader {
        self.0.req_header()
    }

    fn request_mut(&mut self) -> &mut RequestHeader {
        self.0.req_header_mut()
    }

    fn close_after_response(&mut self) {
        self.0.set_keepalive(None);
    }

    async fn send_continue(&mut self) -> Result<()> {
        self.0.write_continue_response().await
    }

    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        self.0.read_request_body().await
    }

    async fn write_header(&mut self, header: ResponseHeader, end_of_stream: bool) -> Result<()> {
        if header.status == 101 {
            // An upgraded connection is idle as long as its plugin allows, not Pingora's
            // 60 s body read timeout.
            self.0.set_read_timeout(None);
        }
        self.0
            .write_response_header(Box::new(header), end_of_stream)
            .await
    }

    async fn write_body(&mut self, chunk: Option<Bytes>, end_of_stream: bool) -> Result<()> {
        self.0.write_response_body(chunk, end_of_stream).await
    }

    fn shutting_down(&self) -> bool {
        self.0.is_process_shutting_down()
    }

    /// Shut the socket down both ways: pending and later writes fail at once, so
    /// Pingora's final flush cannot wait on a client that stopped reading. Plain TCP and
    /// TLS alike: a stream's id is its TCP socket's descriptor (a TLS stream gives its
    /// transport's; the handshake is over by the time a request runs).
    fn abort(&mut self) {
        let Some(stream) = self.0.as_downstream().stream() else {
            return;
        };
        let fd = stream.id();
        // Placeholder streams (mocks, subrequests) answer 0; never shut down stdin.
        if fd > 0 {
            // SAFETY: shutdown(2) on the connection's own descriptor, which stays open
            // (and owned by the stream) until the session is dropped.
            unsafe {
                libc::shutdown(fd, libc::SHUT_RDWR);
            }
        }
    }
}
