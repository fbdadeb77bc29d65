//! Request body chunks: the route's body cap (`413`, counted) and the plugins'
//! `request_body` phases, for proxied bodies and for bodies read before a plugin answers
//! without reading them itself (a logger capturing bodies on a `mocking` route).

use bytes::Bytes;
use pingora_error::{Error, ErrorType, Result};
use pingora_proxy::Session;
use sluice_core::{RequestCtx, Route};

use super::GatewayCtx;

/// Count `chunk` against the route's cap and hand it to every plugin.
pub(super) async fn chunk(
    session: &mut Session,
    (req, body_bytes): (&mut RequestCtx, &mut u64),
    route: &Route,
    chunk: &mut Option<Bytes>,
    end: bool,
) -> Result<()> {
    *body_bytes += chunk.as_ref().map_or(0, |b| b.len() as u64);
    if route.max_body_bytes.is_some_and(|max| *body_bytes > max) {
        sluice_core::metrics::reject(&route.id, "body_too_large");
        return Err(Error::explain(
            ErrorType::HTTPStatus(413),
            "the request body is larger than this route accepts",
        ));
    }
    for p in &route.plugins {
        p.request_body(session, chunk, end, req).await?;
    }
    Ok(())
}

/// Read the whole request body through [`chunk`] before a plugin answers without reading
/// it (see [`sluice_core::Route::prefetch_body`]).
pub(super) async fn prefetch(
    session: &mut Session,
    ctx: &mut GatewayCtx,
    route: &Route,
) -> Result<()> {
    loop {
        let mut next = session.read_request_body().await?;
        let end = next.is_none();
        let parts = (&mut ctx.req, &mut ctx.body_bytes);
        chunk(session, parts, route, &mut next, end).await?;
        if end {
            return Ok(());
        }
    }
}
