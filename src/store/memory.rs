//! In-process store: records live in Rust memory, off the V8 heap, bounded by a number
//! of entries (least recently used goes first) and a size per record (G7). Each session
//! keeps its keys apart, so a request that reads or writes one key costs the same however
//! much else the session holds.

use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard};

use indexmap::IndexMap;
use lru::LruCache;
use serde_json::value::RawValue;

use crate::error::{Error, Result};
use crate::id::SessionId;
use crate::session::{check_max_bytes, json_key_len, write_key, Patch, Record, DEFAULT_MAX_BYTES};
use crate::store::{options, InlineStore, Loaded, LoadedKey, SessionStore};

pub const DEFAULT_MAX_ENTRIES: usize = 100_000;

/// The store's options as JavaScript names them.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    max_entries: Option<f64>,
    max_bytes: Option<f64>,
}

/// The store registered as "memory".
pub fn open(json: &str) -> Result<Box<dyn SessionStore>> {
    let config: Config = options::parse("memory", json)?;
    Ok(Box::new(MemoryStore::new(MemoryOptions {
        max_entries: options::count("maxEntries", config.max_entries, DEFAULT_MAX_ENTRIES)?,
        max_bytes: options::max_bytes(config.max_bytes)?,
    })?))
}

/// Below this many entries one shard keeps the LRU order exact; above it, shards let gc
/// lock a slice at a time and keep eviction close to global LRU.
const SHARDING_THRESHOLD: usize = 4096;
const SHARDS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MemoryOptions {
    pub max_entries: usize,
    pub max_bytes: usize,
}

