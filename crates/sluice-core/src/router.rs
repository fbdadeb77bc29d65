//! Route matching. A route matches on paths (exact, or prefix with a trailing `*`),
//! methods and hosts (exact, or `*.example.com`). When several routes match, the most
//! specific wins: an exact host over a wildcard host over any host; then an exact path
//! over a prefix, a longer prefix over a shorter; then a method list over any method;
//! then the earlier route in the file.

use crate::config::error::InvalidValue;
use std::sync::Arc;

use crate::normalize::{normalize_path, EscapedSlashes, PathRules, Semicolons};
use crate::plugin::PluginChain;

/// A compiled route: what the proxy needs at request time.
pub struct Route {
    /// The route id from the config.
    pub id: Arc<str>,
    /// The upstream name, when the route proxies.
    pub upstream: Option<Arc<str>>,
    /// The plugins, by phase (with the request body cap).
    pub chain: PluginChain,
    /// The route's request metrics.
    pub metrics: crate::metrics::RouteMetrics,
}

impl Route {
    /// Build a route over `chain`.
    pub fn new(id: &str, upstream: Option<&str>, chain: PluginChain) -> Self {
        Self {
            id: Arc::from(id),
            upstream: upstream.map(Arc::from),
            chain,
            metrics: Default::default(),
        }
    }

    /// True when one of the route's plugins answers requests itself.
    pub fn answers_requests(&self) -> bool {
        self.chain.answers_requests()
    }
}

/// One path pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathPattern {
    /// The whole path must be equal.
    Exact(String),
    /// The path must start with this.
    Prefix(String),
}

impl PathPattern {
    /// Parse `/a/b` (exact) or `/a/*`, `/a*` (prefix).
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        if !s.starts_with('/') {
            return Err(format!("path {s:?} must start with `/`").into());
        }
        let literal = s.strip_suffix('*').unwrap_or(s);
        let lenient = PathRules {
            escaped_slashes: EscapedSlashes::Keep,
            semicolons: Semicolons::Keep,
        };
        match normalize_path(literal, &lenient) {
            Ok(n) if n == literal => {}
            Ok(n) => {
                let star = if s.ends_with('*') { "*" } else { "" };
                return Err(format!(
                    "path {s:?} is not normalized: requests are matched after normalization, write \"{n}{star}\""
                ).into());
            }
            Err(e) => return Err(format!("path {s:?}: {}", e.detail()).into()),
        }
        match s.find('*') {
            None => Ok(PathPattern::Exact(s.to_string())),
            Some(i) if i == s.len() - 1 => Ok(PathPattern::Prefix(s[..i].to_string())),
            Some(_) => {
                Err(format!("path {s:?}: `*` is only allowed at the end (prefix match)").into())
            }
        }
    }

    /// Higher is more specific: exact beats prefix, then longer beats shorter.
    fn rank(&self) -> (bool, usize) {
        match self {
            PathPattern::Exact(p) => (true, p.len()),
            PathPattern::Prefix(p) => (false, p.len()),
        }
    }
}

/// One host pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    /// Equal host name (case-insensitive).
    Exact(String),
    /// `*.example.com`: any subdomain (stored as `.example.com`).
    Suffix(String),
}

impl HostPattern {
    /// Parse `api.example.com` or `*.example.com`.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let lower = s.to_ascii_lowercase();
        let lower = lower.strip_suffix('.').unwrap_or(&lower);
        let valid = |h: &str| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == ':')
        };
        if let Some(rest) = lower.strip_prefix("*.") {
            if valid(rest) {
                return Ok(HostPattern::Suffix(format!(".{rest}")));
            }
        } else if valid(lower) {
            return Ok(HostPattern::Exact(lower.to_string()));
        }
        Err(format!("host {s:?} must be a host name or `*.` followed by a domain").into())
    }

    fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(h) => h.eq_ignore_ascii_case(host),
            HostPattern::Suffix(s) => {
                host.len() > s.len()
                    && host.as_bytes()[host.len() - s.len()..].eq_ignore_ascii_case(s.as_bytes())
            }
        }
    }
}

