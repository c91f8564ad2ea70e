//! Shared-memory store: the memory store of an app whose workers are several processes.
//! Sessions live in an LMDB environment on tmpfs (`/dev/shm`), mapped by every worker of
//! the app, so a write is seen by every worker before it resolves and nothing is on any V8
//! heap. LMDB serializes writers across processes with a robust mutex and commits by
//! switching one page pointer, so a worker killed mid-write (SIGKILL included) leaves the
//! last committed state and the others go on. Reads take no lock.
//!
//! Two tables: `sessions` (id -> record) and `by_use` (last write time and id -> nothing),
//! which orders sessions for eviction: past `maxEntries` the session written longest ago
//! goes first. Reads do not reorder (that would make every read a write), so the order is
//! least recently written or refreshed (to within a second), close to least recently used
//! for sessions, which are written on most requests that use them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex};

use heed::types::Bytes;
use heed::{Database, Env, EnvFlags, EnvOpenOptions, RoTxn, RwTxn, WithoutTls};

use crate::error::{Error, Result};
use crate::id::SessionId;
use crate::session::{check_max_bytes, member, Patch, Record};
use crate::store::private::PrivateFolders;
use crate::store::{key_of, options, InlineStore, Loaded, LoadedKey, SessionStore};

pub const DEFAULT_MAX_ENTRIES: usize = 100_000;
/// The most the environment may grow to. Pages are used as sessions need them; tmpfs
/// holds only what is written.
pub const DEFAULT_MAP_BYTES: usize = 1 << 30;
/// LMDB's page on the platforms Node runs on.
const PAGE: usize = 4096;
/// How far the eviction order may lag behind the last writes, in ms.
const REORDER_MS: i64 = 1000;
/// Records removed per gc transaction, so writers wait on one batch at most.
const GC_BATCH: usize = 1000;

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Config {
    /// The folder of the environment; every worker of the app names the same one.
    path: PathBuf,
    max_entries: Option<f64>,
    max_bytes: Option<f64>,
    /// The most bytes the environment may hold.
    map_bytes: Option<f64>,
    trust_folder: Option<bool>,
}

/// The store registered as "shared".
pub fn open(json: &str) -> Result<Box<dyn SessionStore>> {
    let config: Config = options::parse("shared", json)?;
    Ok(Box::new(SharedStore::open(SharedOptions {
        path: config.path,
        max_entries: options::count("maxEntries", config.max_entries, DEFAULT_MAX_ENTRIES)?,
        max_bytes: options::max_bytes(config.max_bytes)?,
        // LMDB takes whole pages.
        map_bytes: options::count("mapBytes", config.map_bytes, DEFAULT_MAP_BYTES)?
            .next_multiple_of(PAGE),
        trust_folder: config.trust_folder.unwrap_or(false),
    })?))
}

#[derive(Debug, Clone)]
pub struct SharedOptions {
    pub path: PathBuf,
    pub max_entries: usize,
    pub max_bytes: usize,
    pub map_bytes: usize,
    pub trust_folder: bool,
}

struct Tables {
    env: Env<WithoutTls>,
    sessions: Database<Bytes, Bytes>,
    by_use: Database<Bytes, Bytes>,
}

/// LMDB opens a folder once per process: stores with other options on the same folder
/// share its environment.
static OPENED: LazyLock<Mutex<HashMap<PathBuf, Arc<Tables>>>> = LazyLock::new(Default::default);

pub struct SharedStore {
    tables: Arc<Tables>,
    path: PathBuf,
    max_entries: usize,
    max_bytes: usize,
}

/// A record as stored: expiry, lifetime and last write time (ms, little-endian), then the
/// data's JSON text.
const HEADER: usize = 24;

fn encode(record: &Record, used_ms: i64) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER + record.data.len());
    bytes.extend_from_slice(&record.expires_at_ms.to_le_bytes());
    bytes.extend_from_slice(&record.max_age_ms.to_le_bytes());
    bytes.extend_from_slice(&used_ms.to_le_bytes());
    bytes.extend_from_slice(record.data.as_bytes());
    bytes
}

/// A stored record read where it lies in the map, copying nothing.
struct Stored<'a> {
    /// Expiry and lifetime, with the data left empty (an empty String does not allocate),
    /// so `Record`'s rules answer for them.
    header: Record,
    data: &'a str,
    /// The last write time: the record's place in `by_use`.
    used_ms: i64,
}

