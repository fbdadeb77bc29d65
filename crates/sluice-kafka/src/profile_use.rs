//! Which producer profiles the running configuration uses. A plugin instance that sends
//! with a profile of its own holds a [`ProfileUse`] for as long as it lives (requests in
//! progress hold the instance). A profile nobody holds any more (a reload changed the
//! route's timeout, or removed the route) has its producer retired by the watchdog:
//! taken out of the cluster, flushed and dropped, so reloads do not pile up producers.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};

use crate::producers::Profile;

/// Held by what sends with a profile; the profile's producer is kept while any is held.
#[derive(Debug, Clone)]
pub struct ProfileUse {
    profile: Profile,
    _held: Arc<()>,
}

impl ProfileUse {
    /// The profile.
    pub fn profile(&self) -> Profile {
        self.profile
    }
}

/// The profiles in use, by weak handles.
#[derive(Debug, Default)]
pub(crate) struct ProfileUses(Mutex<BTreeMap<Profile, Weak<()>>>);

impl ProfileUses {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Profile, Weak<()>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A use of `profile` (sharing the handle with its other users).
    pub(crate) fn take(&self, profile: Profile) -> ProfileUse {
        let mut uses = self.lock();
        let held = uses
            .get(&profile)
            .and_then(Weak::upgrade)
            .unwrap_or_else(|| {
                let held = Arc::new(());
                uses.insert(profile, Arc::downgrade(&held));
                held
            });
        ProfileUse {
            profile,
            _held: held,
        }
    }

    /// Whether anything holds a use of `profile`.
    pub(crate) fn used(&self, profile: &Profile) -> bool {
        self.lock()
            .get(profile)
            .is_some_and(|w| w.strong_count() > 0)
    }

    /// The profiles in use now (forgetting the others).
    pub(crate) fn in_use(&self) -> Vec<Profile> {
        let mut uses = self.lock();
        uses.retain(|_, w| w.strong_count() > 0);
        uses.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_profile_is_used_while_any_holder_lives() {
        let uses = ProfileUses::default();
        let p = Profile {
            delivery_timeout: Duration::from_secs(1),
            linger: Duration::ZERO,
        };
        assert!(!uses.used(&p));
        let a = uses.take(p);
        let b = uses.take(p);
        assert!(uses.used(&p));
        drop(a);
        assert!(uses.used(&p), "b still holds it");
        assert_eq!(uses.in_use(), vec![p]);
        drop(b);
        assert!(!uses.used(&p));
        assert!(uses.in_use().is_empty());
        assert_eq!(uses.take(p).profile(), p);
    }
}
