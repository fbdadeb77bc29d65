//! Request body chunks: the route's body cap (`413`, counted) and the plugins'
//! `request_body` phases, for proxied bodies and for bodies read before a plugin answers
//! without reading them itself (a logger capturing bodies on a `mocking` route).

use std::sync::Arc;

use bytes::Bytes;
use pingora_error::{Error, ErrorType, Result};
use pingora_proxy::Session;
use sluice_core::Route;

use super::GatewayCtx;

/// Count `chunk` against the route's cap and hand it to every plugin.
pub(super) async fn chunk(
    session: &mut Session,
    ctx: &mut GatewayCtx,
    route: &Route,
    chunk: &mut Option<Bytes>,
    end: bool,
) -> Result<()> {
    ctx.body_bytes += chunk.as_ref().map_or(0, |b| b.len() as u64);
    if route.max_body_bytes.is_some_and(|max| ctx.body_bytes > max) {
        sluice_core::metrics::reject(&route.id, "body_too_large");
        return Err(Error::explain(
            ErrorType::HTTPStatus(413),
            "the request body is larger than this route accepts",
        ));
    }
    for p in &route.plugins {
        p.request_body(session, chunk, end, &mut ctx.req).await?;
    }
    Ok(())
}

/// Read the whole request body through [`chunk`] before a plugin answers without reading
/// it (see [`sluice_core::Route::prefetch_body`]).
pub(super) async fn prefetch(
    session: &mut Session,
    ctx: &mut GatewayCtx,
    route: &Arc<Route>,
) -> Result<()> {
    loop {
        let mut next = session.read_request_body().await?;
        let end = next.is_none();
        chunk(session, ctx, route, &mut next, end).await?;
        if end {
            return Ok(());
        }
    }
}
