//! Reading a diverted request's body with a cap: `Content-Length` is checked before
//! anything is read (so `Expect: 100-continue` clients never send an oversized body),
//! then every chunk while streaming.

use bytes::{Bytes, BytesMut};
use pingora_error::Result;
use pingora_proxy::Session;

/// Why no body came out.
pub enum BodyError {
    /// Declared or actual size above the cap.
    TooLarge,
}

fn expects_continue(session: &Session) -> bool {
    session
        .req_header()
        .headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// The declared body length, if the request has a valid `Content-Length`.
pub fn declared_length(session: &Session) -> Option<u64> {
    session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Read the whole body, at most `cap` bytes.
pub async fn read_capped(
    session: &mut Session,
    cap: usize,
) -> Result<std::result::Result<Bytes, BodyError>> {
    if declared_length(session).is_some_and(|n| n > cap as u64) {
        return Ok(Err(BodyError::TooLarge));
    }
    if expects_continue(session) {
        session.write_continue_response().await?;
    }
    let mut buf = BytesMut::with_capacity(declared_length(session).map_or(0, |n| n as usize));
    while let Some(chunk) = session.read_request_body().await? {
        if buf.len() + chunk.len() > cap {
            return Ok(Err(BodyError::TooLarge));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Ok(buf.freeze()))
}
