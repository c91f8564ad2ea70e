//! `format: 'hash'`: one Redis hash per session, one field per session key holding that
//! value's JSON text, and the record's expiry and lifetime under [`EXPIRES_FIELD`] and
//! [`MAX_AGE_FIELD`] (the key's TTL matches them, so Redis drops it). A write sends only
//! what the request changed (HSET, HDEL and PEXPIRE in one MULTI/EXEC, no script), so
//! concurrent writes of different keys never meet, and what a write costs Redis does not
//! grow with the session. Not think-session-redis's format.

use std::sync::LazyLock;

use redis::{Cmd, Pipeline, Value};

use super::{RedisStore, Seen};
use crate::error::{Error, Result};
use crate::id::SessionId;
use crate::session::{write_key, Patch, Record};

/// The session's expiry (ms since the epoch) and lifetime (ms). 0xFF never occurs in
/// UTF-8, so no session key (a UTF-8 field name) can be taken for them.
pub const EXPIRES_FIELD: &[u8] = b"\xffexpires";
pub const MAX_AGE_FIELD: &[u8] = b"\xffmaxAge";

/// Moves the expiry of a session that exists, and creates nothing (an HSET alone would).
static TOUCH: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        "if redis.call('PEXPIRE', KEYS[1], ARGV[1]) == 0 then return 0 end \
         redis.call('HSET', KEYS[1], ARGV[2], ARGV[3], ARGV[4], ARGV[1]) return 1",
    )
});

impl RedisStore {
    /// The live session in the hash of `id`; what was read, live or not, is kept as the
    /// guess of the next write.
    pub(super) async fn load_hash(&self, id: &SessionId, now_ms: i64) -> Result<Option<Record>> {
        let key = self.key(id);
        let fields: Value = self
            .run(async |conn| Cmd::hgetall(&key).query_async(conn).await)
            .await
            .map_err(|e| self.wrong_type(e, &key))?;
        let Some(record) = self.record_of(&key, fields)? else {
            self.last_seen().forget(id);
            return Ok(None);
        };
        let seen = Seen {
            text: Some(record.data.clone()),
            ttl_ends_ms: record.expires_at_ms,
        };
        self.last_seen().put(id, seen);
        Ok(record.is_live(now_ms).then_some(record))
    }

    /// The record in a hash's fields; none for no fields (no key).
    fn record_of(&self, key: &str, fields: Value) -> Result<Option<Record>> {
        let pairs: Vec<Value> = match fields {
            Value::Array(items) => items,
            Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
            Value::Nil => Vec::new(),
            other => return Err(self.failure(format!("HGETALL of {key} answered {other:?}"))),
        };
        if pairs.is_empty() {
            return Ok(None);
        }
        let unreadable = || self.failure(format!("{key} is a hash but not a session record"));
        let mut data = String::with_capacity(pairs.iter().map(bytes_len).sum::<usize>() + 8);
        let (mut expires_at_ms, mut max_age_ms) = (None, None);
        let number = |value: &[u8]| std::str::from_utf8(value).ok()?.parse::<i64>().ok();
        data.push('{');
        for pair in pairs.chunks(2) {
            let [Value::BulkString(field), Value::BulkString(value)] = pair else {
                return Err(unreadable());
            };
            if field == EXPIRES_FIELD {
                expires_at_ms = number(value);
                continue;
            }
            if field == MAX_AGE_FIELD {
                max_age_ms = number(value);
                continue;
            }
            let (Ok(field), Ok(value)) = (std::str::from_utf8(field), std::str::from_utf8(value))
            else {
                return Err(unreadable());
            };
            if data.len() > 1 {
                data.push(',');
            }
            write_key(&mut data, field);
            data.push(':');
            data.push_str(value);
        }
        data.push('}');
        Ok(Some(Record {
            data,
            expires_at_ms: expires_at_ms.ok_or_else(unreadable)?,
            max_age_ms: max_age_ms.ok_or_else(unreadable)?,
        }))
    }