impl Default for MemoryOptions {
    fn default() -> Self {
        MemoryOptions {
            max_entries: DEFAULT_MAX_ENTRIES,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

/// One session: its keys in the order JSON.stringify writes them (a new key goes last, a
/// changed one keeps its place), each value the exact JSON text it was written with.
#[derive(Clone)]
struct Entry {
    keys: IndexMap<Box<str>, Box<RawValue>, foldhash::fast::RandomState>,
    /// The length of the data as one JSON object text, kept as keys change.
    bytes: usize,
    expires_at_ms: i64,
    max_age_ms: i64,
}

impl Entry {
    fn new() -> Self {
        Entry {
            keys: IndexMap::default(),
            bytes: 2,
            expires_at_ms: 0,
            max_age_ms: 0,
        }
    }

    fn is_live(&self, now_ms: i64) -> bool {
        self.expires_at_ms > now_ms
    }

    /// As [`Record::needs_refresh`], refreshing when due; true when it did.
    fn refresh_if_due(&mut self, now_ms: i64, rate: f64) -> bool {
        let due =
            rate > 0.0 && ((self.expires_at_ms - now_ms) as f64) < rate * self.max_age_ms as f64;
        if due {
            self.expires_at_ms = now_ms.saturating_add(self.max_age_ms);
        }
        due
    }

    /// The data as JSON object text.
    fn data(&self) -> String {
        let mut out = String::with_capacity(self.bytes);
        out.push('{');
        for (i, (key, value)) in self.keys.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_key(&mut out, key);
            out.push(':');
            out.push_str(value.get());
        }
        out.push('}');
        out
    }

    fn record(&self) -> Record {
        Record {
            data: self.data(),
            expires_at_ms: self.expires_at_ms,
            max_age_ms: self.max_age_ms,
        }
    }

    /// Merges `patch` (G2) and moves the expiry, or changes nothing when the data would
    /// grow past `max_bytes` (G7). Costs what the patch touches, not what the session holds.
    fn apply(&mut self, patch: &Patch, now_ms: i64, max_bytes: usize) -> Result<()> {
        // The length of the data once the patch is in: members and the commas between them.
        let member = |key: &str, value: &RawValue| json_key_len(key) + 1 + value.get().len();
        let mut members = self.bytes - 2 - self.keys.len().saturating_sub(1);
        let mut count = self.keys.len();
        for name in patch.removes() {
            if let Some(value) = self.keys.get(name) {
                members -= member(name, value);
                count -= 1;
            }
        }
        for (name, value) in patch.set_values() {
            match self.keys.get(name) {
                Some(old) => members = members - old.get().len() + value.get().len(),
                None => {
                    members += member(name, value);
                    count += 1;
                }
            }
        }
        let bytes = 2 + members + count.saturating_sub(1);
        if bytes > max_bytes {
            return Err(Error::TooLarge {
                size: bytes,
                limit: max_bytes,
            });
        }
        for name in patch.removes() {
            self.keys.shift_remove(name);
        }
        for (name, value) in patch.set_values() {
            match self.keys.get_mut(name) {
                Some(old) => *old = value.to_owned(),
                None => {
                    self.keys.insert(name.into(), value.to_owned());
                }
            }
        }
        self.bytes = bytes;
        self.max_age_ms = patch.max_age_ms;
        self.expires_at_ms = now_ms.saturating_add(patch.max_age_ms);
        Ok(())
    }
}

pub struct MemoryStore {
    shards: Box<[Mutex<LruCache<SessionId, Entry>>]>,
    /// Seeded per store, so no one can pick ids that all land in one shard.
    shard_hasher: foldhash::fast::RandomState,
    entries_per_shard: usize,
    max_bytes: usize,
}

impl MemoryStore {
    pub fn new(options: MemoryOptions) -> Result<Self> {
        if options.max_entries == 0 {
            return Err(Error::InvalidOption {
                name: "maxEntries",
                reason: "must be at least 1".into(),
            });
        }
        check_max_bytes(options.max_bytes)?;
        let shards = if options.max_entries < SHARDING_THRESHOLD {
            1
        } else {
            SHARDS
        };
        Ok(MemoryStore {
            shards: (0..shards)
                .map(|_| Mutex::new(LruCache::unbounded()))
                .collect(),
            shard_hasher: foldhash::fast::RandomState::default(),
            entries_per_shard: options.max_entries / shards,
            max_bytes: options.max_bytes,
        })
    }

    fn shard_index(&self, id: &SessionId) -> usize {
        if self.shards.len() == 1 {
            0
        } else {
            self.shard_hasher.hash_one(id) as usize % self.shards.len()
        }
    }

    fn shard(&self, id: &SessionId) -> MutexGuard<'_, LruCache<SessionId, Entry>> {
        let index = self.shard_index(id);
        // A panic while holding the lock cannot leave a record half-written (an entry
        // changes only after every check has passed), so a poisoned lock is still safe.
        self.shards[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` on the live record of `id`; an expired one is dropped on the way (G6).
    fn with_live<T>(
        &self,
        id: &SessionId,
        now_ms: i64,
        f: impl FnOnce(&mut Entry) -> T,
    ) -> Option<T> {
        let mut shard = self.shard(id);
        match shard.get_mut(id) {
            Some(record) if record.is_live(now_ms) => Some(f(record)),
            Some(_) => {
                shard.pop(id);
                None
            }
            None => None,
        }
    }

    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl InlineStore for MemoryStore {
    fn load_now(&self, id: &SessionId, now_ms: i64) -> Result<Option<Record>> {
        Ok(self.with_live(id, now_ms, |entry| entry.record()))
    }

    /// Locks one shard at a time, so a request waits at most for one slice of the scan.
    fn gc_now(&self, now_ms: i64) -> Result<u64> {
        let mut removed = 0;
        for shard in self.shards.iter() {
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            let expired: Vec<SessionId> = shard
                .iter()
                .filter(|(_, record)| !record.is_live(now_ms))
                .map(|(id, _)| id.clone())
                .collect();
            for id in &expired {
                shard.pop(id);
            }
            removed += expired.len() as u64;
        }
        Ok(removed)
    }

    fn size(&self) -> Option<usize> {
        Some(self.len())
    }

    /// The live data, refreshing its expiry under the same lock when `auto_update_rate`
    /// says so.
    fn load_data_now(&self, id: &SessionId, now_ms: i64, rate: f64) -> Result<Option<Loaded>> {
        Ok(self.with_live(id, now_ms, |entry| Loaded {
            refreshed: entry.refresh_if_due(now_ms, rate),
            data: entry.data(),
        }))
    }

    /// One key of the live session, refreshing as `load_data_now` does.
    fn load_key_now(
        &self,
        id: &SessionId,
        name: &str,
        now_ms: i64,
        rate: f64,
    ) -> Result<Option<LoadedKey>> {
        Ok(self.with_live(id, now_ms, |entry| LoadedKey {
            refreshed: entry.refresh_if_due(now_ms, rate),
            value: entry.keys.get(name).map(|value| value.get().to_owned()),
        }))
    }

    fn apply_patch_now(&self, id: &SessionId, patch: &Patch, now_ms: i64) -> Result<()> {
        let mut shard = self.shard(id);
        if let Some(entry) = shard.get_mut(id) {
            if !entry.is_live(now_ms) {
                *entry = Entry::new();
            }
            return entry.apply(patch, now_ms, self.max_bytes);
        }
        let mut entry = Entry::new();
        entry.apply(patch, now_ms, self.max_bytes)?;
        shard.put(id.clone(), entry);
        while shard.len() > self.entries_per_shard {
            shard.pop_lru();
        }
        Ok(())
    }

    fn touch_now(&self, id: &SessionId, max_age_ms: i64, now_ms: i64) -> Result<bool> {
        crate::session::check_max_age(max_age_ms)?;
        Ok(self
            .with_live(id, now_ms, |entry| {
                entry.max_age_ms = max_age_ms;
                entry.expires_at_ms = now_ms.saturating_add(max_age_ms);
            })
            .is_some())
    }

    fn destroy_now(&self, id: &SessionId) -> Result<()> {
        self.shard(id).pop(id);
        Ok(())
    }

    /// Takes both shards' locks (in a fixed order) so no request sees the record under
    /// both ids or neither.
    fn rename_now(&self, from: &SessionId, to: &SessionId, now_ms: i64) -> Result<bool> {
        let (a, b) = (self.shard_index(from), self.shard_index(to));
        let lock = |i: usize| self.shards[i].lock().unwrap_or_else(|p| p.into_inner());
        let (mut source, mut target) = match a.cmp(&b) {
            std::cmp::Ordering::Equal => {
                let mut shard = lock(a);
                return Ok(match shard.pop(from) {
                    Some(record) if record.is_live(now_ms) => {
                        shard.put(to.clone(), record);
                        true
                    }
                    _ => false,
                });
            }
            std::cmp::Ordering::Less => {
                let source = lock(a);
                (source, lock(b))
            }
            std::cmp::Ordering::Greater => {
                let target = lock(b);
                (lock(a), target)
            }
        };
        Ok(match source.pop(from) {
            Some(record) if record.is_live(now_ms) => {
                target.put(to.clone(), record);
                while target.len() > self.entries_per_shard {
                    target.pop_lru();
                }
                true
            }
            _ => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: usize) -> SessionId {
        SessionId::parse(&format!("session-{n:08}")).unwrap()
    }

    fn set(store: &MemoryStore, n: usize, changes: &[(&str, &str)], now: i64) {
        let patch = Patch::of(changes, 1_000);
        store.apply_patch_now(&id(n), &patch, now).unwrap();
    }

    #[tokio::test]
    async fn meets_the_store_contract() {
        let store = MemoryStore::new(MemoryOptions::default()).unwrap();
        crate::store::conformance::check(&store).await;
        crate::store::conformance::check_gc(&store).await;
    }

    #[test]
    fn evicts_the_least_recently_used_past_max_entries() {
        let store = MemoryStore::new(MemoryOptions {
            max_entries: 3,
            max_bytes: 1024,
        })
        .unwrap();
        for n in 0..3 {
            set(&store, n, &[("a", "1")], 0);
        }
        assert!(store.load_now(&id(0), 1).unwrap().is_some()); // 0 is now the most recent
        set(&store, 3, &[("a", "1")], 0);
        assert_eq!(store.len(), 3);
        assert!(
            store.load_now(&id(1), 1).unwrap().is_none(),
            "1 was least recently used"
        );
        assert!(store.load_now(&id(0), 1).unwrap().is_some());
    }

    #[test]
    fn sharded_store_stays_within_max_entries() {
        let store = MemoryStore::new(MemoryOptions {
            max_entries: 8_000,
            max_bytes: 1024,
        })
        .unwrap();
        for n in 0..20_000 {
            set(&store, n, &[], 0);
        }
        assert!(store.len() <= 8_000);
        assert!(
            store.len() > 7_000,
            "shards should fill evenly: {}",
            store.len()
        );
    }

    #[test]
    fn too_large_changes_nothing() {
        let store = MemoryStore::new(MemoryOptions {
            max_entries: 10,
            max_bytes: 20,
        })
        .unwrap();
        set(&store, 1, &[("a", "1")], 0);
        let big = Patch::of(&[("b", r#""0123456789abcdef""#)], 1_000);
        let err = store.apply_patch_now(&id(1), &big, 0).unwrap_err();
        assert_eq!(err.code().as_str(), "ERR_SESSION_TOO_LARGE");
        assert_eq!(
            store.load_now(&id(1), 1).unwrap().unwrap().data,
            r#"{"a":1}"#
        );
    }

    #[test]
    fn load_data_refreshes_once_past_the_rate() {
        let store = MemoryStore::new(MemoryOptions::default()).unwrap();
        set(&store, 1, &[("a", "1")], 0); // expires at 1000
        let load = |now| {
            store
                .load_data_now(&id(1), now, 0.5)
                .unwrap()
                .map(|l| (l.data, l.refreshed))
        };
        assert_eq!(load(400), Some((r#"{"a":1}"#.into(), false)));
        assert_eq!(load(600), Some((r#"{"a":1}"#.into(), true)));
        assert_eq!(
            store
                .load_now(&id(1), 1_500)
                .unwrap()
                .unwrap()
                .expires_at_ms,
            1_600
        );
        assert_eq!(load(1_600), None, "expired");
    }

    #[test]
    fn keys_keep_their_place_and_the_size_stays_exact() {
        let store = MemoryStore::new(MemoryOptions::default()).unwrap();
        let steps: &[&[(&str, &str)]] = &[
            &[("a", "1"), ("b\"q\n", r#""x""#), ("c", "[1,2]")],
            &[("a", "null"), ("d", "{}")],
            &[("b\"q\n", "2.50"), ("a", "true")],
            &[
                ("c", "null"),
                ("d", "null"),
                ("b\"q\n", "null"),
                ("a", "null"),
            ],
            &[("e", "1e+21")],
        ];
        let expected = [
            r#"{"a":1,"b\"q\n":"x","c":[1,2]}"#,
            r#"{"b\"q\n":"x","c":[1,2],"d":{}}"#,
            r#"{"b\"q\n":2.50,"c":[1,2],"d":{},"a":true}"#,
            r#"{}"#,
            r#"{"e":1e+21}"#,
        ];
        for (changes, expected) in steps.iter().zip(expected) {
            set(&store, 1, changes, 0);
            let shard = store.shard(&id(1));
            let entry = shard.peek(&id(1)).unwrap();
            assert_eq!(entry.data(), expected);
            assert_eq!(entry.bytes, expected.len(), "{expected}");
        }
    }

    #[test]
    fn one_key_is_read_without_the_rest() {
        let store = MemoryStore::new(MemoryOptions::default()).unwrap();
        set(&store, 1, &[("a", "1"), ("big", r#""0123456789""#)], 0); // expires at 1000
        let key = |name, now| store.load_key_now(&id(1), name, now, 0.5).unwrap();
        let loaded = key("a", 100).unwrap();
        assert_eq!(
            (loaded.value.as_deref(), loaded.refreshed),
            (Some("1"), false)
        );
        assert_eq!(
            key("none", 100).unwrap().value,
            None,
            "a live session without the key"
        );
        assert!(key("a", 600).unwrap().refreshed);
        assert!(
            store.load_key_now(&id(2), "a", 100, 0.5).unwrap().is_none(),
            "no session"
        );
    }

    #[test]
    fn gc_removes_only_expired() {
        let store = MemoryStore::new(MemoryOptions::default()).unwrap();
        set(&store, 1, &[], 0); // expires at 1000
        set(&store, 2, &[], 5_000); // expires at 6000
        assert_eq!(store.gc_now(2_000).unwrap(), 1);
        assert_eq!(store.len(), 1);
        assert!(store.load_now(&id(2), 2_000).unwrap().is_some());
    }

    #[test]
    fn rejects_useless_bounds() {
        for options in [
            MemoryOptions {
                max_entries: 0,
                max_bytes: 10,
            },
            MemoryOptions {
                max_entries: 10,
                max_bytes: 0,
            },
        ] {
            let err = MemoryStore::new(options).err().unwrap();
            assert_eq!(err.code().as_str(), "ERR_SESSION_OPTIONS");
        }
    }

    #[test]
    fn concurrent_distinct_keys_all_survive() {
        let store = std::sync::Arc::new(MemoryStore::new(MemoryOptions::default()).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for k in 0..50 {
                        set(&store, 7, &[(&format!("t{t}k{k}"), &k.to_string())], 0);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let data: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&store.load_now(&id(7), 1).unwrap().unwrap().data).unwrap();
        assert_eq!(data.len(), 400);
    }
}