impl Stored<'_> {
    /// The record with its data copied out of the map.
    fn into_record(self) -> Record {
        Record {
            data: self.data.to_owned(),
            ..self.header
        }
    }
}

/// The record in `bytes`, or none for bytes this store did not write.
fn decode(bytes: &[u8]) -> Option<Stored<'_>> {
    let number = |i: usize| Some(i64::from_le_bytes(bytes.get(i..i + 8)?.try_into().ok()?));
    Some(Stored {
        header: Record {
            expires_at_ms: number(0)?,
            max_age_ms: number(8)?,
            data: String::new(),
        },
        data: std::str::from_utf8(bytes.get(HEADER..)?).ok()?,
        used_ms: number(16)?,
    })
}

/// What an id holds as a transaction finds it.
struct Found {
    /// The record, when it is live.
    live: Option<Record>,
    /// The last write time of the stored record, live or expired, which `put` needs to
    /// move it in the eviction order; none when the id holds nothing this store wrote.
    used_ms: Option<i64>,
}

/// The `by_use` key: the last write time, big-endian so keys sort by it, then the id.
fn use_key(used_ms: i64, id: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + id.len());
    key.extend_from_slice(&(used_ms.max(0) as u64).to_be_bytes());
    key.extend_from_slice(id);
    key
}

impl SharedStore {
    pub fn open(options: SharedOptions) -> Result<Self> {
        check_max_bytes(options.max_bytes)?;
        if options.max_entries == 0 {
            return Err(Error::InvalidOption {
                name: "maxEntries",
                reason: "must be at least 1".into(),
            });
        }
        if options.max_bytes > options.map_bytes / 4 {
            return Err(Error::InvalidOption {
                name: "maxBytes",
                reason: format!(
                    "{} is more than a quarter of the shared map ({} bytes, `mapBytes`)",
                    options.max_bytes, options.map_bytes
                ),
            });
        }
        PrivateFolders::sessions(options.trust_folder)
            .ensure(&options.path, true)
            .map_err(|reason| Error::InvalidOption {
                name: "path",
                reason,
            })?;
        // One environment per folder however it is named (LMDB refuses a second open).
        let folder = options
            .path
            .canonicalize()
            .map_err(|e| Error::InvalidOption {
                name: "path",
                reason: format!("{}: {e}", options.path.display()),
            })?;
        let tables = {
            let mut opened = OPENED.lock().unwrap_or_else(|p| p.into_inner());
            match opened.get(&folder) {
                Some(tables) => tables.clone(),
                None => {
                    let tables = Arc::new(Self::open_tables(&options)?);
                    opened.insert(folder, tables.clone());
                    tables
                }
            }
        };
        Ok(SharedStore {
            tables,
            path: options.path,
            max_entries: options.max_entries,
            max_bytes: options.max_bytes,
        })
    }

    fn open_tables(options: &SharedOptions) -> Result<Tables> {
        let failed = |e: heed::Error| {
            Error::store(
                "shared",
                format!(
                    "{}: {e} (a store file of another version or a damaged one is left as it \
                     is; stop the app's workers and remove the folder to start empty)",
                    options.path.display()
                ),
            )
        };
        let mut builder = EnvOpenOptions::new().read_txn_without_tls();
        builder
            .map_size(options.map_bytes)
            .max_dbs(2)
            .max_readers(1024);
        // tmpfs is memory: syncing it only costs, and a commit is in the shared pages at
        // once. Not WRITE_MAP, though it halves a write's cost (9.7 -> 5.2 us per adapter
        // cycle): LMDB then sizes the file to the whole map, and a tmpfs smaller than the map
        // (Docker's /dev/shm is 64 MiB) kills the worker with SIGBUS when it fills, where
        // writes through the file fail with an error.
        // SAFETY: the flags only drop fsync calls; the commit stays atomic.
        unsafe {
            builder.flags(EnvFlags::NO_SYNC | EnvFlags::NO_META_SYNC | EnvFlags::NO_READ_AHEAD)
        };
        // SAFETY: every process maps the environment with these same options, and this
        // process opens it once (OPENED).
        let env = unsafe { builder.open(&options.path) }.map_err(failed)?;
        // Reader slots of workers that were killed are given back.
        env.clear_stale_readers().map_err(failed)?;
        let mut txn = env.write_txn().map_err(failed)?;
        let sessions = env
            .create_database(&mut txn, Some("sessions"))
            .map_err(failed)?;
        let by_use = env
            .create_database(&mut txn, Some("by_use"))
            .map_err(failed)?;
        txn.commit().map_err(failed)?;
        Ok(Tables {
            env,
            sessions,
            by_use,
        })
    }

