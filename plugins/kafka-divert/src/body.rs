//! Reading a diverted request's body with a cap: `Content-Length` is checked before
//! anything is read (so `Expect: 100-continue` clients never send an oversized body),
//! then every chunk while streaming.

use bytes::{Bytes, BytesMut};
use pingora_error::Result;
use pingora_http::RequestHeader;
use sluice_core::plugin::BodyReader;

/// Why no body came out.
pub enum BodyError {
    /// Declared or actual size above the cap.
    TooLarge,
}

/// The declared body length, if the request has a valid `Content-Length`.
pub fn declared_length(req: &RequestHeader) -> Option<u64> {
    req.headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// Read the whole body, at most `cap` bytes.
pub async fn read_capped(
    body: &mut BodyReader<'_>,
    cap: usize,
) -> Result<std::result::Result<Bytes, BodyError>> {
    let declared = declared_length(body.header());
    if declared.is_some_and(|n| n > cap as u64) {
        return Ok(Err(BodyError::TooLarge));
    }
    body.continue_if_expected().await?;
    let mut buf = BytesMut::with_capacity(declared.map_or(0, |n| n as usize));
    while let Some(chunk) = body.read().await? {
        if buf.len() + chunk.len() > cap {
            return Ok(Err(BodyError::TooLarge));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Ok(buf.freeze()))
}
