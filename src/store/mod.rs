//! The store contract. Each store lives in its own module, implements [`SessionStore`]
//! and is registered by name in [`open`]; everything above (bindings, glue) works with
//! any of them through the trait alone.

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::id::SessionId;
use crate::session::{Patch, Record};

#[cfg(feature = "db")]
pub mod db;
pub mod file;
pub mod memory;
pub mod options;
pub mod private;
pub mod reactor;
#[cfg(feature = "redis")]
pub mod redis;
pub mod shared;

/// Opens a store by the name JavaScript gives it, from its options as JSON text (the
/// option names of the store's JS peer, camelCase). The one list of stores: adding a
/// store is a module and a line here.
pub fn open(kind: &str, options: &str) -> Result<Box<dyn SessionStore>> {
    match kind {
        "memory" => memory::open(options),
        "file" => file::open(options),
        "shared" => shared::open(options),
        #[cfg(feature = "redis")]
        "redis" => redis::open(options),
        #[cfg(feature = "db")]
        "db" => db::open(options),
        other => Err(Error::InvalidOption {
            name: "kind",
            reason: format!(
                "{other:?} is not a store: 'memory', 'shared', 'file', 'redis' or 'db'"
            ),
        }),
    }
}

/// Which framework's records a store reads and writes, for stores that keep both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// ThinkJS 3/4's peers: think-session-file, think-session-redis (the default).
    ThinkJs3,
    /// ThinkJS 2's built-in adapters.
    ThinkJs2,
}

/// Where a store's calls run, which decides what a call costs the JavaScript thread
/// (ARCHITECTURE.md, "Performance shape").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runs {
    /// In memory, shorter than a thread hop: on the caller's thread, every future ready
    /// at its first poll.
    Inline,
    /// Blocking system calls (files): on a worker thread, every future ready at its
    /// first poll.
    Blocking,
    /// Network I/O: on the I/O runtime.
    Io,
    /// Network I/O on the caller's event loop ([`reactor`]): its futures are polled on
    /// the caller's thread, woken by the loop when a socket is ready.
    Loop,
}

/// A store that answers without I/O (memory, shared memory): its calls are made on the
/// caller's thread with no future to build and poll, so the request path is a function
/// call (ARCHITECTURE.md, "Performance shape"). Each does what the [`SessionStore`]
/// method of the same name does; such a store is a [`SessionStore`] through them.
pub trait InlineStore: Send + Sync {
    fn load_now(&self, id: &SessionId, now_ms: i64) -> Result<Option<Record>>;
    fn load_data_now(
        &self,
        id: &SessionId,
        now_ms: i64,
        auto_update_rate: f64,
    ) -> Result<Option<Loaded>>;
    /// By default the whole read, and the key picked from it.
    fn load_key_now(
        &self,
        id: &SessionId,
        name: &str,
        now_ms: i64,
        auto_update_rate: f64,
    ) -> Result<Option<LoadedKey>> {
        key_of(self.load_data_now(id, now_ms, auto_update_rate)?, name)
    }
    fn apply_patch_now(&self, id: &SessionId, patch: &Patch, now_ms: i64) -> Result<()>;
    fn touch_now(&self, id: &SessionId, max_age_ms: i64, now_ms: i64) -> Result<bool>;
    fn destroy_now(&self, id: &SessionId) -> Result<()>;
    fn rename_now(&self, from: &SessionId, to: &SessionId, now_ms: i64) -> Result<bool>;
    /// Run off the JavaScript thread (G7), as every store's gc.
    fn gc_now(&self, now_ms: i64) -> Result<u64>;
    /// As [`SessionStore::size`].
    fn size(&self) -> Option<usize>;
}

#[async_trait]
impl<S: InlineStore + 'static> SessionStore for S {
    fn runs(&self) -> Runs {
        Runs::Inline
    }

    fn inline(&self) -> Option<&dyn InlineStore> {
        Some(self)
    }

    fn size(&self) -> Option<usize> {
        InlineStore::size(self)
    }

    async fn load_data(&self, id: &SessionId, now_ms: i64, rate: f64) -> Result<Option<Loaded>> {
        self.load_data_now(id, now_ms, rate)
    }

    async fn load_key(
        &self,
        id: &SessionId,
        name: &str,
        now_ms: i64,
        rate: f64,
    ) -> Result<Option<LoadedKey>> {
        self.load_key_now(id, name, now_ms, rate)
    }

    async fn load(&self, id: &SessionId, now_ms: i64) -> Result<Option<Record>> {
        self.load_now(id, now_ms)
    }

    async fn apply_patch(&self, id: &SessionId, patch: &Patch, now_ms: i64) -> Result<()> {
        self.apply_patch_now(id, patch, now_ms)
    }

    async fn touch(&self, id: &SessionId, max_age_ms: i64, now_ms: i64) -> Result<bool> {
        self.touch_now(id, max_age_ms, now_ms)
    }

    async fn destroy(&self, id: &SessionId) -> Result<()> {
        self.destroy_now(id)
    }

    async fn rename(&self, from: &SessionId, to: &SessionId, now_ms: i64) -> Result<bool> {
        self.rename_now(from, to, now_ms)
    }

    async fn gc(&self, now_ms: i64) -> Result<u64> {
        self.gc_now(now_ms)
    }
}

/// A live session's data as a read hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The data object as JSON text.
    pub data: String,
    /// The read also moved the expiry forward (think-session's autoUpdate), so the
    /// cookie should be sent again.
    pub refreshed: bool,
}

