//! What the consume-side tests that kill or add members mid-delivery share: keyed
//! records to produce, committed offsets sampled all along (none may move backwards),
//! and each key's records arriving in order (counting each record's first arrival).

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::kafka::committed;
use crate::receiver::Hit;

/// `per_key` records for each of `keys` keys, in sequence order: key `k<i>` on
/// partition `i % partitions`, value `{"key":"k<i>","seq":<n>}`.
pub fn keyed_records(keys: usize, per_key: usize, partitions: i32) -> Vec<(i32, String, String)> {
    (0..per_key)
        .flat_map(|seq| {
            (0..keys).map(move |k| {
                (
                    (k as i32) % partitions,
                    format!("k{k}"),
                    format!(r#"{{"key":"k{k}","seq":{seq}}}"#),
                )
            })
        })
        .collect()
}

/// (key, seq) of a record made by [`keyed_records`], as delivered.
pub fn parse(body: &[u8]) -> (String, u64) {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    (
        v["key"].as_str().unwrap().to_string(),
        v["seq"].as_u64().unwrap(),
    )
}

/// The group's committed offsets of `topic`, sampled every 200 ms until [`Self::finish`].
pub struct CommitSampler {
    stop: Arc<AtomicBool>,
    history: Arc<Mutex<Vec<Vec<i64>>>>,
    thread: Option<JoinHandle<()>>,
}

impl CommitSampler {
    /// Start sampling `group`'s offsets of the `partitions` of `topic`.
    pub fn start(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let history: Arc<Mutex<Vec<Vec<i64>>>> = Arc::default();
        let (s, h) = (stop.clone(), history.clone());
        let (bootstrap, group, topic) =
            (bootstrap.to_string(), group.to_string(), topic.to_string());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let c = committed(&bootstrap, &group, &topic, partitions);
                h.lock().unwrap().push(c);
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        Self {
            stop,
            history,
            thread: Some(thread),
        }
    }

    /// Stop sampling and assert that no partition's committed offset moved backwards;
    /// the number of samples.
    pub fn finish(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        let history = self.history.lock().unwrap();
        for w in history.windows(2) {
            for (p, (before, after)) in w[0].iter().zip(&w[1]).enumerate() {
                assert!(
                    after >= before,
                    "partition {p}: committed offset moved back from {before} to {after}"
                );
            }
        }
        history.len()
    }
}

/// Assert that `keys` keys arrived, each with its records `0..per_key` in order,
/// counting each record's first arrival; `parse` gives a body's (key, sequence).
pub fn assert_each_key_in_order(
    hits: &[Hit],
    parse: impl Fn(&[u8]) -> (String, u64),
    keys: usize,
    per_key: usize,
) {
    let mut first: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut seen = HashSet::new();
    for h in hits {
        let (key, seq) = parse(&h.seen.body);
        if seen.insert((key.clone(), seq)) {
            first.entry(key).or_default().push(seq);
        }
    }
    assert_eq!(first.len(), keys);
    for (key, seqs) in &first {
        assert_eq!(
            *seqs,
            (0..per_key as u64).collect::<Vec<_>>(),
            "key {key}: every record, in order"
        );
    }
}