/// What a route matches on (already validated).
#[derive(Debug, Clone)]
pub struct RouteMatch {
    /// Path patterns (at least one).
    pub paths: Vec<PathPattern>,
    /// Upper-case methods; empty = any.
    pub methods: Vec<String>,
    /// Host patterns; empty = any.
    pub hosts: Vec<HostPattern>,
}

/// The result of routing one request.
pub enum RouteResult<'a> {
    /// The most specific matching route.
    Found(&'a Arc<Route>),
    /// Routes match the path and host but not the method; these methods would.
    MethodNotAllowed(Vec<String>),
    /// Nothing matches.
    NotFound,
}

struct Entry {
    path: PathPattern,
    host: Option<HostPattern>,
    methods: Vec<String>,
    route: usize,
}

impl Entry {
    /// Sort key: larger sorts first.
    fn specificity(&self) -> (u8, (bool, usize), bool) {
        let host = match self.host {
            Some(HostPattern::Exact(_)) => 2,
            Some(HostPattern::Suffix(_)) => 1,
            None => 0,
        };
        (host, self.path.rank(), !self.methods.is_empty())
    }
}

/// All routes of one configuration, indexed for matching.
#[derive(Default)]
pub struct Router {
    routes: Vec<Arc<Route>>,
    entries: Vec<Entry>,
}

impl Router {
    /// Index `routes` with their match rules (same order as the config).
    pub fn new(routes: Vec<(Arc<Route>, RouteMatch)>) -> Self {
        let mut entries = Vec::new();
        let mut list = Vec::with_capacity(routes.len());
        for (i, (route, m)) in routes.into_iter().enumerate() {
            let hosts: Vec<Option<HostPattern>> = if m.hosts.is_empty() {
                vec![None]
            } else {
                m.hosts.iter().cloned().map(Some).collect()
            };
            for host in &hosts {
                for path in &m.paths {
                    entries.push(Entry {
                        path: path.clone(),
                        host: host.clone(),
                        methods: m.methods.clone(),
                        route: i,
                    });
                }
            }
            list.push(route);
        }
        // Stable sort keeps config order among equally specific entries.
        entries.sort_by_key(|e| std::cmp::Reverse(e.specificity()));
        Self {
            routes: list,
            entries,
        }
    }

    /// Every route, in config order.
    pub fn routes(&self) -> &[Arc<Route>] {
        &self.routes
    }

    /// The route for a request. `host` is without port; `path` without query.
    pub fn find(&self, host: &str, path: &str, method: &str) -> RouteResult<'_> {
        let mut allowed: Vec<String> = Vec::new();
        for e in &self.entries {
            let path_ok = match &e.path {
                PathPattern::Exact(p) => p == path,
                PathPattern::Prefix(p) => path.starts_with(p.as_str()),
            };
            if !path_ok || !e.host.as_ref().is_none_or(|h| h.matches(host)) {
                continue;
            }
            if e.methods.is_empty() || e.methods.iter().any(|m| m == method) {
                if let Some(r) = self.routes.get(e.route) {
                    return RouteResult::Found(r);
                }
            }
            allowed.extend(e.methods.iter().cloned());
        }
        if allowed.is_empty() {
            RouteResult::NotFound
        } else {
            allowed.sort();
            allowed.dedup();
            RouteResult::MethodNotAllowed(allowed)
        }
    }
}

