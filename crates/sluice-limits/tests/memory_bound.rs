//! The memory of a limit table is bounded by `Table::max_heap_bytes` whatever
//! the keys are: a million distinct keys, and ten thousand keys of 30 KB each, measured
//! with a counting allocator (net heap bytes held by the table). The count is kept per
//! thread, so what the test harness or another test allocates meanwhile (a panic's
//! backtrace, a key made before a lock) is not charged to the table measured.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::time::Duration;

use sluice_limits::{Expiring, LeakyBucket, Policy, Table, WindowCounter};

struct Counting;

thread_local! {
    /// Net bytes allocated by this thread (const-initialised, no destructor: safe to
    /// touch from inside the allocator, even while the thread exits).
    static HELD: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    let _ = HELD.try_with(|h| h.set(h.get() + delta));
}

fn held_now() -> isize {
    HELD.with(Cell::get)
}

// SAFETY: forwards to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count(l.size() as isize);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        count(-(l.size() as isize));
        // SAFETY: `p` came from `alloc` with layout `l`.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const MAX_KEYS: usize = 100_000;

/// Insert `keys` into a new table; the net heap bytes it holds, and its length. The key
/// strings are made and freed one at a time, so only the table's bytes remain.
fn held_by<S: Expiring>(
    make: impl Fn(Duration) -> S,
    keys: impl Iterator<Item = String>,
) -> (usize, usize, usize) {
    // The first table of a thread sets up its random generator (kept for the thread).
    drop(Table::<S>::new(1));
    let before = held_now();
    let table: Table<S> = Table::new(MAX_KEYS);
    let bound = table.max_heap_bytes();
    let now = Duration::from_secs(1);
    for k in keys {
        table.with(&k, now, || make(now), |_| ());
    }
    let held = usize::try_from(held_now() - before).unwrap();
    let len = table.len();
    drop(table);
    (held, len, bound)
}

#[test]
fn a_million_distinct_keys_stay_within_the_bound() {
    let counter = WindowCounter::new(10, Duration::from_secs(60), Policy::Sliding);
    let (held, len, bound) = held_by(
        |now| counter.state(now),
        (0..1_000_000u32).map(|i| format!("client-{i}")),
    );
    assert!(len <= MAX_KEYS + 16, "{len} keys");
    assert!(held <= bound, "{held} bytes held, bound {bound}");
    println!(
        "window: {len} keys, {held} bytes ({} per key), bound {bound} ({} per key)",
        held / len,
        bound / MAX_KEYS
    );
}

#[test]
fn long_keys_cost_what_short_ones_do() {
    let bucket = LeakyBucket::new(10.0, 5.0, false);
    let long = "k".repeat(30 * 1024);
    let (held, len, _) = held_by(
        |now| bucket.state(now),
        (0..10_000u32).map(|i| format!("{i}{long}")),
    );
    assert_eq!(len, 10_000);
    // Not full: the table has grown for 10k keys only; each costs what a short key does.
    let bound = len * 200;
    assert!(
        held <= bound,
        "{held} bytes held for 10k 30 KB keys, bound {bound}"
    );
    println!(
        "leaky: {len} keys of 30 KB, {held} bytes ({} per key)",
        held / len
    );
}