    fn failure(&self, e: heed::Error) -> Error {
        let hint = match e {
            heed::Error::Mdb(heed::MdbError::MapFull) => {
                " (the shared map is full: raise `mapBytes`, or lower `maxEntries`)"
            }
            _ => "",
        };
        Error::store("shared", format!("{}: {e}{hint}", self.path.display()))
    }

    fn read<T>(&self, f: impl FnOnce(&RoTxn<WithoutTls>) -> heed::Result<T>) -> Result<T> {
        let txn = self.tables.env.read_txn().map_err(|e| self.failure(e))?;
        f(&txn).map_err(|e| self.failure(e))
    }

    /// Runs `f` in a write transaction, committed when `f` succeeds.
    fn write<T>(&self, f: impl FnOnce(&mut RwTxn) -> Result<T>) -> Result<T> {
        let mut txn = self.tables.env.write_txn().map_err(|e| self.failure(e))?;
        let result = f(&mut txn)?;
        txn.commit().map_err(|e| self.failure(e))?;
        Ok(result)
    }

    /// The record stored under `key`, read in place.
    fn stored<'t>(&self, txn: &'t RoTxn, key: &[u8]) -> Result<Option<Stored<'t>>> {
        let bytes = self
            .tables
            .sessions
            .get(txn, key)
            .map_err(|e| self.failure(e))?;
        Ok(bytes.and_then(decode))
    }

    /// The last write time of the record stored under `key`, live or expired.
    fn used_ms(&self, txn: &RoTxn, key: &[u8]) -> Result<Option<i64>> {
        Ok(self.stored(txn, key)?.map(|stored| stored.used_ms))
    }

    /// What `id` holds, in one lookup.
    fn find(&self, txn: &RoTxn, id: &SessionId, now_ms: i64) -> Result<Found> {
        let stored = self.stored(txn, id.as_str().as_bytes())?;
        Ok(Found {
            used_ms: stored.as_ref().map(|stored| stored.used_ms),
            live: stored
                .filter(|stored| stored.header.is_live(now_ms))
                .map(Stored::into_record),
        })
    }

    /// Stores `record` under `id` as written at `now_ms` and, when that adds a session,
    /// evicts the sessions written longest ago past `maxEntries`. `previous_used_ms` is
    /// `Found::used_ms` of `id` as read in this transaction, so the record is looked up
    /// once per call. A session's place in the eviction order moves only when it is over
    /// `REORDER_MS` old, so most writes change one table, not two (a write costs copies of
    /// the pages it changes).
    fn put(
        &self,
        txn: &mut RwTxn,
        id: &SessionId,
        record: &Record,
        previous_used_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<()> {
        let key = id.as_str().as_bytes();
        let t = &self.tables;
        let failed = |e| self.failure(e);
        let used = match previous_used_ms {
            Some(used) if (0..REORDER_MS).contains(&now_ms.saturating_sub(used)) => used,
            _ => {
                if let Some(used) = previous_used_ms {
                    t.by_use.delete(txn, &use_key(used, key)).map_err(failed)?;
                }
                t.by_use
                    .put(txn, &use_key(now_ms, key), &[])
                    .map_err(failed)?;
                now_ms
            }
        };
        t.sessions
            .put(txn, key, &encode(record, used))
            .map_err(failed)?;
        let mut own = None;
        while previous_used_ms.is_none()
            && t.sessions.len(txn).map_err(failed)? > self.max_entries as u64
        {
            let Some((oldest, _)) = t.by_use.first(txn).map_err(failed)? else {
                break;
            };
            let oldest = oldest.to_vec();
            // The order entry goes whatever it points at, so the loop always ends.
            t.by_use.delete(txn, &oldest).map_err(failed)?;
            let (stamp, oldest_id) = oldest.split_at(8.min(oldest.len()));
            let stamp = i64::from_be_bytes(stamp.try_into().unwrap_or_default());
            if oldest_id == key {
                // the clock stepped back: the session just written stays (put back below)
                own = Some(oldest);
                continue;
            }
            match self.used_ms(txn, oldest_id)? {
                // a stale entry: the session is ordered by a newer one
                Some(used) if used.max(0) != stamp => {}
                _ => {
                    t.sessions.delete(txn, oldest_id).map_err(failed)?;
                }
            }
        }
        if let Some(own) = own {
            t.by_use.put(txn, &own, &[]).map_err(failed)?;
        }
        Ok(())
    }

    /// Removes the session stored under `key`, with its place in the eviction order.
    fn remove(&self, txn: &mut RwTxn, key: &[u8]) -> Result<bool> {
        let t = &self.tables;
        let failed = |e| self.failure(e);
        let Some(used) = t
            .sessions
            .get(txn, key)
            .map_err(failed)?
            .map(|b| decode(b).map(|stored| stored.used_ms))
        else {
            return Ok(false);
        };
        if let Some(used) = used {
            t.by_use.delete(txn, &use_key(used, key)).map_err(failed)?;
        }
        t.sessions.delete(txn, key).map_err(failed)
    }

    /// Removes up to a batch of expired sessions; how many went.
    fn gc_batch(&self, now_ms: i64) -> Result<usize> {
        let expired: Vec<Vec<u8>> = self.read(|txn| {
            let mut expired = Vec::new();
            for entry in self.tables.sessions.iter(txn)? {
                let (key, bytes) = entry?;
                if decode(bytes).is_none_or(|stored| !stored.header.is_live(now_ms)) {
                    expired.push(key.to_vec());
                    if expired.len() == GC_BATCH {
                        break;
                    }
                }
            }
            Ok(expired)
        })?;
        if expired.is_empty() {
            return Ok(0);
        }
        self.write(|txn| {
            let mut removed = 0;
            for key in &expired {
                // checked again: a write may have made it live meanwhile
                let still = self
                    .tables
                    .sessions
                    .get(txn, key)
                    .map_err(|e| self.failure(e))?;
                if still
                    .and_then(decode)
                    .is_none_or(|stored| !stored.header.is_live(now_ms))
                    && self.remove(txn, key)?
                {
                    removed += 1;
                }
            }
            Ok(removed)
        })
    }

    fn len(&self) -> Result<u64> {
        self.read(|txn| self.tables.sessions.len(txn))
    }
}

