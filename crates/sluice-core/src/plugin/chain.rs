//! A route's plugins as per-phase lists (River's modifier lists), built once per route:
//! request phases run by descending priority, response phases and the log in reverse
//! (Envoy's order), each over only the plugins that declare the phase. The proxy and
//! `testkit` run phases through these same functions.

use std::sync::Arc;

use bytes::Bytes;
use pingora_error::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};

use super::exchange::{Exchange, Lends, Request, Summary};
use super::{Flow, Phases, Plugin};
use crate::context::{CredentialNames, RequestCtx};

/// One plugin of a route: the instance with its spec's name and priority.
#[derive(Clone)]
pub struct Entry {
    /// The plugin's config name.
    pub name: &'static str,
    /// Its priority (higher runs first in request phases).
    pub priority: i32,
    /// The instance.
    pub plugin: Arc<dyn Plugin>,
}

/// A route's plugins, sorted and split by phase.
#[derive(Clone, Default)]
pub struct PluginChain {
    all: Vec<Entry>,
    request: Vec<RequestStep>,
    upstream_request: Vec<Entry>,
    request_body: Vec<Entry>,
    /// Reversed.
    response: Vec<Entry>,
    /// Reversed.
    response_body: Vec<Entry>,
    /// Reversed.
    log: Vec<Entry>,
    /// Read the body through `request_body` before the plugin that answers: a plugin
    /// wants the body (a logger capturing it) while another answers the request without
    /// reading it (mocking).
    prefetch_body: bool,
    max_body_bytes: Option<u64>,
    /// Every plugin's credential names (shared with each request: no allocation).
    credentials: Arc<CredentialNames>,
}

/// A plugin of the request phase with what it declared, read once at build time.
#[derive(Clone)]
struct RequestStep {
    entry: Entry,
    answers: bool,
    lends: Lends,
}

fn declaring(all: &[Entry], phase: Phases, reversed: bool) -> Vec<Entry> {
    let mut v: Vec<Entry> = all
        .iter()
        .filter(|e| e.plugin.phases().contains(phase))
        .cloned()
        .collect();
    if reversed {
        v.reverse();
    }
    v
}

impl PluginChain {
    /// The chain of `entries`: sorted by descending priority, ties by name.
    pub fn new(mut entries: Vec<Entry>) -> Self {
        entries.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.name.cmp(b.name)));
        let request_body = declaring(&entries, Phases::REQUEST_BODY, false);
        let any = |f: fn(&dyn Plugin) -> bool| entries.iter().any(|e| f(&*e.plugin));
        let prefetch_body = !request_body.is_empty()
            && any(|p| p.answers_requests())
            && !any(|p| p.reads_request_body());
        let mut credentials = CredentialNames::default();
        for e in &entries {
            credentials.extend(e.plugin.credential_names());
        }
        let request = declaring(&entries, Phases::REQUEST, false)
            .into_iter()
            .map(|entry| RequestStep {
                answers: entry.plugin.answers_requests(),
                lends: Lends {
                    body: entry.plugin.reads_request_body(),
                    writer: entry.plugin.writes_response(),
                    upgrade: entry.plugin.upgrades_connection(),
                },
                entry,
            })
            .collect();
        Self {
            request,
            upstream_request: declaring(&entries, Phases::UPSTREAM_REQUEST, false),
            request_body,
            response: declaring(&entries, Phases::RESPONSE, true),
            response_body: declaring(&entries, Phases::RESPONSE_BODY, true),
            log: declaring(&entries, Phases::LOG, true),
            all: entries,
            prefetch_body,
            max_body_bytes: None,
            credentials: Arc::new(credentials),
        }
    }

    /// The same chain with a request body cap (`routes[].max_body_bytes`).
    pub fn with_max_body_bytes(mut self, max: Option<u64>) -> Self {
        self.max_body_bytes = max;
        self
    }

    /// The request body cap.
    pub fn max_body_bytes(&self) -> Option<u64> {
        self.max_body_bytes
    }

    /// Every plugin, highest priority first.
    pub fn entries(&self) -> &[Entry] {
        &self.all
    }

    /// True when one of the plugins answers requests itself.
    pub fn answers_requests(&self) -> bool {
        self.all.iter().any(|e| e.plugin.answers_requests())
    }

    /// The header and query names carrying credentials of every plugin (for loggers).
    pub fn credentials(&self) -> &Arc<CredentialNames> {
        &self.credentials
    }

    /// Run the request phases. A plugin's answer ends the phase; its name is recorded
    /// in `ctx.responded_by`.
    pub async fn request(&self, exchange: &mut dyn Exchange, ctx: &mut RequestCtx) -> Result<Flow> {
        let mut prefetch = self.prefetch_body;
        for step in &self.request {
            // After authentication and limits: just before the plugin that answers.
            if prefetch && step.answers {
                prefetch = false;
                self.prefetch(exchange, ctx).await?;
            }
            let mut view = Request::new(exchange, step.lends);
            match step.entry.plugin.request(&mut view, ctx).await? {
                Flow::Continue => {}
                answered => {
                    ctx.responded_by = Some(step.entry.name);
                    return Ok(answered);
                }
            }
        }
        Ok(Flow::Continue)
    }

    /// Read the whole body through [`Self::request_body`].
    async fn prefetch(&self, exchange: &mut dyn Exchange, ctx: &mut RequestCtx) -> Result<()> {
        loop {
            let mut next = exchange.read_body().await?;
            let end = next.is_none();
            self.request_body(&mut next, end, ctx).await?;
            if end {
                return Ok(());
            }
        }
    }

    /// Run the upstream request phases.
    pub async fn upstream_request(
        &self,
        upstream: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        for e in &self.upstream_request {
            e.plugin.upstream_request(upstream, ctx).await?;
        }
        Ok(())
    }

    /// Count `chunk` against the body cap (`413`, counted) and run the request body
    /// phases.
    pub async fn request_body(
        &self,
        chunk: &mut Option<Bytes>,
        end: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.request_body_bytes += chunk.as_ref().map_or(0, |b| b.len() as u64);
        if self
            .max_body_bytes
            .is_some_and(|max| ctx.request_body_bytes > max)
        {
            crate::metrics::reject(ctx.route_id(), "body_too_large");
            return Err(Error::explain(
                ErrorType::HTTPStatus(413),
                "the request body is larger than this route accepts",
            ));
        }
        for e in &self.request_body {
            e.plugin.request_body(chunk, end, ctx).await?;
        }
        Ok(())
    }

    /// Run the response phases.
    pub async fn response(
        &self,
        response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        for e in &self.response {
            e.plugin.response(response, ctx).await?;
        }
        Ok(())
    }

    /// Run the response body phases.
    pub fn response_body(
        &self,
        body: &mut Option<Bytes>,
        end: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        for e in &self.response_body {
            e.plugin.response_body(body, end, ctx)?;
        }
        Ok(())
    }

    /// Run the log phases.
    pub async fn log(&self, exchange: &Summary<'_>, ctx: &mut RequestCtx) {
        for e in &self.log {
            e.plugin.log(exchange, ctx).await;
        }
    }
}
