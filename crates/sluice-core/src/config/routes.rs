//! Building the routes of a decoded configuration: each plugin instance from its
//! factory (its effective config kept for the admin API), the compiled router, and the
//! warnings about authenticated routes an open neighbour undoes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::decode::FieldError;
use super::{shadow, validate, ConfigDoc};
use crate::plugin::{BuildScope, Registry};
use crate::router::{Route, RouteMatch, Router};

impl ConfigDoc {
    /// Build every route's plugins and the router. Errors are kept for [`Self::finish`].
    pub fn build_routes(&mut self, registry: &Registry) -> Router {
        let mut compiled = Vec::new();
        // Route id -> whether one of its plugins authenticates (for the shadow warnings).
        let mut authenticated = HashMap::new();
        let routes = self.config.routes.clone();
        for (i, rc) in routes.iter().enumerate() {
            let at = self.route_path(i);
            let authenticates = rc
                .plugins
                .keys()
                .any(|n| registry.get(n).is_some_and(|f| f.authenticates()));
            authenticated.insert(rc.id.clone(), authenticates);
            let scope = BuildScope {
                route_id: &rc.id,
                declared_clusters: &self.declared_clusters,
                consumers: &self.config.consumers,
                authenticates,
                redis: self.config.redis.as_ref(),
            };
            let mut plugins = Vec::new();
            let mut effective = BTreeMap::new();
            let mut failed = false;
            for (name, cfg) in &rc.plugins {
                let p_at = at.key("plugins").key(name);
                match registry.get(name) {
                    None => {
                        failed = true;
                        self.errors.push(FieldError::key(
                            p_at,
                            format!(
                                "unknown plugin `{name}` (known: {})",
                                registry.names().join(", ")
                            ),
                        ));
                    }
                    Some(f) => match f.build(cfg, &p_at, &scope) {
                        Ok(p) => {
                            plugins.push(p);
                            if let Some(e) = f.effective(cfg) {
                                effective.insert(name.clone(), e);
                            }
                        }
                        Err(errs) => {
                            failed = true;
                            self.errors.extend(errs);
                        }
                    },
                }
            }
            if let Some(decoded) = self.config.routes.get_mut(i) {
                decoded.effective = effective;
            }
            let route = Route::new(&rc.id, rc.upstream.as_deref(), plugins)
                .with_max_body_bytes(rc.max_body_bytes.map(|b| b.0));
            if !failed && rc.upstream.is_none() && !route.answers_requests() {
                self.errors.push(FieldError::key(
                    at.key("upstream"),
                    "the route has no `upstream` and no plugin that answers requests itself",
                ));
            }
            if let Some(m) = validate::route_match(&rc.matcher) {
                compiled.push((Arc::new(route), m));
            }
        }
        let matches: Vec<(String, RouteMatch)> = compiled
            .iter()
            .map(|(r, m)| (r.id.to_string(), m.clone()))
            .collect();
        let router = Router::new(compiled);
        for w in shadow::auth_shadow_warnings(&matches, &authenticated, &router) {
            log::warn!("{w}");
        }
        router
    }
}
