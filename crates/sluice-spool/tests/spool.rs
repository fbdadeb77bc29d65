//! The spool against a simple in-memory model (property tests: append, read, ack,
//! rewind, maintain, restart, corrupted and torn tails), plus bounds and disk errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use proptest::prelude::*;
use sluice_spool::{Entry, Spool, SpoolError, SpoolOptions, SyncPolicy};

fn tmp(tag: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("sluice-spool-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn opts(dir: &Path) -> SpoolOptions {
    SpoolOptions {
        dir: dir.to_path_buf(),
        max_bytes: 1 << 20,
        buffer_bytes: 1 << 20,
        segment_bytes: 400,
        sync: SyncPolicy::Batch,
        identity: "cluster test\nbrokers 127.0.0.1:9092".into(),
    }
}

/// Append and wait for the writer's report.
fn append(s: &Spool, payload: &[u8], durable: bool) -> Result<(), SpoolError> {
    let (tx, rx) = mpsc::channel();
    s.append(
        7,
        payload.to_vec(),
        durable,
        Box::new(move |r| drop(tx.send(r))),
    )?;
    rx.recv_timeout(Duration::from_secs(10)).unwrap()
}

fn newest_segment(s: &Spool) -> Option<PathBuf> {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(s.own_dir())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    segs.pop()
}

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<u8>),
    Read(usize),
    Ack(usize),
    Rewind,
    Maintain,
    Restart,
    Garbage(Vec<u8>),
    TornTail(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => proptest::collection::vec(any::<u8>(), 0..120).prop_map(Op::Append),
        3 => (1usize..6).prop_map(Op::Read),
        3 => (0usize..8).prop_map(Op::Ack),
        1 => Just(Op::Rewind),
        1 => Just(Op::Maintain),
        1 => Just(Op::Restart),
        1 => proptest::collection::vec(any::<u8>(), 1..40).prop_map(Op::Garbage),
        1 => (1usize..20).prop_map(Op::TornTail),
    ]
}

/// The model: records in append order, each acknowledged or not; a replay cursor.
#[derive(Default)]
struct Model {
    records: VecDeque<(Vec<u8>, bool)>,
    /// Index into `records` of the next record a read returns (skipping acked ones).
    cursor: usize,
}

impl Model {
    fn unacked(&self) -> u64 {
        self.records.iter().filter(|(_, a)| !a).count() as u64
    }
    fn read(&mut self, n: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while out.len() < n && self.cursor < self.records.len() {
            let (p, acked) = &self.records[self.cursor];
            if !acked {
                out.push(p.clone());
            }
            self.cursor += 1;
        }
        out
    }
    fn rewind(&mut self) {
        self.cursor = 0;
    }
}

fn run(ops: Vec<Op>) {
    let dir = tmp("model");
    let mut spool = Spool::open(opts(&dir)).unwrap();
    let mut model = Model::default();
    // Read but not yet acknowledged: (entry, index in model.records).
    let mut outstanding: Vec<(Entry, usize)> = Vec::new();
    // Map from a model index to its position, tracked by payload order of reads.
    for op in ops {
        match &op {
            Op::Append(p) => {
                append(&spool, p, false).unwrap();
                model.records.push_back((p.clone(), false));
            }
            &Op::Read(n) => {
                let got = spool.read(n, 1 << 20).unwrap();
                let before = model.cursor;
                let want = model.read(n);
                let payloads: Vec<Vec<u8>> = got.iter().map(|e| e.payload.clone()).collect();
                assert_eq!(payloads, want, "read({n}) from model cursor {before}");
                // Remember which model records these are.
                let mut idx = before;
                for e in got {
                    while model.records[idx].1 {
                        idx += 1;
                    }
                    outstanding.push((e, idx));
                    idx += 1;
                }
            }
            &Op::Ack(i) => {
                if !outstanding.is_empty() {
                    let (e, idx) = outstanding.remove(i % outstanding.len());
                    spool.ack(e.id);
                    model.records[idx].1 = true;
                }
            }
            Op::Rewind => {
                spool.rewind();
                model.rewind();
                outstanding.clear();
            }
            Op::Maintain => spool.maintain().unwrap(),
            Op::Restart | Op::Garbage(_) | Op::TornTail(_) => {
                spool.maintain().unwrap();
                let newest = newest_segment(&spool);
                spool.close();
                drop(spool);
                match (&op, newest) {
                    (Op::Garbage(g), Some(seg)) => {
                        let mut f = std::fs::OpenOptions::new().append(true).open(seg).unwrap();
                        std::io::Write::write_all(&mut f, g).unwrap();
                    }
                    (Op::TornTail(k), Some(seg)) => {
                        // Cut into the last record only if it is still held (unacked).
                        let len = std::fs::metadata(&seg).unwrap().len();
                        if let Some((last, false)) = model.records.back().cloned() {
                            let frame = (sluice_spool::format::HEADER + last.len()) as u64;
                            if len >= frame {
                                let cut = (*k as u64).min(frame);
                                let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
                                f.set_len(len - cut).unwrap();
                                model.records.pop_back();
                            }
                        }
                    }
                    _ => {}
                }
                spool = Spool::open(opts(&dir)).unwrap();
                // After a restart everything unacknowledged is replayed from the start;
                // acknowledged records are gone for good.
                model.records.retain(|(_, acked)| !acked);
                model.rewind();
                outstanding.clear();
            }
        }
        assert_eq!(spool.stats().records, model.unacked(), "after {op:?}");
    }
    // Finally everything unacknowledged is still readable, in order.
    spool.rewind();
    model.rewind();
    let all: Vec<Vec<u8>> = spool
        .read(10_000, 1 << 24)
        .unwrap()
        .into_iter()
        .map(|e| e.payload)
        .collect();
    assert_eq!(all, model.read(10_000));
    drop(spool);
    let _ = std::fs::remove_dir_all(dir);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]
    #[test]
    fn behaves_like_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops);
    }
}

