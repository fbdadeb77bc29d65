//! The materialized view: the latest record per key of the topic, in key order (for
//! prefix lists and pages), bounded in bytes. A tombstone (a record without a value)
//! removes its key. A record that does not fit is not kept: its key is remembered as
//! *dropped* (its reads get `507`), and once anything was dropped the view can no longer
//! say a key does not exist, so misses and lists get `507` too. Nothing is served as if
//! it were current when it may not be.

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;

/// Bookkeeping counted per entry besides its key and value.
pub const ENTRY_OVERHEAD: usize = 96;

/// Keys and values of one list page, about at most (a page ends after the item that
/// crosses it).
pub const MAX_PAGE_BYTES: usize = 1 << 20;

/// One kept record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The value (`None`: dropped for lack of room).
    pub value: Option<Bytes>,
    /// Its `content-type` header, if any.
    pub content_type: Option<String>,
    /// Where it is in the topic (the ETag).
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its timestamp (ms), to order records of one key found in two partitions.
    pub timestamp: i64,
}

impl Item {
    /// The entity tag: the record's position.
    pub fn etag(&self) -> String {
        format!("\"{}-{}\"", self.partition, self.offset)
    }
}

/// What a read finds.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// The item.
    Found(&'a Item),
    /// No such key (or it was deleted).
    Missing,
    /// The view cannot answer: the value (or, for a miss, possibly the key) was not kept.
    OverCapacity,
}

/// A list page: the items, and whether more follow.
pub type Page<'a> = (Vec<(&'a [u8], &'a Item)>, bool);

/// The view.
#[derive(Debug)]
pub struct View {
    items: BTreeMap<Vec<u8>, Item>,
    bytes: usize,
    max_bytes: usize,
    dropped: u64,
    /// Keys held without their value (answer `507`).
    placeholders: usize,
    /// Keys not even held: from then on a miss may be wrong, so misses answer `507`.
    unknown: bool,
}

fn cost(key: &[u8], value: Option<&Bytes>, content_type: Option<&String>) -> usize {
    key.len() + value.map_or(0, Bytes::len) + content_type.map_or(0, String::len) + ENTRY_OVERHEAD
}

