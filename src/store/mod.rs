//! The store contract. Each store lives in its own module and implements
//! [`SessionStore`]; everything above (bindings, glue) works with any of them.

use async_trait::async_trait;

use crate::error::Result;
use crate::id::SessionId;
use crate::session::{Patch, Record};

#[cfg(feature = "db")]
pub mod db;
pub mod file;
pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;

/// Which framework's records a store reads and writes, for stores that keep both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// ThinkJS 3/4's peers: think-session-file, think-session-redis (the default).
    ThinkJs3,
    /// ThinkJS 2's built-in adapters.
    ThinkJs2,
}

#[async_trait]
pub trait SessionStore: Send + Sync {
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

    /// The live data as JSON text, and whether reading it also refreshed its expiry
    /// (think-session's autoUpdate: once less than `auto_update_rate` of the record's
    /// lifetime is left).
    async fn load_data(
        &self,
        id: &SessionId,
        now_ms: i64,
        auto_update_rate: f64,
    ) -> Result<Option<(String, bool)>> {
        load_refreshing(self, id, now_ms, auto_update_rate).await
    }
}

/// [`SessionStore::load_data`] for stores that read and refresh in two calls.
pub async fn load_refreshing<S: SessionStore + ?Sized>(
    store: &S,
    id: &SessionId,
    now_ms: i64,
    auto_update_rate: f64,
) -> Result<Option<(String, bool)>> {
    let Some(record) = store.load(id, now_ms).await? else {
        return Ok(None);
    };
    let refreshed = record.needs_refresh(now_ms, auto_update_rate)
        && store.touch(id, record.max_age_ms, now_ms).await?;
    Ok(Some((record.data, refreshed)))
}

#[cfg(test)]
pub(crate) mod conformance;
