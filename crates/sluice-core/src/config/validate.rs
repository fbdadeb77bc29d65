//! Meaning checks on decoded sections: addresses that parse, references that exist,
//! unique route ids, values in range. Every problem is recorded; nothing stops early.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;

use super::decode::FieldError;
use super::model::*;
use super::path::FieldPath;
use super::validate_cluster::{cluster, topic_names};
use super::ConfigDoc;
use crate::router::{HostPattern, PathPattern, RouteMatch};
use crate::template::Template;

pub(super) fn check(doc: &mut ConfigDoc) {
    let mut errors = Vec::new();
    let root = FieldPath::root();
    server(&doc.config.server, &root.key("server"), &mut errors);
    tls(doc, &mut errors);
    let admin = &doc.config.admin;
    if let Some(t) = &admin.token {
        if t.len() < 16 || t.bytes().any(|b| !b.is_ascii_graphic()) {
            errors.push(FieldError::value(
                root.key("admin").key("token"),
                "must be at least 16 visible ASCII characters",
            ));
        }
    }
    match admin.listen.parse::<SocketAddr>() {
        Err(_) => errors.push(FieldError::value(
            root.key("admin").key("listen"),
            format!("{:?} is not an `ip:port` address", admin.listen),
        )),
        Ok(a) => {
            if !a.ip().is_loopback() && admin.token.is_none() {
                errors.push(FieldError::value(
                    root.key("admin").key("listen"),
                    "an admin listener off loopback needs `admin.token` (the admin API shows the configuration)",
                ));
            }
            if doc.config.server.listen.contains(&admin.listen) {
                errors.push(FieldError::value(
                    root.key("admin").key("listen"),
                    "the admin listener must not share an address with a proxy listener",
                ));
            }
        }
    }
    if let Some(r) = &doc.config.redis {
        r.check(&root.key("redis"), &mut errors);
    }
    let mut spool_dirs: HashMap<&str, &str> = HashMap::new();
    for (name, c) in &doc.config.clusters {
        let at = root.key("kafka").key("clusters").key(name);
        cluster(c, &at, &mut errors);
        if let Some(sp) = &c.spool {
            if let Some(other) = spool_dirs.insert(sp.dir.as_str(), name.as_str()) {
                errors.push(FieldError::value(
                    at.key("spool").key("dir"),
                    format!("cluster `{other}` already spools to this directory"),
                ));
            }
        }
    }
    for (name, u) in &doc.config.upstreams {
        upstream(u, &ConfigDoc::upstream_path(name), &mut errors);
    }
    let mut ids: HashMap<&str, usize> = HashMap::new();
    let mut matches: HashMap<(String, Vec<String>, Vec<String>), usize> = HashMap::new();
    for (i, r) in doc.config.routes.iter().enumerate() {
        let at = doc.route_path(i);
        route(r, &at, &doc.declared_upstreams, &mut errors);
        if let Some(first) = ids.insert(r.id.as_str(), i) {
            ids.insert(r.id.as_str(), first);
            errors.push(FieldError::value(
                at.key("id"),
                format!(
                    "duplicate route id `{}` (first used at {})",
                    r.id,
                    doc.route_path(first)
                ),
            ));
        }
        let mut methods = r
            .matcher
            .methods
            .iter()
            .map(|m| m.to_ascii_uppercase())
            .collect::<Vec<_>>();
        methods.sort();
        let mut hosts = r
            .matcher
            .hosts
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect::<Vec<_>>();
        hosts.sort();
        for p in &r.matcher.paths {
            let key = (p.clone(), methods.clone(), hosts.clone());
            if let Some(&first) = matches.get(&key) {
                errors.push(FieldError::value(
                    at.key("match"),
                    format!(
                        "path {p:?} with the same methods and hosts is already taken by route `{}`; this route would never match it",
                        doc.config.routes.get(first).map(|r| r.id.as_str()).unwrap_or("?")
                    ),
                ));
            } else {
                matches.insert(key, i);
            }
        }
    }
    errors.extend(super::consumer::check(&doc.config.consumers, &|i| {
        doc.consumer_path(i)
    }));
    let mut sub_ids: HashMap<&str, usize> = HashMap::new();
    for (i, sub) in doc.config.subscriptions.iter().enumerate() {
        let at = doc.subscription_path(i);
        if let Some(first) = sub_ids.insert(sub.id.as_str(), i) {
            sub_ids.insert(sub.id.as_str(), first);
            errors.push(FieldError::value(
                at.key("id"),
                format!(
                    "duplicate subscription id `{}` (first used at {})",
                    sub.id,
                    doc.subscription_path(first)
                ),
            ));
        }
        if sub.id.is_empty()
            || !sub
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            errors.push(FieldError::value(
                at.key("id"),
                "must be letters, digits, `-`, `_` or `.`",
            ));
        }
        if !doc.declared_clusters.contains(&sub.cluster) {
            errors.push(FieldError::value(
                at.key("cluster"),
                format!(
                    "unknown cluster `{}` (define it under kafka.clusters)",
                    sub.cluster
                ),
            ));
        }
        if sub.topics.is_empty() {
            errors.push(FieldError::value(
                at.key("topics"),
                "at least one topic is needed",
            ));
        }
        topic_names(&sub.topics, &at.key("topics"), &mut errors);
    }
    doc.errors.extend(errors);
}