impl View {
    /// An empty view of at most `max_bytes`.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            items: BTreeMap::new(),
            bytes: 0,
            max_bytes,
            dropped: 0,
            placeholders: 0,
            unknown: false,
        }
    }

    /// Apply a record: a value sets the key, `None` (a tombstone) removes it. A record
    /// older (by timestamp) than the one held from another partition is ignored (a key
    /// found in two partitions after partitions were added). Returns false when the value
    /// could not be kept.
    pub fn apply(
        &mut self,
        key: &[u8],
        value: Option<Bytes>,
        content_type: Option<String>,
        partition: i32,
        offset: i64,
        timestamp: i64,
    ) -> bool {
        if let Some(old) = self.items.get(key) {
            if old.partition != partition && old.timestamp > timestamp {
                return true;
            }
        }
        if let Some(old) = self.items.remove(key) {
            self.bytes -= cost(key, old.value.as_ref(), old.content_type.as_ref());
            if old.value.is_none() {
                self.placeholders -= 1;
            }
        }
        let Some(value) = value else {
            return true;
        };
        let fits = self.bytes + cost(key, Some(&value), content_type.as_ref()) <= self.max_bytes;
        let kept = fits.then_some(value);
        let content_type = if fits { content_type } else { None };
        if kept.is_none() {
            self.dropped += 1;
            if self.bytes + cost(key, None, None) > self.max_bytes {
                // Not even the key fits: it is unknown, so misses answer 507 from now on.
                self.unknown = true;
                return false;
            }
            self.placeholders += 1;
        }
        self.bytes += cost(key, kept.as_ref(), content_type.as_ref());
        let stored = kept.is_some();
        self.items.insert(
            key.to_vec(),
            Item {
                value: kept,
                content_type,
                partition,
                offset,
                timestamp,
            },
        );
        stored
    }

    /// The item at `key`.
    pub fn get(&self, key: &[u8]) -> Lookup<'_> {
        match self.items.get(key) {
            Some(i) if i.value.is_some() => Lookup::Found(i),
            Some(_) => Lookup::OverCapacity,
            None if self.unknown => Lookup::OverCapacity,
            None => Lookup::Missing,
        }
    }

    /// Up to `limit` items (and about `max_page_bytes` of values) whose key starts with
    /// `prefix`, after key `after`; and whether more follow. `None` when the view cannot
    /// list completely.
    pub fn list(&self, prefix: &[u8], after: Option<&[u8]>, limit: usize) -> Option<Page<'_>> {
        if self.unknown || self.placeholders > 0 {
            return None;
        }
        let start = match after {
            Some(a) if a >= prefix => Bound::Excluded(a.to_vec()),
            _ => Bound::Included(prefix.to_vec()),
        };
        let mut out = Vec::new();
        let mut more = false;
        let mut size = 0;
        for (k, v) in self.items.range((start, Bound::Unbounded)) {
            if !k.starts_with(prefix) {
                break;
            }
            if out.len() == limit || (size >= MAX_PAGE_BYTES && !out.is_empty()) {
                more = true;
                break;
            }
            size += k.len() + v.value.as_ref().map_or(0, Bytes::len);
            out.push((k.as_slice(), v));
        }
        Some((out, more))
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Bytes counted.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Records not kept for lack of room, since start.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(v: &mut View, k: &str, val: Option<&str>, off: i64) -> bool {
        v.apply(
            k.as_bytes(),
            val.map(|s| Bytes::from(s.to_string())),
            None,
            0,
            off,
            off,
        )
    }

    #[test]
    fn latest_value_wins_and_tombstones_delete() {
        let mut v = View::new(1 << 20);
        put(&mut v, "a", Some("1"), 0);
        put(&mut v, "a", Some("2"), 1);
        put(&mut v, "b", Some("x"), 2);
        match v.get(b"a") {
            Lookup::Found(i) => assert_eq!(
                (i.value.as_deref(), i.etag()),
                (Some(&b"2"[..]), "\"0-1\"".to_string())
            ),
            other => panic!("{other:?}"),
        }
        put(&mut v, "a", None, 3);
        assert_eq!(v.get(b"a"), Lookup::Missing);
        assert_eq!(v.len(), 1);
        assert_eq!(v.bytes(), 1 + 1 + ENTRY_OVERHEAD);
    }

    #[test]
    fn lists_by_prefix_in_pages() {
        let mut v = View::new(1 << 20);
        for k in ["user:1", "user:2", "user:3", "order:1", "users"] {
            put(&mut v, k, Some("v"), 0);
        }
        let (page, more) = v.list(b"user:", None, 2).unwrap();
        let keys: Vec<&[u8]> = page.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, [&b"user:1"[..], b"user:2"]);
        assert!(more);
        let (page, more) = v.list(b"user:", Some(b"user:2"), 2).unwrap();
        assert_eq!(page.len(), 1);
        assert!(!more);
        assert_eq!(v.list(b"", None, 10).unwrap().0.len(), 5);
    }

    #[test]
    fn what_does_not_fit_is_never_served_as_current() {
        let mut v = View::new(2 * (ENTRY_OVERHEAD + 4));
        assert!(put(&mut v, "a", Some("12"), 0));
        assert!(put(&mut v, "b", Some("12"), 1));
        // An update that does not fit: the old value goes, the key answers 507.
        assert!(!put(&mut v, "a", Some("123456"), 2));
        assert_eq!(v.get(b"a"), Lookup::OverCapacity);
        // Every key is still known: a miss is a real miss; a list would lack `a`.
        assert_eq!(v.get(b"zzz"), Lookup::Missing);
        assert!(v.list(b"", None, 10).is_none());
        // Freed room: a tombstone for `a` ends its placeholder; lists work again.
        assert!(put(&mut v, "a", None, 3));
        assert!(v.list(b"", None, 10).is_some());
        // A key that cannot even be held: misses can no longer be trusted.
        let mut tiny = View::new(ENTRY_OVERHEAD + 4);
        assert!(put(&mut tiny, "k", Some("1"), 0));
        assert!(!put(&mut tiny, "other-key", Some("1"), 1));
        assert_eq!(tiny.get(b"zzz"), Lookup::OverCapacity);
        assert!(v.bytes() <= 2 * (ENTRY_OVERHEAD + 4));
        // A million distinct keys stay within the bound.
        let mut big = View::new(1 << 20);
        for i in 0..1_000_000 {
            put(&mut big, &format!("key-{i}"), Some("value"), i);
        }
        assert!(big.bytes() <= 1 << 20);
        assert!(big.len() < 10_000);
        assert!(big.dropped() > 990_000);
    }

    #[test]
    fn a_key_in_two_partitions_keeps_the_newer_record() {
        let mut v = View::new(1 << 20);
        v.apply(b"k", Some(Bytes::from_static(b"new")), None, 1, 0, 200);
        v.apply(b"k", Some(Bytes::from_static(b"old")), None, 0, 5, 100);
        match v.get(b"k") {
            Lookup::Found(i) => assert_eq!(i.value.as_deref(), Some(&b"new"[..])),
            other => panic!("{other:?}"),
        }
    }
}
