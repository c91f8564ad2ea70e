//! The record a store keeps per session and the patch a request writes into it.
//!
//! Session data stays JSON text end to end: values are kept as the exact text
//! `JSON.stringify` wrote (numbers such as 2^53-1, 0.1 or 1e+21 never pass through a
//! float), and a merge only re-parses the top-level object.

use std::borrow::Cow;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
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

    /// think-session-file's autoUpdate rule: refresh once less than `rate` of the
    /// record's own lifetime is left.
    pub fn needs_refresh(&self, now_ms: i64, rate: f64) -> bool {
        rate > 0.0 && ((self.expires_at_ms - now_ms) as f64) < rate * self.max_age_ms as f64
    }

    /// Moves the expiry to now plus the lifetime the record was written with.
    pub fn refresh(&mut self, now_ms: i64) {
        self.expires_at_ms = now_ms.saturating_add(self.max_age_ms);
    }

    /// Refreshes the record when `needs_refresh` says so; true when it did.
    pub fn refresh_if_due(&mut self, now_ms: i64, rate: f64) -> bool {
        let due = self.needs_refresh(now_ms, rate);
        if due {
            self.refresh(now_ms);
        }
        due
    }

    /// Gives the record a new lifetime starting now; the data stays as it is.
    pub fn extend(&mut self, now_ms: i64, max_age_ms: i64) -> Result<()> {
        check_max_age(max_age_ms)?;
        self.max_age_ms = max_age_ms;
        self.refresh(now_ms);
        Ok(())
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
        let members = Members::parse(changes)
            .map_err(|e| Error::InvalidValue(format!("the changes are not a JSON object: {e}")))?;
        let mut patch = Patch {
            set: Vec::with_capacity(members.0.len()),
            remove: Vec::new(),
            max_age_ms,
        };
        for (key, value) in members.0 {
            if value.get() == "null" {
                patch.remove.push(key.into_owned());
            } else {
                patch.set.push((key.into_owned(), value.to_owned()));
            }
        }
        Ok(patch)
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

    /// Keys keep their place (as assignment to a JS object does); new keys go last.
    fn merge(&self, data: &str) -> Result<String> {
        let mut members = Members::parse(data)
            .map_err(|e| Error::store("record", format!("stored data is not a JSON object: {e}")))?
            .0;
        if !self.remove.is_empty() {
            members.retain(|(key, _)| !self.remove.iter().any(|r| r == key));
        }
        for (key, value) in &self.set {
            match members.iter_mut().find(|(k, _)| k == key) {
                Some(slot) => slot.1 = value,
                None => members.push((Cow::Borrowed(key), value)),
            }
        }
        let mut out = Vec::with_capacity(
            data.len()
                + self
                    .set
                    .iter()
                    .map(|(k, v)| k.len() + v.get().len() + 4)
                    .sum::<usize>(),
        );
        out.push(b'{');
        for (i, (key, value)) in members.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, key.as_ref())
                .map_err(|e| Error::InvalidValue(e.to_string()))?;
            out.push(b':');
            out.extend_from_slice(value.get().as_bytes());
        }
        out.push(b'}');
        String::from_utf8(out).map_err(|e| Error::InvalidValue(e.to_string()))
    }
}

/// The top-level members of a JSON object text, in order, borrowing from the text
/// wherever a key needs no unescaping.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'a> Members<'a> {
    fn parse(text: &'a str) -> serde_json::Result<Self> {
        serde_json::from_str(text)
    }
}

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(
                self,
                mut map: M,
            ) -> std::result::Result<Self::Value, M::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some((Key(key), value)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    members.push((key, value));
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(
                self,
                v: &'de str,
            ) -> std::result::Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
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
        let patch = Patch::from_json(r#"{"z":0,"a":5}"#, 1_000).unwrap();
        let rec = patch.apply_to(Some(&rec), 0, 1024).unwrap();
        assert_eq!(
            rec.data, r#"{"a":5,"b":2,"z":0}"#,
            "updated keys keep their place"
        );
    }

    #[test]
    fn keeps_numbers_exactly_as_written() {
        let text =
            r#"{"big":9007199254740991,"f":0.1,"e":1e+21,"z":0,"s":"ü\u0000","k\"q\u00e9":1}"#;
        let patch = Patch::from_json(text, 1_000).unwrap();
        let rec = patch.apply_to(None, 0, 1024).unwrap();
        for part in [
            "9007199254740991",
            "0.1",
            "1e+21",
            r#""ü\u0000""#,
            r#""k\"qé":1"#,
        ] {
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
    fn extend_keeps_data_and_moves_expiry() {
        let mut rec = record(r#"{"a":1}"#);
        rec.extend(1_000, 5_000).unwrap();
        assert_eq!(rec.data, r#"{"a":1}"#);
        assert_eq!(rec.expires_at_ms, 6_000);
        assert_eq!(rec.max_age_ms, 5_000);
        let err = rec.extend(1_000, 0).unwrap_err();
        assert_eq!(err.code().as_str(), "ERR_SESSION_OPTIONS");
    }

    #[test]
    fn refresh_follows_the_autoupdate_rate_of_the_records_own_lifetime() {
        let mut rec = record("{}"); // expires at 2000, lifetime 1000
        assert!(!rec.needs_refresh(1_400, 0.5), "600 of 1000 left");
        assert!(rec.needs_refresh(1_600, 0.5), "400 of 1000 left");
        assert!(!rec.needs_refresh(1_600, 0.0), "rate 0 never refreshes");
        assert!(!rec.refresh_if_due(1_400, 0.5));
        assert_eq!(rec.expires_at_ms, 2_000);
        assert!(rec.refresh_if_due(1_600, 0.5));
        assert_eq!(rec.expires_at_ms, 2_600);
    }
}
