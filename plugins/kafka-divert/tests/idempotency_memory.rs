//! The idempotency store's memory per remembered key is bounded by
//! `Store::BYTES_PER_ENTRY` whatever the key: 20,000 keys of 255 bytes with their stored
//! `202` (longest topic name), measured with a counting allocator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use sluice_kafka::Acked;
use sluice_plugin_kafka_divert::idempotency::{Begin, Store};
use sluice_plugin_kafka_divert::reply::accepted;

struct Counting;
static HELD: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        HELD.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        HELD.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: `p` came from `alloc` with layout `l`.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[test]
fn remembered_keys_cost_a_bounded_number_of_bytes() {
    const N: usize = 20_000;
    let topic = "t".repeat(249);
    let ack = Acked {
        partition: 11,
        offset: 123_456_789,
    };
    // The first store of a thread sets up its random generator (kept for the thread).
    drop(Store::new(Duration::from_secs(1), 1));
    let before = HELD.load(Ordering::Relaxed);
    let store = Store::new(Duration::from_secs(3600), N);
    let now = Instant::now();
    for i in 0..N {
        let key = format!("{i:0>255}");
        let Begin::Proceed(claim) = store.begin(&key, [7; 32], now) else {
            panic!("key {i} not new");
        };
        let id = format!("0193c6f2-7d1e-7a3b-9c4d-{i:0>12}");
        claim.complete(accepted(&id, &topic, Some(&ack)), now);
    }
    let held = usize::try_from(HELD.load(Ordering::Relaxed) - before).unwrap();
    assert_eq!(store.len(), N);
    println!("{} bytes per remembered key", held / N);
    assert!(
        held <= N * Store::BYTES_PER_ENTRY,
        "{held} bytes for {N} keys: {} per key, bound {}",
        held / N,
        Store::BYTES_PER_ENTRY
    );
    // Full: a new key pushes out the oldest finished one, memory does not grow.
    for i in 0..N {
        let key = format!("more-{i}");
        if let Begin::Proceed(claim) = store.begin(&key, [7; 32], now) {
            claim.complete(accepted("id", &topic, Some(&ack)), now);
        }
    }
    assert_eq!(store.len(), N);
    let held = usize::try_from(HELD.load(Ordering::Relaxed) - before).unwrap();
    assert!(held <= N * Store::BYTES_PER_ENTRY, "{held} after turnover");
}
