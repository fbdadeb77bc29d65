//! Building the routes of a decoded configuration: each plugin instance from its
//! factory (its effective config kept for the admin API), the compiled router, and the
//! warnings about authenticated routes an open neighbour undoes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::decode::FieldError;
use super::{shadow, validate, ConfigDoc};
use crate::config::SubscriptionConfig;
use crate::plugin::subscription::{Subscription, SubscriptionScope};
use crate::plugin::{BuildScope, Entry, PluginChain, Registry};
use crate::router::{Route, RouteMatch, Router};

impl ConfigDoc {
    /// Check the consumers' credential blocks with the authentication plugins that
    /// claim them, then build every route's plugins and the router. Errors are kept for
    /// [`Self::finish`].
    pub fn build_routes(&mut self, registry: &Registry) -> Router {
        let errors = registry.check_credentials(&self.config.consumers, &|i| self.consumer_path(i));
        self.errors.extend(errors);
        let clock: Arc<dyn crate::clock::Clock> = Arc::new(crate::clock::MonotonicClock::new());
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
                clock: clock.clone(),
            };
            let mut entries = Vec::new();
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
                        Ok(plugin) => {
                            entries.push(Entry {
                                name: f.name(),
                                priority: f.priority(),
                                plugin,
                            });
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
            let chain =
                PluginChain::new(entries).with_max_body_bytes(rc.max_body_bytes.map(|b| b.0));
            let route = Route::new(&rc.id, rc.upstream.as_deref(), chain);
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

    /// Build every subscription with the plugin its remaining key names. Errors are
    /// kept for [`Self::finish`].
    pub fn build_subscriptions(
        &mut self,
        registry: &Registry,
    ) -> Vec<(SubscriptionConfig, Arc<dyn Subscription>)> {
        let mut built = Vec::new();
        let mut errors = Vec::new();
        let scope = SubscriptionScope {
            declared_clusters: &self.declared_clusters,
        };
        let known = registry.subscription_names().join(", ");
        for (i, sub) in self.config.subscriptions.iter().enumerate() {
            let at = self.subscription_path(i);
            let mut blocks = Vec::new();
            for (name, config) in &sub.plugin {
                match registry.subscription(name) {
                    Some(factory) => blocks.push((name, config, factory)),
                    None => errors.push(FieldError::key(
                        at.key(name.as_str()),
                        format!(
                            "unknown field or subscription plugin `{name}` (fields: {}; plugins: {known})",
                            super::subscription::FIELDS
                        ),
                    )),
                }
            }
            match blocks.as_slice() {
                [(name, config, factory)] => {
                    match factory.build(sub, config, &at.key(name.as_str()), &scope) {
                        Ok(s) => built.push((sub.clone(), s)),
                        Err(e) => errors.extend(e),
                    }
                }
                [] if sub.plugin.is_empty() => errors.push(FieldError::value(
                    at,
                    format!("a subscription needs the block of the plugin that delivers its records (one of: {known})"),
                )),
                [] => {}
                [_, more @ ..] => {
                    for (name, _, _) in more {
                        errors.push(FieldError::key(
                            at.key(name.as_str()),
                            "a subscription has one delivering plugin",
                        ));
                    }
                }
            }
        }
        self.errors.extend(errors);
        built
    }
}