    /// Sets the keys the patch sets, removes those it removes and moves the expiry, in one
    /// transaction. `maxBytes` is judged against the session as this process last saw it
    /// (Redis does not measure it): writers in other processes may add to it meanwhile. A
    /// session last seen expired, whose key Redis has not dropped yet, is deleted first,
    /// so the write starts from nothing as on every store.
    pub(super) async fn apply_hash(
        &self,
        id: &SessionId,
        patch: &Patch,
        now_ms: i64,
    ) -> Result<()> {
        let key = self.key(id);
        let seen = self.last_seen().get(id).and_then(|seen| {
            let expires_at_ms = seen.ttl_ends_ms;
            Some(Record {
                data: seen.text?,
                expires_at_ms,
                max_age_ms: 0,
            })
        });
        let expired = seen.as_ref().is_some_and(|r| !r.is_live(now_ms));
        let current = seen.filter(|r| r.is_live(now_ms));
        let record = patch.apply_to(current.as_ref(), now_ms, self.max_bytes)?;
        let mut set = Cmd::new();
        set.arg("HSET").arg(&key);
        for (name, value) in patch.sets() {
            set.arg(name).arg(value);
        }
        set.arg(EXPIRES_FIELD).arg(record.expires_at_ms);
        set.arg(MAX_AGE_FIELD).arg(record.max_age_ms);
        let mut pipe = Pipeline::new();
        pipe.atomic();
        if expired {
            pipe.del(&key);
        }
        pipe.add_command(set);
        let removes: Vec<&str> = patch.removes().collect();
        if !removes.is_empty() {
            pipe.cmd("HDEL").arg(&key).arg(&removes);
        }
        pipe.cmd("PEXPIRE").arg(&key).arg(patch.max_age_ms);
        self.run(async |conn| pipe.query_async::<()>(conn).await)
            .await
            .map_err(|e| self.wrong_type(e, &key))?;
        let written_on = self.generation();
        let seen = Seen {
            ttl_ends_ms: record.expires_at_ms,
            text: Some(record.data),
        };
        self.last_seen().put(id, seen);
        self.confirm(written_on).await
    }

    /// Moves the expiry of a live session; creates nothing.
    pub(super) async fn touch_hash(
        &self,
        id: &SessionId,
        max_age_ms: i64,
        now_ms: i64,
    ) -> Result<bool> {
        let key = self.key(id);
        // A refresh follows the request's own read: the session as read then decides, and
        // the script moves nothing Redis has dropped since. Otherwise it is read first.
        let seen_live = self
            .last_seen()
            .get(id)
            .is_some_and(|seen| seen.text.is_some() && seen.ttl_ends_ms > now_ms);
        if !seen_live && self.load_hash(id, now_ms).await?.is_none() {
            return Ok(false);
        }
        let cached = self.last_seen().forget(id);
        let moved: i64 = self
            .run(async |conn| {
                TOUCH
                    .key(&key)
                    .arg(max_age_ms)
                    .arg(EXPIRES_FIELD)
                    .arg(now_ms.saturating_add(max_age_ms))
                    .arg(MAX_AGE_FIELD)
                    .invoke_async(conn)
                    .await
            })
            .await
            .map_err(|e| self.wrong_type(e, &key))?;
        let written_on = self.generation();
        if let (1, Some(mut seen)) = (moved, cached) {
            seen.ttl_ends_ms = now_ms.saturating_add(max_age_ms);
            self.last_seen().put(id, seen);
        }
        self.confirm(written_on).await?;
        Ok(moved == 1)
    }

    /// A command on a key of the other format: says which, and that nothing was changed.
    pub(super) fn wrong_type(&self, err: Error, key: &str) -> Error {
        if !err.to_string().contains("WRONGTYPE") {
            return err;
        }
        // A hash write's PEXPIRE runs although its HSET failed (MULTI does not roll back).
        let (holds, wants, kept) = if self.is_hash() {
            ("a string", "a hash", "its value was not changed")
        } else {
            ("a hash", "a string", "nothing was changed")
        };
        self.failure(format!(
            "{key} holds {holds}, where format {:?} keeps {wants}: it was written in another format; \
             {kept} (set `format` to the one the sessions are in, or move them with the migrate tool)",
            self.format_name()
        ))
    }
}

fn bytes_len(value: &Value) -> usize {
    match value {
        Value::BulkString(bytes) => bytes.len() + 4,
        _ => 0,
    }
}
