//! The client side of a test: a request in memory ([`TestExchange`]) that records what
//! plugins and the proxy wrote back, and what the upstream answers ([`TestUpstream`]).

use std::collections::VecDeque;

use async_trait::async_trait;
use bytes::Bytes;
use pingora_error::Result;
use pingora_http::{RequestHeader, ResponseHeader};

use crate::plugin::Exchange;

/// A client exchange in memory: a request with its body chunks, and what was written
/// back.
#[derive(Debug)]
pub struct TestExchange {
    /// The request header.
    pub request: RequestHeader,
    /// Body chunks not read yet.
    pub body: VecDeque<Bytes>,
    /// `100 Continue` was sent.
    pub continue_sent: bool,
    /// The connection is to be closed after the response.
    pub closed: bool,
    /// The response header written, if any.
    pub response: Option<ResponseHeader>,
    /// The response body written so far.
    pub response_body: Vec<u8>,
    /// The response was finished.
    pub finished: bool,
    /// What [`Exchange::shutting_down`] answers.
    pub shutting_down: bool,
    /// Body chunks read by plugins.
    pub body_reads: usize,
    /// Once the body chunks are read, further reads wait forever instead of ending (a
    /// client that keeps an upgraded connection open).
    pub held_open: bool,
    /// Body writes never complete (a client that stopped reading).
    pub write_stalled: bool,
}

impl TestExchange {
    /// A request `method path` (no body).
    pub fn new(method: &str, path: &str) -> Self {
        let request = match RequestHeader::build(method, path.as_bytes(), None) {
            Ok(r) => r,
            Err(e) => panic!("test request {method} {path}: {e}"),
        };
        Self {
            request,
            body: VecDeque::new(),
            continue_sent: false,
            closed: false,
            response: None,
            response_body: Vec::new(),
            finished: false,
            shutting_down: false,
            body_reads: 0,
            held_open: false,
            write_stalled: false,
        }
    }

    /// `GET path`.
    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }

    /// `POST path` with `body` (one chunk, `Content-Length` set).
    pub fn post(path: &str, body: impl Into<Bytes>) -> Self {
        let body = body.into();
        Self::new("POST", path)
            .header("content-length", &body.len().to_string())
            .chunks([body])
    }

    /// Add a request header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let Err(e) = self.request.append_header(name.to_string(), value) {
            panic!("test header {name}: {e}");
        }
        self
    }

    /// The body, as these chunks.
    pub fn chunks<B: Into<Bytes>>(mut self, chunks: impl IntoIterator<Item = B>) -> Self {
        self.body = chunks.into_iter().map(Into::into).collect();
        self
    }

    /// The status written, if any.
    pub fn status(&self) -> Option<u16> {
        self.response.as_ref().map(|r| r.status.as_u16())
    }
}

#[async_trait]
impl Exchange for TestExchange {
    fn request(&self) -> &RequestHeader {
        &self.request
    }
    fn request_mut(&mut self) -> &mut RequestHeader {
        &mut self.request
    }
    fn close_after_response(&mut self) {
        self.closed = true;
    }
    async fn send_continue(&mut self) -> Result<()> {
        self.continue_sent = true;
        Ok(())
    }
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        self.body_reads += 1;
        match self.body.pop_front() {
            None if self.held_open => std::future::pending().await,
            chunk => Ok(chunk),
        }
    }
    async fn write_header(&mut self, header: ResponseHeader, end: bool) -> Result<()> {
        assert!(
            self.response.is_none(),
            "the response header was written twice"
        );
        self.response = Some(header);
        self.finished = end;
        Ok(())
    }
    async fn write_body(&mut self, chunk: Option<Bytes>, end: bool) -> Result<()> {
        assert!(
            self.response.is_some(),
            "a body was written before the header"
        );
        assert!(!self.finished, "a body was written after the end");
        if self.write_stalled && chunk.is_some() {
            return std::future::pending().await;
        }
        if let Some(c) = chunk {
            self.response_body.extend_from_slice(&c);
        }
        self.finished = end;
        Ok(())
    }
    fn shutting_down(&self) -> bool {
        self.shutting_down
    }
}

/// What the upstream answers in [`TestRoute::exchange`].
pub struct TestUpstream {
    /// Its response header.
    pub response: ResponseHeader,
    /// Its body chunks.
    pub body: Vec<Bytes>,
}

impl TestUpstream {
    /// `status` with `body` in one chunk.
    pub fn new(status: u16, body: impl Into<Bytes>) -> Self {
        match ResponseHeader::build(status, None) {
            Ok(response) => Self {
                response,
                body: vec![body.into()],
            },
            Err(e) => panic!("test response {status}: {e}"),
        }
    }
}