fn server(s: &ServerConfig, at: &FieldPath, errors: &mut Vec<FieldError>) {
    if s.listen.is_empty() {
        errors.push(FieldError::value(
            at.key("listen"),
            "at least one listen address is needed",
        ));
    }
    for (i, l) in s.listen.iter().enumerate() {
        if l.parse::<SocketAddr>().is_err() {
            errors.push(FieldError::value(
                at.key("listen").index(i),
                format!("{l:?} is not an `ip:port` address"),
            ));
        }
    }
    if !(1..=256).contains(&s.threads) {
        errors.push(FieldError::value(
            at.key("threads"),
            "must be between 1 and 256",
        ));
    }
    s.limits.check(&at.key("limits"), errors);
    for (i, c) in s.trusted_proxies.iter().enumerate() {
        if let Err(e) = crate::forwarded::Cidr::parse(c) {
            errors.push(FieldError::value(at.key("trusted_proxies").index(i), e));
        }
    }
}

fn tls(doc: &ConfigDoc, errors: &mut Vec<FieldError>) {
    let s = &doc.config.server;
    if let Some(t) = &s.tls {
        let mut taken: Vec<&str> = s.listen.iter().map(String::as_str).collect();
        taken.push(doc.config.admin.listen.as_str());
        t.check(&FieldPath::root().key("server").key("tls"), &taken, errors);
    }
}

