//! Scraping `/metrics` and reading values by name and labels.

use crate::client;

/// One sample: name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// One scrape.
pub struct Scrape {
    lines: Vec<Sample>,
}

/// Scrape the admin listener.
pub fn scrape(admin: u16) -> Scrape {
    let r = client::get(admin, "/metrics");
    assert_eq!(r.status, 200);
    let mut lines = Vec::new();
    for l in r
        .text()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (head, value) = l.rsplit_once(' ').unwrap();
        let (name, labels) = match head.split_once('{') {
            Some((n, rest)) => (n, parse_labels(rest.trim_end_matches('}'))),
            None => (head, Vec::new()),
        };
        lines.push((name.to_string(), labels, value.parse().unwrap_or(f64::NAN)));
    }
    Scrape { lines }
}

fn parse_labels(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some((k, v)) = rest.split_once("=\"") {
        let end = v.find('"').unwrap_or(v.len());
        out.push((k.trim_start_matches(',').to_string(), v[..end].to_string()));
        rest = &v[(end + 1).min(v.len())..];
    }
    out
}

impl Scrape {
    /// Sum of every sample of `name` whose labels include all of `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.lines
            .iter()
            .filter(|(n, ls, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| ls.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }

    /// Every label set of `name` with its value.
    pub fn samples(&self, name: &str) -> Vec<(Vec<(String, String)>, f64)> {
        self.lines
            .iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, l, v)| (l.clone(), *v))
            .collect()
    }
}

/// The accounting of one route and plugin: (attempted, acked, failed, discarded, in_flight).
pub fn events(s: &Scrape, route: &str, plugin: &str) -> (f64, f64, f64, f64, f64) {
    let l = [("route", route), ("plugin", plugin)];
    let outcome = |o: &str| s.sum("sluice_kafka_events_total", &[l[0], l[1], ("outcome", o)]);
    (
        s.sum("sluice_kafka_events_attempted_total", &l),
        outcome("acked"),
        outcome("failed"),
        outcome("discarded"),
        s.sum("sluice_kafka_events_in_flight", &l),
    )
}

/// Wait until the sum of `name{labels}` equals `expected` (requests are counted after
/// their response was sent, so a scrape right after a response can be early).
pub fn wait_sum(admin: u16, name: &str, labels: &[(&str, &str)], expected: f64) -> Scrape {
    let mut last = f64::NAN;
    crate::wait_for(
        &format!("{name}{labels:?} == {expected} (last {last})"),
        std::time::Duration::from_secs(10),
        || {
            let s = scrape(admin);
            last = s.sum(name, labels);
            (last == expected).then_some(s)
        },
    )
}
