//! The record a store keeps per session and the patch a request writes into it.
//!
//! Session data stays JSON text end to end: values are kept as the exact text
//! `JSON.stringify` wrote (numbers such as 2^53-1, 0.1 or 1e+21 never pass through a
//! float), and a merge only re-parses the top-level object.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::value::RawValue;

use crate::error::{Error, Result};

/// Milliseconds since the Unix epoch, the unit of every expiry in every format.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// One session as a store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The data object as JSON text, always a JSON object.
    pub data: String,
    pub expires_at_ms: i64,
    pub max_age_ms: i64,
}

impl Record {
    pub fn is_live(&self, now_ms: i64) -> bool {
        self.expires_at_ms > now_ms
    }

    /// The record as the bindings hand it to JavaScript: one JSON text, parsed once there.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(self.data.len() + 48);
        out.push_str("{\"expiresAtMs\":");
        out.push_str(&self.expires_at_ms.to_string());
        out.push_str(",\"maxAgeMs\":");
        out.push_str(&self.max_age_ms.to_string());
        out.push_str(",\"data\":");
        out.push_str(&self.data);
        out.push('}');
        out
    }
}

/// What one request changed: keys to set (exact JSON text) and keys to remove, and the
/// lifetime the record gets from now.
#[derive(Debug, Clone)]
pub struct Patch {
    set: Vec<(String, Box<RawValue>)>,
    remove: Vec<String>,
    pub max_age_ms: i64,
}

impl Patch {
    /// Parses a patch written as one JSON object, where `null` removes the key, as
    /// `this.session(name, null)` does in ThinkJS.
    pub fn from_json(changes: &str, max_age_ms: i64) -> Result<Self> {
        check_max_age(max_age_ms)?;
        let members: Vec<(String, Box<RawValue>)> = parse_members(changes)
            .map_err(|e| Error::InvalidValue(format!("the changes are not a JSON object: {e}")))?;
        let mut patch = Patch {
            set: Vec::new(),
            remove: Vec::new(),
            max_age_ms,
        };
        for (key, value) in members {
            if value.get() == "null" {
                patch.remove.push(key);
            } else {
                patch.set.push((key, value));
            }
        }
        Ok(patch)
    }