fn upstream(u: &UpstreamConfig, at: &FieldPath, errors: &mut Vec<FieldError>) {
    if u.nodes.is_empty() {
        errors.push(FieldError::value(
            at.key("nodes"),
            "at least one node is needed",
        ));
    }
    for (i, n) in u.nodes.iter().enumerate() {
        if !is_host_port(n) {
            errors.push(FieldError::value(
                at.key("nodes").index(i),
                format!("{n:?} is not a `host:port` address"),
            ));
        }
    }
    match (u.balance, &u.hash_key) {
        (Balance::RoundRobin, Some(_)) => errors.push(FieldError::key(
            at.key("hash_key"),
            "`hash_key` needs `balance: consistent_hash`",
        )),
        (_, Some(k)) => {
            if let Err(e) = Template::parse(k) {
                errors.push(FieldError::value(at.key("hash_key"), e));
            }
        }
        _ => {}
    }
    match (u.pass_host, &u.upstream_host) {
        (PassHost::Rewrite, None) => errors.push(FieldError::value(
            at.key("pass_host"),
            "`pass_host: rewrite` needs `upstream_host`",
        )),
        (PassHost::Pass | PassHost::Node, Some(_)) => errors.push(FieldError::key(
            at.key("upstream_host"),
            "`upstream_host` is only used with `pass_host: rewrite`",
        )),
        _ => {}
    }
    for (field, d) in [
        ("connect_timeout", u.connect_timeout),
        ("read_timeout", u.read_timeout),
        ("write_timeout", u.write_timeout),
        ("idle_timeout", u.idle_timeout),
    ] {
        if d.0.is_zero() {
            errors.push(FieldError::value(at.key(field), "must be greater than 0"));
        }
    }
    if u.retries > 15 {
        errors.push(FieldError::value(at.key("retries"), "must be at most 15"));
    }
    if let Some(hc) = &u.health_check {
        let hat = at.key("health_check");
        if hc.interval.0.is_zero() {
            errors.push(FieldError::value(
                hat.key("interval"),
                "must be greater than 0",
            ));
        }
        if hc.healthy_threshold == 0 {
            errors.push(FieldError::value(
                hat.key("healthy_threshold"),
                "must be at least 1",
            ));
        }
        if hc.unhealthy_threshold == 0 {
            errors.push(FieldError::value(
                hat.key("unhealthy_threshold"),
                "must be at least 1",
            ));
        }
        if !hc.path.starts_with('/') {
            errors.push(FieldError::value(hat.key("path"), "must start with `/`"));
        }
    }
}

fn route(
    r: &RouteConfig,
    at: &FieldPath,
    upstreams: &BTreeSet<String>,
    errors: &mut Vec<FieldError>,
) {
    let id_ok = !r.id.is_empty()
        && r.id.len() <= 128
        && r.id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if !id_ok {
        errors.push(FieldError::value(
            at.key("id"),
            "must be 1-128 characters of letters, digits, `-`, `_` or `.`",
        ));
    }
    let m = at.key("match");
    if r.matcher.paths.is_empty() {
        errors.push(FieldError::value(
            m.key("paths"),
            "at least one path is needed",
        ));
    }
    for (i, p) in r.matcher.paths.iter().enumerate() {
        if let Err(e) = PathPattern::parse(p) {
            errors.push(FieldError::value(m.key("paths").index(i), e));
        }
    }
    for (i, meth) in r.matcher.methods.iter().enumerate() {
        if http::Method::from_bytes(meth.to_ascii_uppercase().as_bytes()).is_err() {
            errors.push(FieldError::value(
                m.key("methods").index(i),
                format!("{meth:?} is not an HTTP method"),
            ));
        }
    }
    for (i, h) in r.matcher.hosts.iter().enumerate() {
        if let Err(e) = HostPattern::parse(h) {
            errors.push(FieldError::value(m.key("hosts").index(i), e));
        }
    }
    if let Some(u) = &r.upstream {
        if !upstreams.contains(u) {
            errors.push(FieldError::value(
                at.key("upstream"),
                format!(
                    "unknown upstream `{u}` (defined: {})",
                    upstreams.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
}

/// Compile match rules; `None` if they are invalid (errors were recorded by `check`).
pub(super) fn route_match(m: &MatchConfig) -> Option<RouteMatch> {
    Some(RouteMatch {
        paths: m
            .paths
            .iter()
            .map(|p| PathPattern::parse(p))
            .collect::<Result<_, _>>()
            .ok()?,
        methods: m.methods.iter().map(|s| s.to_ascii_uppercase()).collect(),
        hosts: m
            .hosts
            .iter()
            .map(|h| HostPattern::parse(h))
            .collect::<Result<_, _>>()
            .ok()?,
    })
}

/// `host:port` with a host and a port above 0 (upstream nodes, brokers, Redis).
pub(super) fn is_host_port(a: &str) -> bool {
    a.rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0))
}