impl InlineStore for SharedStore {
    fn load_now(&self, id: &SessionId, now_ms: i64) -> Result<Option<Record>> {
        self.read_live(id, now_ms)
    }

    /// A batch per write transaction, until a batch finds nothing; reader slots of killed
    /// workers are given back on the way.
    fn gc_now(&self, now_ms: i64) -> Result<u64> {
        let _ = self.tables.env.clear_stale_readers();
        let mut removed = 0;
        loop {
            let batch = self.gc_batch(now_ms)?;
            removed += batch as u64;
            if batch < GC_BATCH {
                return Ok(removed);
            }
        }
    }

    fn size(&self) -> Option<usize> {
        self.len().ok().map(|n| n as usize)
    }

    fn load_data_now(&self, id: &SessionId, now_ms: i64, rate: f64) -> Result<Option<Loaded>> {
        let Some(record) = self.read_live(id, now_ms)? else {
            return Ok(None);
        };
        if !record.needs_refresh(now_ms, rate) {
            return Ok(Some(Loaded {
                data: record.data,
                refreshed: false,
            }));
        }
        self.refresh(id, now_ms, rate)
    }

    /// The key's value is found in the map and copied alone; a read that refreshes copies
    /// the whole record, as the write needs it.
    fn load_key_now(
        &self,
        id: &SessionId,
        name: &str,
        now_ms: i64,
        rate: f64,
    ) -> Result<Option<LoadedKey>> {
        // A block, so the read ends before a refresh writes.
        {
            let txn = self.tables.env.read_txn().map_err(|e| self.failure(e))?;
            let Some(stored) = self
                .stored(&txn, id.as_str().as_bytes())?
                .filter(|stored| stored.header.is_live(now_ms))
            else {
                return Ok(None);
            };
            if !stored.header.needs_refresh(now_ms, rate) {
                return Ok(Some(LoadedKey {
                    value: member(stored.data, name)?,
                    refreshed: false,
                }));
            }
        }
        key_of(self.refresh(id, now_ms, rate)?, name)
    }