/// One key of a live session as a read hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedKey {
    /// The key's value as JSON text; none when the session has no such key.
    pub value: Option<String>,
    /// As [`Loaded::refreshed`].
    pub refreshed: bool,
}

#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Where this store's calls run; see [`Runs`].
    fn runs(&self) -> Runs {
        Runs::Io
    }

    /// The same store's synchronous calls, for a store that runs [`Runs::Inline`].
    fn inline(&self) -> Option<&dyn InlineStore> {
        None
    }

    /// The live record of `id`, or `None` when it is missing or has expired (G6).
    async fn load(&self, id: &SessionId, now_ms: i64) -> Result<Option<Record>>;

    /// Merges `patch` into the stored record atomically, creating it when missing or
    /// expired, and sets its expiry to `now_ms + patch.max_age_ms` (G1, G2).
    async fn apply_patch(&self, id: &SessionId, patch: &Patch, now_ms: i64) -> Result<()>;

    /// Moves the expiry of a live record to `now_ms + max_age_ms`; false when there is none.
    async fn touch(&self, id: &SessionId, max_age_ms: i64, now_ms: i64) -> Result<bool>;

    /// Removes the record; removing a missing one is not an error.
    async fn destroy(&self, id: &SessionId) -> Result<()>;

    /// Moves the live record of `from` to `to` (an id just issued), leaving none under
    /// `from`: session regeneration. Other requests find the record under one id or the
    /// other, never under both or neither; false when `from` has no live record.
    async fn rename(&self, from: &SessionId, to: &SessionId, now_ms: i64) -> Result<bool>;

    /// Removes every record expired at `now_ms` and returns how many went.
    async fn gc(&self, now_ms: i64) -> Result<u64>;

    /// Lets go of the store's connections; every later call fails. Stores without any
    /// have nothing to do.
    async fn close(&self) -> Result<()> {
        Ok(())
    }

    /// Records held, live or not yet collected, where the store can tell at no cost.
    fn size(&self) -> Option<usize> {
        None
    }

    /// [`SessionStore::load_data`] answered at once from memory (a read cache), or none
    /// when the read has to wait for the store.
    fn load_data_cached(
        &self,
        _id: &SessionId,
        _now_ms: i64,
        _auto_update_rate: f64,
    ) -> Option<Result<Option<Loaded>>> {
        None
    }

    /// [`SessionStore::load_key`] answered at once from memory, as `load_data_cached`.
    fn load_key_cached(
        &self,
        id: &SessionId,
        name: &str,
        now_ms: i64,
        auto_update_rate: f64,
    ) -> Option<Result<Option<LoadedKey>>> {
        let loaded = self.load_data_cached(id, now_ms, auto_update_rate)?;
        Some(loaded.and_then(|loaded| key_of(loaded, name)))
    }

    /// The live data, refreshing its expiry once less than `auto_update_rate` of the
    /// record's lifetime is left (think-session's autoUpdate).
    async fn load_data(
        &self,
        id: &SessionId,
        now_ms: i64,
        auto_update_rate: f64,
    ) -> Result<Option<Loaded>> {
        load_refreshing(self, id, now_ms, auto_update_rate).await
    }

    /// One key of the live session, refreshing as [`SessionStore::load_data`] does. A
    /// store that keeps keys apart answers without reading the rest of the session.
    async fn load_key(
        &self,
        id: &SessionId,
        name: &str,
        now_ms: i64,
        auto_update_rate: f64,
    ) -> Result<Option<LoadedKey>> {
        key_of(self.load_data(id, now_ms, auto_update_rate).await?, name)
    }
}

/// One key of a whole read: its value, none when the session has no such key.
fn key_of(loaded: Option<Loaded>, name: &str) -> Result<Option<LoadedKey>> {
    let Some(loaded) = loaded else {
        return Ok(None);
    };
    Ok(Some(LoadedKey {
        value: crate::session::member(&loaded.data, name)?,
        refreshed: loaded.refreshed,
    }))
}

/// [`SessionStore::load_data`] for stores that read and refresh in two calls.
pub async fn load_refreshing<S: SessionStore + ?Sized>(
    store: &S,
    id: &SessionId,
    now_ms: i64,
    auto_update_rate: f64,
) -> Result<Option<Loaded>> {
    let Some(record) = store.load(id, now_ms).await? else {
        return Ok(None);
    };
    let refreshed = record.needs_refresh(now_ms, auto_update_rate)
        && store.touch(id, record.max_age_ms, now_ms).await?;
    Ok(Some(Loaded {
        data: record.data,
        refreshed,
    }))
}

#[cfg(test)]
pub(crate) mod conformance;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_stores_by_name_and_refuses_others() {
        let store = open("memory", r#"{"maxEntries":10}"#).unwrap();
        assert_eq!(store.runs(), Runs::Inline);
        let dir = tempfile::tempdir().unwrap();
        let options = serde_json::json!({ "sessionPath": dir.path() }).to_string();
        assert_eq!(open("file", &options).unwrap().runs(), Runs::Blocking);
        let err = open("oracle", "{}").err().unwrap();
        assert!(
            err.to_string().contains("\"oracle\" is not a store"),
            "{err}"
        );
        let err = open("memory", r#"{"maxEntrys":10}"#).err().unwrap();
        assert!(err.to_string().contains("maxEntrys"), "{err}");
        let err = open("memory", r#"{"maxEntries":0.5}"#).err().unwrap();
        assert!(err.to_string().contains("maxEntries"), "{err}");
    }
}
