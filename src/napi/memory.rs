use std::sync::Arc;

use napi::bindgen_prelude::AsyncTask;
use napi::{Env, Task};
use napi_derive::napi;

use super::{parse_id, whole_count, whole_ms, Result};
use crate::session::{now_ms, Patch};
use crate::store::memory::{self, MemoryOptions};

#[napi(object)]
pub struct MemoryStoreOptions {
    /// Most sessions kept; past it the least recently used goes. Default 100000.
    pub max_entries: Option<f64>,
    /// Most bytes of JSON per session; a larger write fails with ERR_SESSION_TOO_LARGE. Default 1 MiB.
    pub max_bytes: Option<f64>,
}

/// Sessions in this process's memory, outside the V8 heap. Every call is synchronous:
/// the work is shorter than a thread hop.
#[napi]
pub struct MemoryStore {
    inner: Arc<memory::MemoryStore>,
}

#[napi]
impl MemoryStore {
    #[napi(constructor)]
    pub fn new(options: Option<MemoryStoreOptions>) -> Result<Self> {
        let (max_entries, max_bytes) =
            options.map_or((None, None), |o| (o.max_entries, o.max_bytes));
        let options = MemoryOptions {
            max_entries: whole_count("maxEntries", max_entries, memory::DEFAULT_MAX_ENTRIES)?,
            max_bytes: whole_count("maxBytes", max_bytes, memory::DEFAULT_MAX_BYTES)?,
        };
        Ok(MemoryStore {
            inner: Arc::new(memory::MemoryStore::new(options)?),
        })
    }

    /// The live record as JSON text `{"expiresAtMs","maxAgeMs","data"}`, or null.
    #[napi]
    pub fn load(&self, id: String) -> Result<Option<String>> {
        let id = parse_id(&id)?;
        Ok(self.inner.load_now(&id, now_ms()).map(|r| r.to_json()))
    }

    /// Merges `changes` (a JSON object; `null` removes a key) into the record and sets
    /// its expiry to now + `maxAgeMs`, creating the record when missing.
    #[napi]
    pub fn apply(&self, id: String, changes: String, max_age_ms: f64) -> Result<()> {
        let id = parse_id(&id)?;
        let patch = Patch::from_json(&changes, whole_ms("maxAge", max_age_ms)?)?;
        Ok(self.inner.apply_patch_now(&id, &patch, now_ms())?)
    }

    /// Moves the expiry of a live record to now + `maxAgeMs`; false when there is none.
    #[napi]
    pub fn touch(&self, id: String, max_age_ms: f64) -> Result<bool> {
        let id = parse_id(&id)?;
        Ok(self
            .inner
            .touch_now(&id, whole_ms("maxAge", max_age_ms)?, now_ms())?)
    }

    #[napi]
    pub fn destroy(&self, id: String) -> Result<()> {
        let id = parse_id(&id)?;
        self.inner.destroy_now(&id);
        Ok(())
    }

    /// Removes expired records on a worker thread; resolves with how many went.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn gc(&self) -> AsyncTask<MemoryGc> {
        AsyncTask::new(MemoryGc(self.inner.clone()))
    }

    /// Records held, live or not yet collected.
    #[napi(getter)]
    pub fn size(&self) -> u32 {
        self.inner.len() as u32
    }
}

pub struct MemoryGc(Arc<memory::MemoryStore>);

impl Task for MemoryGc {
    type Output = u32;
    type JsValue = u32;

    fn compute(&mut self) -> napi::Result<u32> {
        Ok(self.0.gc_now(now_ms()) as u32)
    }

    fn resolve(&mut self, _env: Env, removed: u32) -> napi::Result<u32> {
        Ok(removed)
    }
}
