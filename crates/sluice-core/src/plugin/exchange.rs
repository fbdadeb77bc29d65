//! What a plugin phase sees of the client's exchange. The proxy implements [`Exchange`]
//! over Pingora's session (and `testkit` over memory); a request phase gets a
//! [`Request`] view of it: the request header, and only for plugins that declare them
//! the body reader ([`Plugin::reads_request_body`](super::Plugin::reads_request_body))
//! and the response writer ([`Plugin::writes_response`](super::Plugin::writes_response)).
//! The log phase gets a [`Summary`] of the finished exchange.

use async_trait::async_trait;
use bytes::Bytes;
use pingora_error::{Error, Result};
use pingora_http::{RequestHeader, ResponseHeader};

use super::upgrade::Upgrade;

/// The client side of one exchange, as the proxy holds it.
#[async_trait]
pub trait Exchange: Send {
    /// The request header (after path normalization).
    fn request(&self) -> &RequestHeader;
    /// The request header, to change (authentication strips credentials).
    fn request_mut(&mut self) -> &mut RequestHeader;
    /// Close the connection after the response (the rest of the request is unread).
    fn close_after_response(&mut self);
    /// Send `100 Continue` (before reading a body the client holds back).
    async fn send_continue(&mut self) -> Result<()>;
    /// The next chunk of the request body; `None` at its end.
    async fn read_body(&mut self) -> Result<Option<Bytes>>;
    /// Write the response header.
    async fn write_header(&mut self, header: ResponseHeader, end_of_stream: bool) -> Result<()>;
    /// Write a chunk of the response body (`None` with `end_of_stream` to finish).
    async fn write_body(&mut self, chunk: Option<Bytes>, end_of_stream: bool) -> Result<()>;
    /// True once the process is shutting down (a stream should say goodbye).
    fn shutting_down(&self) -> bool;

    /// Cut the connection now, unsent bytes dropped (a client that stopped reading must
    /// not hold the connection). Default: nothing (the connection ends when dropped).
    fn abort(&mut self) {}
}

/// A request phase's view of the request, with the capabilities its plugin declared.
pub struct Request<'a> {
    exchange: &'a mut dyn Exchange,
    lends: Lends,
}

/// The capabilities a request phase is lent, from the plugin's declarations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Lends {
    /// [`BodyReader`] (`reads_request_body`).
    pub body: bool,
    /// [`ResponseWriter`] (`writes_response`).
    pub writer: bool,
    /// [`Upgrade`] (`upgrades_connection`).
    pub upgrade: bool,
}

impl<'a> Request<'a> {
    /// A view of `exchange` lending the body reader when `body` and the response writer
    /// when `writer`.
    pub(crate) fn new(exchange: &'a mut dyn Exchange, lends: Lends) -> Self {
        Self { exchange, lends }
    }

    /// The request header (after path normalization).
    pub fn header(&self) -> &RequestHeader {
        self.exchange.request()
    }

    /// The request header, to change before later plugins and the upstream see it.
    pub fn header_mut(&mut self) -> &mut RequestHeader {
        self.exchange.request_mut()
    }

    /// The value of header `name`, if present.
    pub fn header_value(
        &self,
        name: impl http::header::AsHeaderName,
    ) -> Option<&http::HeaderValue> {
        self.exchange.request().headers.get(name)
    }

    /// Close the client connection after the response (e.g. a body left unread).
    pub fn close_after_response(&mut self) {
        self.exchange.close_after_response();
    }

    /// The body reader, lent to plugins that read the body themselves; `None` otherwise.
    pub fn body(&mut self) -> Option<BodyReader<'_>> {
        self.lends.body.then_some(BodyReader(&mut *self.exchange))
    }

    /// The response writer, lent to plugins that write their response themselves;
    /// `None` otherwise.
    pub fn writer(&mut self) -> Option<ResponseWriter<'_>> {
        self.lends
            .writer
            .then_some(ResponseWriter(&mut *self.exchange))
    }

    /// The connection, lent to plugins that may upgrade it (WebSocket); `None`
    /// otherwise.
    pub fn upgrade(&mut self) -> Option<Upgrade<'_>> {
        self.lends.upgrade.then_some(Upgrade(&mut *self.exchange))
    }
}

/// Reads the request body (a capability lent by [`Request::body`]).
pub struct BodyReader<'a>(&'a mut dyn Exchange);

impl BodyReader<'_> {
    /// The request header.
    pub fn header(&self) -> &RequestHeader {
        self.0.request()
    }

    /// Send `100 Continue` if the client asked for it (`Expect: 100-continue`).
    pub async fn continue_if_expected(&mut self) -> Result<()> {
        let expects = self
            .0
            .request()
            .headers
            .get(http::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if expects {
            self.0.send_continue().await?;
        }
        Ok(())
    }

    /// The next chunk; `None` at the end of the body.
    pub async fn read(&mut self) -> Result<Option<Bytes>> {
        self.0.read_body().await
    }

    /// Close the connection after the response (the rest of the body stays unread).
    pub fn close_after_response(&mut self) {
        self.0.close_after_response();
    }

    /// The whole body, at most `cap` bytes; `Ok(None)` when it is larger. A declared
    /// `Content-Length` is checked before anything is read (so an `Expect: 100-continue`
    /// client never sends an oversized body), then every chunk while streaming. After
    /// `None` the rest of the body is unread: close the connection after answering.
    pub async fn read_capped(&mut self, cap: usize) -> Result<Option<Bytes>> {
        let declared = self
            .0
            .request()
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > cap as u64) {
            return Ok(None);
        }
        self.continue_if_expected().await?;
        let mut buf = bytes::BytesMut::with_capacity(declared.map_or(0, |n| n as usize));
        while let Some(chunk) = self.read().await? {
            if buf.len() + chunk.len() > cap {
                return Ok(None);
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Some(buf.freeze()))
    }
}

/// Writes the response itself, for streams (a capability lent by [`Request::writer`]).
pub struct ResponseWriter<'a>(&'a mut dyn Exchange);

impl ResponseWriter<'_> {
    /// The request header.
    pub fn request(&self) -> &RequestHeader {
        self.0.request()
    }

    /// Write the response header; a stream's connection is not reused afterwards.
    pub async fn write_header(&mut self, header: ResponseHeader) -> Result<()> {
        self.0.close_after_response();
        self.0.write_header(header, false).await
    }

    /// Write one chunk of the body.
    pub async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.0.write_body(Some(chunk), false).await
    }

    /// End the body.
    pub async fn finish(&mut self) -> Result<()> {
        self.0.write_body(None, true).await
    }

    /// True once the process is shutting down.
    pub fn shutting_down(&self) -> bool {
        self.0.shutting_down()
    }
}

/// The finished exchange, as the log phase sees it.
#[derive(Clone, Copy)]
pub struct Summary<'a> {
    /// The request header (after normalization and the plugins' changes).
    pub request: &'a RequestHeader,
    /// The response header sent to the client, if one was.
    pub response: Option<&'a ResponseHeader>,
    /// Request body bytes read from the client.
    pub request_body_bytes: u64,
    /// Response body bytes sent to the client.
    pub response_body_bytes: u64,
    /// Why the request failed, if it did.
    pub error: Option<&'a Error>,
}
