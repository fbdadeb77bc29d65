//! Warnings (not errors) for routes whose authentication a neighbour undoes: a route
//! with an authentication plugin that is limited to some methods, or written without a
//! trailing slash, next to a route without authentication that takes the other methods
//! or the slashed path (`/api/orders` GET behind key-auth, `/*` open: `DELETE
//! /api/orders` and `/api/orders/` reach the open route).

use std::collections::HashMap;

use crate::router::{HostPattern, PathPattern, RouteMatch, RouteResult, Router};

/// Methods probed; `PROPFIND` stands for any extension method.
const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND",
];

/// A host the route matches, to probe with.
fn probe_host(m: &RouteMatch) -> String {
    match m.hosts.first() {
        Some(HostPattern::Exact(h)) => h.clone(),
        Some(HostPattern::Suffix(s)) => format!("x{s}"),
        None => "probe.invalid".into(),
    }
}

/// One warning per way around each authenticated route (`routes` as compiled, with
/// whether each route id authenticates).
pub fn auth_shadow_warnings(
    routes: &[(String, RouteMatch)],
    authenticates: &HashMap<String, bool>,
    router: &Router,
) -> Vec<String> {
    let mut out = Vec::new();
    let open = |r: &RouteResult<'_>, own: &str| match r {
        RouteResult::Found(route) if route.id.as_ref() != own => (!authenticates
            .get(route.id.as_ref())
            .copied()
            .unwrap_or(false))
        .then(|| route.id.to_string()),
        _ => None,
    };
    for (id, m) in routes {
        if !authenticates.get(id).copied().unwrap_or(false) {
            continue;
        }
        let host = probe_host(m);
        let own_method = m.methods.first().map_or("GET", String::as_str);
        for p in &m.paths {
            let (path, other_slash) = match p {
                PathPattern::Exact(p) => match p.strip_suffix('/') {
                    Some(bare) => (p.clone(), bare.to_string()),
                    None => (p.clone(), format!("{p}/")),
                },
                PathPattern::Prefix(p) => match p.strip_suffix('/') {
                    Some(bare) if !bare.is_empty() => (p.clone(), bare.to_string()),
                    _ => continue,
                },
            };
            if !m.methods.is_empty() {
                let mut leaks: Vec<(&str, String)> = Vec::new();
                for method in METHODS
                    .iter()
                    .filter(|x| !m.methods.iter().any(|y| y == *x))
                {
                    if let Some(other) = open(&router.find(&host, &path, method), id) {
                        leaks.push((method, other));
                    }
                }
                if let Some((_, other)) = leaks.first() {
                    let methods: Vec<&str> = leaks.iter().map(|(m, _)| *m).collect();
                    out.push(format!(
                        "route `{id}` authenticates `{path}` for {}, but {} reach route `{other}` without authentication",
                        m.methods.join(", "),
                        methods.join(", ")
                    ));
                }
            }
            if path != "/" && !other_slash.is_empty() {
                if let Some(other) = open(&router.find(&host, &other_slash, own_method), id) {
                    out.push(format!(
                        "route `{id}` authenticates `{path}`, but `{other_slash}` reaches route `{other}` without authentication"
                    ));
                }
            }
        }
    }
    out
}
