//! Route matching with a realistic table: 200 routes (exact, prefix, host-bound).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use sluice_core::router::{HostPattern, PathPattern, Route, RouteMatch, RouteResult, Router};

fn router() -> Router {
    let mut routes = Vec::new();
    for i in 0..200 {
        let (paths, hosts): (Vec<String>, Vec<String>) = match i % 4 {
            0 => (vec![format!("/api/v1/svc{i}")], vec![]),
            1 => (vec![format!("/api/v1/svc{i}/*")], vec![]),
            2 => (
                vec![format!("/api/v2/svc{i}/*")],
                vec![format!("tenant{i}.example.com")],
            ),
            _ => (vec![format!("/events/{i}/*")], vec!["*.example.org".into()]),
        };
        let m = RouteMatch {
            paths: paths
                .iter()
                .map(|p| PathPattern::parse(p).unwrap())
                .collect(),
            methods: if i % 2 == 0 {
                vec!["GET".into(), "POST".into()]
            } else {
                vec![]
            },
            hosts: hosts
                .iter()
                .map(|h| HostPattern::parse(h).unwrap())
                .collect(),
        };
        routes.push((
            Arc::new(Route::new(&format!("r{i}"), Some("u"), Default::default())),
            m,
        ));
    }
    routes.push((
        Arc::new(Route::new("catch-all", Some("u"), Default::default())),
        RouteMatch {
            paths: vec![PathPattern::parse("/*").unwrap()],
            methods: vec![],
            hosts: vec![],
        },
    ));
    Router::new(routes)
}

fn bench(c: &mut Criterion) {
    let r = router();
    let mut g = c.benchmark_group("route_match_200_routes");
    for (name, host, path) in [
        ("exact", "api.example.com", "/api/v1/svc100"),
        ("prefix", "api.example.com", "/api/v1/svc101/orders/42"),
        ("host_bound", "tenant102.example.com", "/api/v2/svc102/x"),
        ("fallthrough", "api.example.com", "/unknown/path"),
    ] {
        g.bench_function(name, |b| {
            b.iter(
                || match r.find(black_box(host), black_box(path), black_box("GET")) {
                    RouteResult::Found(r) => r.id.len(),
                    _ => 0,
                },
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