    fn apply_patch_now(&self, id: &SessionId, patch: &Patch, now_ms: i64) -> Result<()> {
        self.write(|txn| {
            let found = self.find(txn, id, now_ms)?;
            let record = patch.apply_to(found.live.as_ref(), now_ms, self.max_bytes)?;
            self.put(txn, id, &record, found.used_ms, now_ms)
        })
    }

    fn touch_now(&self, id: &SessionId, max_age_ms: i64, now_ms: i64) -> Result<bool> {
        crate::session::check_max_age(max_age_ms)?;
        self.write(|txn| {
            let Found {
                live: Some(mut record),
                used_ms,
            } = self.find(txn, id, now_ms)?
            else {
                return Ok(false);
            };
            record.extend(now_ms, max_age_ms)?;
            self.put(txn, id, &record, used_ms, now_ms)?;
            Ok(true)
        })
    }

    fn destroy_now(&self, id: &SessionId) -> Result<()> {
        self.write(|txn| self.remove(txn, id.as_str().as_bytes()).map(|_| ()))
    }

    fn rename_now(&self, from: &SessionId, to: &SessionId, now_ms: i64) -> Result<bool> {
        self.write(|txn| {
            let Some(record) = self.find(txn, from, now_ms)?.live else {
                return Ok(false);
            };
            self.remove(txn, from.as_str().as_bytes())?;
            let used_ms = self.used_ms(txn, to.as_str().as_bytes())?;
            self.put(txn, to, &record, used_ms, now_ms)?;
            Ok(true)
        })
    }
}

impl SharedStore {
    fn read_live(&self, id: &SessionId, now_ms: i64) -> Result<Option<Record>> {
        let txn = self.tables.env.read_txn().map_err(|e| self.failure(e))?;
        Ok(self.find(&txn, id, now_ms)?.live)
    }