#[test]
fn survives_restart_and_deletes_delivered_segments() {
    let dir = tmp("restart");
    let s = Spool::open(opts(&dir)).unwrap();
    for i in 0..50u8 {
        append(&s, &[i; 30], false).unwrap();
    }
    let first_dir = s.own_dir().to_path_buf();
    drop(s);
    let s = Spool::open(opts(&dir)).unwrap();
    assert_eq!(s.stats().records, 50);
    let all = s.read(100, 1 << 20).unwrap();
    assert_eq!(all.len(), 50);
    assert_eq!(all[49].payload, vec![49u8; 30]);
    for e in &all {
        s.ack(e.id);
    }
    s.maintain().unwrap();
    assert_eq!(s.stats().records, 0);
    assert_eq!(s.stats().bytes, 0);
    assert!(!first_dir.exists(), "a drained directory is removed");
}

#[test]
fn bounded_in_bytes() {
    let dir = tmp("full");
    let mut o = opts(&dir);
    o.max_bytes = 1000;
    let s = Spool::open(o).unwrap();
    let mut ok = 0;
    loop {
        match append(&s, &[1u8; 100], false) {
            Ok(()) => ok += 1,
            Err(e) => {
                assert_eq!(e, SpoolError::Full);
                break;
            }
        }
    }
    // 128-byte frames: 7 fit in 1000 bytes.
    assert_eq!(ok, 7);
    assert!(s.stats().bytes <= 1000);
    assert_eq!(s.stats().refused, 1);
    // Delivering frees space (once the segments holding them are gone).
    let all = s.read(100, 1 << 20).unwrap();
    for e in all {
        s.ack(e.id);
    }
    s.maintain().unwrap();
    assert!(append(&s, &[1u8; 100], false).is_ok());
}

#[test]
fn write_buffer_is_bounded() {
    let dir = tmp("busy");
    let mut o = opts(&dir);
    o.buffer_bytes = 200;
    let s = Spool::open(o).unwrap();
    // One 250-byte frame never fits in a 200-byte buffer.
    let r = s.append(1, vec![0u8; 222], false, Box::new(|_| {}));
    assert_eq!(r, Err(SpoolError::Busy));
}

#[test]
fn disk_errors_are_reported_not_silent() {
    let dir = tmp("enospc");
    let s = Spool::open(opts(&dir)).unwrap();
    // The first segment is /dev/full: every write fails with ENOSPC.
    std::os::unix::fs::symlink("/dev/full", s.own_dir().join("00000000000000000001.seg")).unwrap();
    let err = append(&s, b"lost?", true).unwrap_err();
    assert!(
        matches!(err, SpoolError::Io(ref m) if m.contains("No space left")),
        "{err:?}"
    );
    assert_eq!(s.stats().write_errors, 1);
    assert_eq!(s.stats().records, 0);
}

#[test]
fn a_locked_directory_is_not_adopted() {
    let dir = tmp("locked");
    let a = Spool::open(opts(&dir)).unwrap();
    append(&a, b"owned by a", false).unwrap();
    let b = Spool::open(opts(&dir)).unwrap();
    assert_eq!(b.stats().records, 0, "a's directory is locked by a");
    drop(a);
    b.maintain().unwrap();
    assert_eq!(b.stats().records, 1, "adopted once a is gone");
    assert_eq!(b.read(10, 1 << 20).unwrap()[0].payload, b"owned by a");
}

#[test]
fn a_failed_acknowledgement_write_keeps_the_byte_count_true() {
    let dir = tmp("acked-fails");
    let s = Spool::open(opts(&dir)).unwrap();
    for i in 0..50u8 {
        append(&s, &[i; 30], false).unwrap();
    }
    let before = s.stats().bytes;
    for e in s.read(100, 1 << 20).unwrap() {
        s.ack(e.id);
    }
    // `ACKED` cannot be written (its temporary name is taken by a directory), after
    // the delivered segments were deleted.
    std::fs::create_dir(s.own_dir().join("ACKED.tmp")).unwrap();
    assert!(s.maintain().is_err(), "the failure is reported");
    let on_disk: u64 = std::fs::read_dir(s.own_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(on_disk < before, "segments were deleted");
    assert_eq!(s.stats().bytes, on_disk, "the count follows the disk");
}
