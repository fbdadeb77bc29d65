//! State a plugin keeps across reloads (a view, a reply table): the instance built for
//! one configuration finds the running state of the previous one by key, and reuses it
//! while it is still alive and compatible; it ends when no instance holds it any more.
//! [`OpenCounts`]: per-route counts of open connections that a reload does not reset.

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, Weak};

/// Running states by key.
pub struct Kept<K, V> {
    states: Mutex<Vec<(K, Weak<V>)>>,
}

impl<K: PartialEq, V> Kept<K, V> {
    /// An empty registry (for a `static`).
    pub const fn new() -> Self {
        Self {
            states: Mutex::new(Vec::new()),
        }
    }

    /// The running state for `key` if `fits` it, else a new one from `make`.
    pub fn get_or_start(
        &self,
        key: K,
        fits: impl Fn(&V) -> bool,
        make: impl FnOnce() -> V,
    ) -> Arc<V> {
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        states.retain(|(_, s)| s.strong_count() > 0);
        let kept = states
            .iter()
            .filter(|(k, _)| *k == key)
            .find_map(|(_, s)| s.upgrade())
            .filter(|s| fits(s));
        if let Some(s) = kept {
            return s;
        }
        let s = Arc::new(make());
        states.push((key, Arc::downgrade(&s)));
        s
    }
}

/// Open connections (or streams) per route, shared by the route's plugin instances
/// across reloads: a route's new instance counts on with the connections the previous
/// one still holds, so a reload does not lift a per-route cap. Each open connection
/// holds the count (an `Arc`), so it lives while any does.
pub struct OpenCounts(Kept<String, AtomicUsize>);

impl OpenCounts {
    /// An empty registry (for a `static`).
    pub const fn new() -> Self {
        Self(Kept::new())
    }

    /// The count of `route`.
    pub fn for_route(&self, route: &str) -> Arc<AtomicUsize> {
        self.0
            .get_or_start(route.to_string(), |_| true, || AtomicUsize::new(0))
    }
}

impl Default for OpenCounts {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: PartialEq, V> Default for Kept<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_is_reused_while_alive_and_fitting() {
        let kept: Kept<&str, u32> = Kept::new();
        let a = kept.get_or_start("r", |_| true, || 1);
        assert!(Arc::ptr_eq(&a, &kept.get_or_start("r", |_| true, || 2)));
        assert_eq!(*kept.get_or_start("r", |v| *v == 9, || 3), 3, "not fitting");
        drop(a);
        assert_eq!(*kept.get_or_start("s", |_| true, || 4), 4);
    }

    #[test]
    fn open_counts_are_shared_per_route_while_held() {
        use std::sync::atomic::Ordering;
        let counts = OpenCounts::new();
        let held = counts.for_route("ws");
        held.fetch_add(2, Ordering::AcqRel);
        assert_eq!(counts.for_route("ws").load(Ordering::Acquire), 2);
        assert_eq!(counts.for_route("other").load(Ordering::Acquire), 0);
        drop(held);
        assert_eq!(
            counts.for_route("ws").load(Ordering::Acquire),
            0,
            "none held it"
        );
    }
}
