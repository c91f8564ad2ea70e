//! In-process store: records live in Rust memory, off the V8 heap, bounded by a number
//! of entries (least recently used goes first) and a size per record (G7).

use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use lru::LruCache;

use crate::error::{Error, Result};
use crate::id::SessionId;
use crate::session::{check_max_bytes, Patch, Record};
use crate::store::SessionStore;

pub const DEFAULT_MAX_ENTRIES: usize = 100_000;
pub const DEFAULT_MAX_BYTES: usize = 1024 * 1024;

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

pub struct MemoryStore {
    shards: Box<[Mutex<LruCache<SessionId, Record>>]>,
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

    fn shard(&self, id: &SessionId) -> MutexGuard<'_, LruCache<SessionId, Record>> {
        let index = self.shard_index(id);
        // A panic while holding the lock cannot leave a record half-written (records are
        // replaced whole), so a poisoned lock is still safe to use.
        self.shards[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` on the live record of `id`; an expired one is dropped on the way (G6).
    fn with_live<T>(
        &self,
        id: &SessionId,
        now_ms: i64,
        f: impl FnOnce(&mut Record) -> T,
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

    pub fn load_now(&self, id: &SessionId, now_ms: i64) -> Option<Record> {
        self.with_live(id, now_ms, |record| record.clone())
    }

    /// Hands the data of the live record (JSON text) to `f`, refreshing its expiry under
    /// the same lock when `auto_update_rate` says so; the flag tells `f` whether it did.
    /// The text is lent, not copied: the caller turns it into what it needs in place.
    pub fn load_data<T>(
        &self,
        id: &SessionId,
        now_ms: i64,
        auto_update_rate: f64,
        f: impl FnOnce(&str, bool) -> T,
    ) -> Option<T> {
        self.with_live(id, now_ms, |record| {
            let refreshed = record.refresh_if_due(now_ms, auto_update_rate);
            f(&record.data, refreshed)
        })
    }

    pub fn apply_patch_now(&self, id: &SessionId, patch: &Patch, now_ms: i64) -> Result<()> {
        let mut shard = self.shard(id);
        if let Some(record) = shard.get_mut(id) {
            let current = Some(&*record).filter(|r| r.is_live(now_ms));
            *record = patch.apply_to(current, now_ms, self.max_bytes)?;
            return Ok(());
        }
        let record = patch.apply_to(None, now_ms, self.max_bytes)?;
        shard.put(id.clone(), record);
        while shard.len() > self.entries_per_shard {
            shard.pop_lru();
        }
        Ok(())
    }

    pub fn touch_now(&self, id: &SessionId, max_age_ms: i64, now_ms: i64) -> Result<bool> {
        self.with_live(id, now_ms, |record| record.extend(now_ms, max_age_ms))
            .transpose()
            .map(|touched| touched.is_some())
    }

    pub fn destroy_now(&self, id: &SessionId) {
        self.shard(id).pop(id);
    }

    /// Takes both shards' locks (in a fixed order) so no request sees the record under
    /// both ids or neither.
    pub fn rename_now(&self, from: &SessionId, to: &SessionId, now_ms: i64) -> bool {
        let (a, b) = (self.shard_index(from), self.shard_index(to));
        let lock = |i: usize| self.shards[i].lock().unwrap_or_else(|p| p.into_inner());
        let (mut source, mut target) = match a.cmp(&b) {
            std::cmp::Ordering::Equal => {
                let mut shard = lock(a);
                return match shard.pop(from) {
                    Some(record) if record.is_live(now_ms) => {
                        shard.put(to.clone(), record);
                        true
                    }
                    _ => false,
                };
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
        match source.pop(from) {
            Some(record) if record.is_live(now_ms) => {
                target.put(to.clone(), record);
                while target.len() > self.entries_per_shard {
                    target.pop_lru();
                }
                true
            }
            _ => false,
        }
    }

    /// Locks one shard at a time, so a request waits at most for one slice of the scan.
    pub fn gc_now(&self, now_ms: i64) -> u64 {
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
        removed
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

#[async_trait]
impl SessionStore for MemoryStore {
    async fn load(&self, id: &SessionId, now_ms: i64) -> Result<Option<Record>> {
        Ok(self.load_now(id, now_ms))
    }

    async fn apply_patch(&self, id: &SessionId, patch: &Patch, now_ms: i64) -> Result<()> {
        self.apply_patch_now(id, patch, now_ms)
    }

    async fn touch(&self, id: &SessionId, max_age_ms: i64, now_ms: i64) -> Result<bool> {
        self.touch_now(id, max_age_ms, now_ms)
    }

    async fn destroy(&self, id: &SessionId) -> Result<()> {
        self.destroy_now(id);
        Ok(())
    }

    async fn rename(&self, from: &SessionId, to: &SessionId, now_ms: i64) -> Result<bool> {
        Ok(self.rename_now(from, to, now_ms))
    }

    async fn gc(&self, now_ms: i64) -> Result<u64> {
        Ok(self.gc_now(now_ms))
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
        assert!(store.load_now(&id(0), 1).is_some()); // 0 is now the most recent
        set(&store, 3, &[("a", "1")], 0);
        assert_eq!(store.len(), 3);
        assert!(
            store.load_now(&id(1), 1).is_none(),
            "1 was least recently used"
        );
        assert!(store.load_now(&id(0), 1).is_some());
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
        assert_eq!(store.load_now(&id(1), 1).unwrap().data, r#"{"a":1}"#);
    }

    #[test]
    fn load_data_refreshes_once_past_the_rate() {
        let store = MemoryStore::new(MemoryOptions::default()).unwrap();
        set(&store, 1, &[("a", "1")], 0); // expires at 1000
        let load = |now| store.load_data(&id(1), now, 0.5, |d, r| (d.to_owned(), r));
        assert_eq!(load(400), Some((r#"{"a":1}"#.into(), false)));
        assert_eq!(load(600), Some((r#"{"a":1}"#.into(), true)));
        assert_eq!(store.load_now(&id(1), 1_500).unwrap().expires_at_ms, 1_600);
        assert_eq!(load(1_600), None, "expired");
    }

    #[test]
    fn gc_removes_only_expired() {
        let store = MemoryStore::new(MemoryOptions::default()).unwrap();
        set(&store, 1, &[], 0); // expires at 1000
        set(&store, 2, &[], 5_000); // expires at 6000
        assert_eq!(store.gc_now(2_000), 1);
        assert_eq!(store.len(), 1);
        assert!(store.load_now(&id(2), 2_000).is_some());
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
            serde_json::from_str(&store.load_now(&id(7), 1).unwrap().data).unwrap();
        assert_eq!(data.len(), 400);
    }
}
