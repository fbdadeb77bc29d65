use super::*;

const A: [u8; 32] = [1; 32];
const B: [u8; 32] = [2; 32];

fn ok(n: u8) -> HttpResponse {
    HttpResponse::new(202, "application/json", vec![n])
}

fn claim(b: Begin) -> Claim {
    match b {
        Begin::Proceed(c) => c,
        _ => panic!("expected Proceed"),
    }
}

#[test]
fn first_use_proceeds_then_replays_the_stored_response() {
    let s = Store::new(Duration::from_secs(60), 10);
    let t0 = Instant::now();
    let c = claim(s.begin("k", A, t0));
    assert!(
        matches!(s.begin("k", A, t0), Begin::InFlight),
        "in flight -> 409"
    );
    c.complete(ok(7), t0);
    match s.begin("k", A, t0 + Duration::from_secs(1)) {
        Begin::Replay(r) => assert_eq!(r, ok(7)),
        _ => panic!("expected a replay"),
    }
    assert!(
        matches!(s.begin("k", B, t0), Begin::Mismatch),
        "other payload -> 422"
    );
}

#[test]
fn mismatch_is_reported_while_in_flight_too() {
    let s = Store::new(Duration::from_secs(60), 10);
    let _c = claim(s.begin("k", A, Instant::now()));
    assert!(matches!(s.begin("k", B, Instant::now()), Begin::Mismatch));
}

#[test]
fn dropped_claims_free_the_key() {
    let s = Store::new(Duration::from_secs(60), 10);
    let t0 = Instant::now();
    drop(claim(s.begin("k", A, t0)));
    assert!(s.is_empty());
    let c = claim(s.begin("k", B, t0));
    c.complete(ok(1), t0);
    assert_eq!(s.len(), 1);
}

#[test]
fn entries_expire_after_ttl() {
    let s = Store::new(Duration::from_secs(10), 10);
    let t0 = Instant::now();
    claim(s.begin("k", A, t0)).complete(ok(1), t0);
    assert!(matches!(
        s.begin("k", A, t0 + Duration::from_secs(9)),
        Begin::Replay(_)
    ));
    // Expired: a new request with the key is processed again.
    let c = claim(s.begin("k", B, t0 + Duration::from_secs(10)));
    drop(c);
    assert!(s.is_empty());
}

#[test]
fn bounded_evicting_oldest_done_and_never_in_flight() {
    let s = Store::new(Duration::from_secs(600), 3);
    let t0 = Instant::now();
    for (i, k) in ["a", "b", "c"].iter().enumerate() {
        claim(s.begin(k, A, t0)).complete(ok(i as u8), t0 + Duration::from_secs(i as u64));
    }
    assert_eq!(s.len(), 3);
    // A fourth key evicts the oldest done one ("a").
    let d = claim(s.begin("d", A, t0));
    assert_eq!(s.len(), 3);
    assert!(
        matches!(s.begin("a", B, t0), Begin::Proceed(_)),
        "a was forgotten"
    );
    // Fill the store with in-flight keys: nothing can be evicted any more.
    let e = claim(s.begin("e", A, t0));
    let f = claim(s.begin("f", A, t0));
    assert!(matches!(s.begin("g", A, t0), Begin::Full));
    drop((d, e, f));
    assert!(matches!(s.begin("g", A, t0), Begin::Proceed(_)));
}

#[test]
fn a_stale_claim_does_not_touch_a_newer_entry() {
    let s = Store::new(Duration::from_secs(1), 1);
    let t0 = Instant::now();
    let old = claim(s.begin("k", A, t0));
    // Simulate the old claim outliving its entry: complete it, let it expire, reuse key.
    old.complete(ok(1), t0);
    let later = t0 + Duration::from_secs(2);
    let new = claim(s.begin("k", B, later));
    assert!(matches!(s.begin("k", B, later), Begin::InFlight));
    new.complete(ok(2), later);
    match s.begin("k", B, later) {
        Begin::Replay(r) => assert_eq!(r, ok(2)),
        _ => panic!("expected the newer response"),
    }
}