    /// Refreshes the live record of `id` when `rate` says so, judged again under the
    /// write lock (another worker may have refreshed it since it was read).
    fn refresh(&self, id: &SessionId, now_ms: i64, rate: f64) -> Result<Option<Loaded>> {
        self.write(|txn| {
            let Found {
                live: Some(mut record),
                used_ms,
            } = self.find(txn, id, now_ms)?
            else {
                return Ok(None);
            };
            let refreshed = record.refresh_if_due(now_ms, rate);
            if refreshed {
                self.put(txn, id, &record, used_ms, now_ms)?;
            }
            Ok(Some(Loaded {
                data: record.data,
                refreshed,
            }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::path::Path;

    fn store(dir: &Path, max_entries: usize) -> SharedStore {
        SharedStore::open(SharedOptions {
            path: dir.join("shared"),
            max_entries,
            max_bytes: 200,
            map_bytes: 16 << 20,
            trust_folder: false,
        })
        .unwrap()
    }

    fn id(n: usize) -> SessionId {
        SessionId::parse(&format!("shared-{n:08}")).unwrap()
    }

    #[tokio::test]
    async fn meets_the_store_contract() {
        let dir = tempfile::tempdir().unwrap();
        crate::store::conformance::check(&store(dir.path(), 1000)).await;
        let dir = tempfile::tempdir().unwrap();
        crate::store::conformance::check_gc(&store(dir.path(), 1000)).await;
    }

    #[test]
    fn evicts_the_session_written_longest_ago() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), 3);
        let write = |n, at| {
            s.apply_patch_now(&id(n), &Patch::of(&[("n", "1")], 60_000), at)
                .unwrap()
        };
        for n in 0..3 {
            write(n, n as i64 * 2_000);
        }
        write(2, 4_500); // within a second of its last write: its place stays
        write(0, 10_000); // 0 is written again: 1 is now the oldest
        write(3, 11_000);
        assert_eq!(s.len().unwrap(), 3);
        assert!(s.load_data_now(&id(1), 12_000, 0.0).unwrap().is_none());
        for n in [0, 2, 3] {
            assert!(
                s.load_data_now(&id(n), 12_000, 0.0).unwrap().is_some(),
                "{n}"
            );
        }
    }

    #[test]
    fn eviction_skips_stale_order_entries_and_never_the_session_just_written() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), 2);
        // order entries that point at nothing, or at a session ordered elsewhere
        let t = &s.tables;
        let mut txn = t.env.write_txn().unwrap();
        t.by_use
            .put(&mut txn, &use_key(0, b"gone-session"), &[])
            .unwrap();
        txn.commit().unwrap();
        for n in 0..4 {
            s.apply_patch_now(
                &id(n),
                &Patch::of(&[("n", "1")], 60_000),
                10_000 + n as i64 * 2_000,
            )
            .unwrap();
        }
        assert_eq!(s.len().unwrap(), 2);
        assert!(s.load_data_now(&id(3), 17_000, 0.0).unwrap().is_some());
        // the clock steps back: the new session is the oldest, and stays; the next goes
        s.apply_patch_now(&id(9), &Patch::of(&[("n", "1")], 60_000), 1_000)
            .unwrap();
        assert_eq!(s.len().unwrap(), 2);
        assert!(s.load_data_now(&id(9), 1_000, 0.0).unwrap().is_some());
        assert!(s.load_data_now(&id(2), 1_000, 0.0).unwrap().is_none());
    }

    #[test]
    fn a_write_over_an_expired_record_moves_its_order_entry() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), 10);
        s.apply_patch_now(&id(1), &Patch::of(&[("n", "1")], 10), 0)
            .unwrap();
        s.apply_patch_now(&id(1), &Patch::of(&[("n", "2")], 60_000), 5_000)
            .unwrap();
        let t = &s.tables;
        let txn = t.env.read_txn().unwrap();
        assert_eq!(t.by_use.len(&txn).unwrap(), 1);
        let entry = use_key(5_000, id(1).as_str().as_bytes());
        assert!(t.by_use.get(&txn, &entry).unwrap().is_some());
    }

    #[test]
    fn one_key_is_read_in_place_and_a_due_read_refreshes() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), 10);
        let changes = [("a", "1"), ("big", r#""0123456789""#)];
        s.apply_patch_now(&id(1), &Patch::of(&changes, 1_000), 0)
            .unwrap(); // expires at 1000
        let key = |name, now| s.load_key_now(&id(1), name, now, 0.5).unwrap();
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
        let loaded = key("big", 600).unwrap();
        assert_eq!(
            (loaded.value.as_deref(), loaded.refreshed),
            (Some(r#""0123456789""#), true)
        );
        assert_eq!(
            s.load_now(&id(1), 700).unwrap().unwrap().expires_at_ms,
            1_600
        );
        assert!(key("a", 1_600).is_none(), "expired");
        assert!(
            s.load_key_now(&id(2), "a", 100, 0.5).unwrap().is_none(),
            "no session"
        );
    }

    #[test]
    fn two_stores_on_one_folder_see_each_others_writes_and_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (store(dir.path(), 100), store(dir.path(), 100));
        a.apply_patch_now(&id(1), &Patch::of(&[("a", "1")], 60_000), 0)
            .unwrap();
        b.apply_patch_now(&id(1), &Patch::of(&[("b", "2")], 60_000), 0)
            .unwrap();
        let data = a.load_data_now(&id(1), 1, 0.0).unwrap().unwrap().data;
        assert_eq!(data, r#"{"a":1,"b":2}"#);
        let folder = dir.path().join("shared");
        assert_eq!(std::fs::metadata(&folder).unwrap().mode() & 0o777, 0o700);
        for file in ["data.mdb", "lock.mdb"] {
            let mode = std::fs::metadata(folder.join(file)).unwrap().mode() & 0o777;
            assert_eq!(mode, 0o600, "{file}");
        }
    }

    #[test]
    fn refuses_impossible_options_and_damaged_files() {
        let dir = tempfile::tempdir().unwrap();
        let too_big = SharedStore::open(SharedOptions {
            path: dir.path().join("big"),
            max_entries: 10,
            max_bytes: 8 << 20,
            map_bytes: 16 << 20,
            trust_folder: false,
        });
        assert_eq!(
            too_big.err().unwrap().code().as_str(),
            "ERR_SESSION_OPTIONS"
        );
        let damaged = dir.path().join("damaged");
        std::fs::create_dir(&damaged).unwrap();
        std::fs::write(damaged.join("data.mdb"), vec![7u8; 64 << 10]).unwrap();
        let err = SharedStore::open(SharedOptions {
            path: damaged.clone(),
            max_entries: 10,
            max_bytes: 200,
            map_bytes: 16 << 20,
            trust_folder: false,
        })
        .err()
        .unwrap();
        assert_eq!(err.code().as_str(), "ERR_SESSION_STORE");
        assert!(err.to_string().contains("damaged"), "{err}");
        assert_eq!(
            std::fs::read(damaged.join("data.mdb")).unwrap(),
            vec![7u8; 64 << 10]
        );
    }
}