    /// A patch that changes no key and only refreshes the expiry.
    pub fn touch(max_age_ms: i64) -> Result<Self> {
        check_max_age(max_age_ms)?;
        Ok(Patch {
            set: Vec::new(),
            remove: Vec::new(),
            max_age_ms,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }

    /// Merges the patch into `current` (the stored live record, if any) and returns the
    /// record to store, or `TooLarge` when the merged data exceeds `max_bytes`.
    pub fn apply_to(
        &self,
        current: Option<&Record>,
        now_ms: i64,
        max_bytes: usize,
    ) -> Result<Record> {
        let data = match current {
            Some(record) if self.is_empty() => record.data.clone(),
            Some(record) => self.merge(&record.data)?,
            None => self.merge("{}")?,
        };
        if data.len() > max_bytes {
            return Err(Error::TooLarge {
                size: data.len(),
                limit: max_bytes,
            });
        }
        Ok(Record {
            data,
            expires_at_ms: now_ms.saturating_add(self.max_age_ms),
            max_age_ms: self.max_age_ms,
        })
    }

    fn merge(&self, data: &str) -> Result<String> {
        let mut members: BTreeMap<String, &RawValue> = serde_json::from_str(data).map_err(|e| {
            Error::store("record", format!("stored data is not a JSON object: {e}"))
        })?;
        for key in &self.remove {
            members.remove(key);
        }
        for (key, value) in &self.set {
            members.insert(key.clone(), value);
        }
        Ok(to_json_text(&members))
    }
}

fn parse_members(text: &str) -> serde_json::Result<Vec<(String, Box<RawValue>)>> {
    let map: BTreeMap<String, Box<RawValue>> = serde_json::from_str(text)?;
    Ok(map.into_iter().collect())
}

fn check_max_age(max_age_ms: i64) -> Result<()> {
    if max_age_ms <= 0 {
        return Err(Error::InvalidOption {
            name: "maxAge",
            reason: format!("{max_age_ms} ms is not a positive lifetime"),
        });
    }
    Ok(())
}

fn to_json_text(value: &impl Serialize) -> String {
    // Serializing maps of strings and raw JSON cannot fail.
    serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(data: &str) -> Record {
        Record {
            data: data.to_owned(),
            expires_at_ms: 2_000,
            max_age_ms: 1_000,
        }
    }

    #[test]
    fn creates_a_record_when_missing() {
        let patch = Patch::from_json(r#"{"user":{"name":"ann"}}"#, 500).unwrap();
        let rec = patch.apply_to(None, 100, 1024).unwrap();
        assert_eq!(rec.data, r#"{"user":{"name":"ann"}}"#);
        assert_eq!(rec.expires_at_ms, 600);
        assert_eq!(rec.max_age_ms, 500);
    }

    #[test]
    fn merges_only_the_changed_keys_and_null_removes() {
        let patch = Patch::from_json(r#"{"b":2,"c":null}"#, 1_000).unwrap();
        let rec = patch
            .apply_to(Some(&record(r#"{"a":1,"c":3}"#)), 0, 1024)
            .unwrap();
        assert_eq!(rec.data, r#"{"a":1,"b":2}"#);
    }

    #[test]
    fn keeps_numbers_exactly_as_written() {
        let text = r#"{"big":9007199254740991,"f":0.1,"e":1e+21,"z":0,"s":"ü\u0000"}"#;
        let patch = Patch::from_json(text, 1_000).unwrap();
        let rec = patch.apply_to(None, 0, 1024).unwrap();
        for part in ["9007199254740991", "0.1", "1e+21", r#""ü\u0000""#] {
            assert!(rec.data.contains(part), "{part} lost in {}", rec.data);
        }
    }

    #[test]
    fn rejects_data_over_the_limit_without_a_record() {
        let patch = Patch::from_json(r#"{"blob":"0123456789"}"#, 1_000).unwrap();
        let err = patch.apply_to(None, 0, 10).unwrap_err();
        assert_eq!(err.code().as_str(), "ERR_SESSION_TOO_LARGE");
    }

    #[test]
    fn rejects_patches_that_are_not_objects_and_bad_lifetimes() {
        for bad in ["[1,2]", "\"x\"", "{", "{\"a\":}", ""] {
            let err = Patch::from_json(bad, 1_000).unwrap_err();
            assert_eq!(err.code().as_str(), "ERR_SESSION_VALUE", "{bad}");
        }
        assert_eq!(
            Patch::from_json("{}", 0).unwrap_err().code().as_str(),
            "ERR_SESSION_OPTIONS"
        );
    }

    #[test]
    fn a_corrupt_stored_record_is_a_store_error() {
        let patch = Patch::from_json(r#"{"a":1}"#, 1_000).unwrap();
        let err = patch
            .apply_to(Some(&record("not json")), 0, 1024)
            .unwrap_err();
        assert_eq!(err.code().as_str(), "ERR_SESSION_STORE");
    }

    #[test]
    fn touch_keeps_data_and_moves_expiry() {
        let rec = Patch::touch(5_000)
            .unwrap()
            .apply_to(Some(&record(r#"{"a":1}"#)), 1_000, 1024)
            .unwrap();
        assert_eq!(rec.data, r#"{"a":1}"#);
        assert_eq!(rec.expires_at_ms, 6_000);
    }

    #[test]
    fn record_json_carries_expiry_and_data() {
        let v: serde_json::Value = serde_json::from_str(&record(r#"{"a":[1]}"#).to_json()).unwrap();
        assert_eq!(v["expiresAtMs"], 2_000);
        assert_eq!(v["maxAgeMs"], 1_000);
        assert_eq!(v["data"]["a"][0], 1);
    }
}