/// Strip the port from a `Host` header value (`example.com:8080`, `[::1]:80`).
pub fn host_without_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(
        id: &str,
        paths: &[&str],
        methods: &[&str],
        hosts: &[&str],
    ) -> (Arc<Route>, RouteMatch) {
        (
            Arc::new(Route::new(id, Some("u"), Default::default())),
            RouteMatch {
                paths: paths
                    .iter()
                    .map(|p| PathPattern::parse(p).unwrap())
                    .collect(),
                methods: methods.iter().map(|m| m.to_string()).collect(),
                hosts: hosts
                    .iter()
                    .map(|h| HostPattern::parse(h).unwrap())
                    .collect(),
            },
        )
    }

    fn found(r: &Router, host: &str, path: &str, method: &str) -> String {
        match r.find(host, path, method) {
            RouteResult::Found(r) => r.id.to_string(),
            RouteResult::MethodNotAllowed(m) => format!("405 {}", m.join(",")),
            RouteResult::NotFound => "404".into(),
        }
    }

    #[test]
    fn most_specific_route_wins() {
        let r = Router::new(vec![
            route("catch-all", &["/*"], &[], &[]),
            route("orders-prefix", &["/api/orders/*"], &[], &[]),
            route("orders-exact", &["/api/orders"], &["GET", "POST"], &[]),
            route("orders-deep", &["/api/orders/archive/*"], &[], &[]),
            route("tenant", &["/*"], &[], &["*.tenant.example"]),
            route("admin-host", &["/api/orders"], &[], &["admin.example"]),
        ]);
        assert_eq!(found(&r, "x", "/api/orders", "GET"), "orders-exact");
        assert_eq!(found(&r, "x", "/api/orders/1", "GET"), "orders-prefix");
        assert_eq!(
            found(&r, "x", "/api/orders/archive/2", "GET"),
            "orders-deep"
        );
        assert_eq!(found(&r, "x", "/other", "GET"), "catch-all");
        assert_eq!(
            found(&r, "a.tenant.example", "/api/orders", "GET"),
            "tenant"
        );
        assert_eq!(
            found(&r, "ADMIN.example", "/api/orders", "DELETE"),
            "admin-host"
        );
        // A method the exact route lacks falls through to the less specific prefix.
        assert_eq!(found(&r, "x", "/api/orders", "DELETE"), "catch-all");
    }

    #[test]
    fn method_mismatch_is_405_and_no_match_is_404() {
        let r = Router::new(vec![
            route("a", &["/a"], &["GET"], &[]),
            route("b", &["/a"], &["POST", "PUT"], &[]),
        ]);
        assert_eq!(found(&r, "h", "/a", "DELETE"), "405 GET,POST,PUT");
        assert_eq!(found(&r, "h", "/b", "GET"), "404");
        assert_eq!(found(&r, "h", "/a", "PUT"), "b");
    }

    #[test]
    fn earlier_route_wins_ties() {
        let r = Router::new(vec![
            route("first", &["/x/*"], &[], &[]),
            route("second", &["/x/*"], &[], &[]),
        ]);
        assert_eq!(found(&r, "h", "/x/1", "GET"), "first");
    }

    #[test]
    fn parses_patterns() {
        assert_eq!(
            PathPattern::parse("/a/*").unwrap(),
            PathPattern::Prefix("/a/".into())
        );
        assert_eq!(
            PathPattern::parse("/a").unwrap(),
            PathPattern::Exact("/a".into())
        );
        assert!(PathPattern::parse("a").is_err());
        assert!(PathPattern::parse("/a/*/b").is_err());
        assert!(HostPattern::parse("bad host").is_err());
        assert!(!HostPattern::parse("*.x.com").unwrap().matches("x.com"));
        assert_eq!(host_without_port("a.com:8080"), "a.com");
        assert_eq!(host_without_port("[::1]:80"), "::1");
        assert!(PathPattern::parse("/a//b").is_err(), "not normalized");
        assert!(PathPattern::parse("/%61/*").is_err(), "not normalized");
        assert!(PathPattern::parse("/a/../b").is_err(), "not normalized");
        assert!(PathPattern::parse("/a%2Fb").is_ok(), "kept escape");
        assert_eq!(
            HostPattern::parse("Admin.Example.").unwrap(),
            HostPattern::Exact("admin.example".into())
        );
    }
}
