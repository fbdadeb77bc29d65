//! State a plugin keeps across reloads (a view, a reply table): the instance built for
//! one configuration finds the running state of the previous one by key, and reuses it
//! while it is still alive and compatible; it ends when no instance holds it any more.

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
}
