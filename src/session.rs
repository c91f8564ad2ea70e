//! The record a store keeps per session and the patch a request writes into it.
//!
//! Session data stays JSON text end to end: values are kept as the exact text
//! `JSON.stringify` wrote (numbers such as 2^53-1, 0.1 or 1e+21 never pass through a
//! float), and a merge only re-parses the top-level object.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
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

    /// A record as think-session-file and think-session-redis write it,
    /// `{"data":{…},"maxAge":ms,"expires":ms}` in any key order; none when `text` is not one.
    /// Without a readable expiry the record has expired.
    pub fn from_thinkjs3(text: &str) -> Option<Record> {
        #[derive(serde::Deserialize)]
        struct Stored<'a> {
            #[serde(borrow)]
            data: &'a RawValue,
            #[serde(rename = "maxAge")]
            max_age: Option<f64>,
            expires: Option<f64>,
        }
        let stored: Stored = serde_json::from_str(text).ok()?;
        stored.data.get().starts_with('{').then(|| Record {
            data: stored.data.get().to_owned(),
            expires_at_ms: stored.expires.map_or(i64::MIN, |e| e as i64),
            max_age_ms: stored.max_age.unwrap_or(0.0) as i64,
        })
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
    /// A patch that changes no key: applied, it gives the record a new lifetime from now
    /// (ThinkJS's `update()`), creating an empty one when missing.
    pub fn new(max_age_ms: i64) -> Result<Self> {
        check_max_age(max_age_ms)?;
        Ok(Patch {
            set: Vec::new(),
            remove: Vec::new(),
            max_age_ms,
        })
    }

    /// Sets `name` to `value`, the JSON text `JSON.stringify` wrote; `null` removes the
    /// key, as `this.session(name, null)` does in ThinkJS.
    pub fn set(&mut self, name: String, value: String) -> Result<()> {
        self.set.retain(|(key, _)| *key != name);
        self.remove.retain(|key| *key != name);
        if value == "null" {
            self.remove.push(name);
            return Ok(());
        }
        let value = RawValue::from_string(value)
            .map_err(|e| Error::InvalidValue(format!("the value of {name:?} is not JSON: {e}")))?;
        self.set.push((name, value));
        Ok(())
    }

    /// A patch from `(name, JSON text)` pairs, for tests.
    #[cfg(test)]
    pub fn of(changes: &[(&str, &str)], max_age_ms: i64) -> Patch {
        let mut patch = Patch::new(max_age_ms).unwrap();
        for (name, value) in changes {
            patch.set(name.to_string(), value.to_string()).unwrap();
        }
        patch
    }

    /// The keys this patch sets, with their JSON text.
    pub fn sets(&self) -> impl Iterator<Item = (&str, &str)> {
        self.set.iter().map(|(k, v)| (k.as_str(), v.get()))
    }

    /// The keys this patch sets, with their JSON text as checked JSON.
    pub fn set_values(&self) -> impl Iterator<Item = (&str, &RawValue)> {
        self.set.iter().map(|(k, v)| (k.as_str(), &**v))
    }

    /// The keys this patch removes.
    pub fn removes(&self) -> impl Iterator<Item = &str> {
        self.remove.iter().map(String::as_str)
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
            members.retain(|(key, _)| !self.remove.iter().any(|r| r.as_bytes() == &**key));
        }
        for (key, value) in &self.set {
            // A key the stored text holds twice (never written so by us or JSON.stringify)
            // keeps its first place and this value once: JSON.parse would read the last.
            let mut found = false;
            members.retain_mut(|(k, v)| {
                if **k != *key.as_bytes() {
                    return true;
                }
                *v = value;
                !std::mem::replace(&mut found, true)
            });
            if !found {
                members.push((Cow::Borrowed(key.as_bytes()), value));
            }
        }
        let mut out = String::with_capacity(
            data.len()
                + self
                    .set
                    .iter()
                    .map(|(k, v)| k.len() + v.get().len() + 8)
                    .sum::<usize>(),
        );
        out.push('{');
        for (i, (key, value)) in members.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_stored_key(&mut out, key);
            out.push(':');
            out.push_str(value.get());
        }
        out.push('}');
        Ok(out)
    }
}

/// The value (JSON text) of key `name` in the data object `data`; of its last
/// occurrence when the text holds it twice, as JSON.parse reads it.
pub fn member(data: &str, name: &str) -> Result<Option<String>> {
    let members = Members::parse(data)
        .map_err(|e| Error::store("record", format!("stored data is not a JSON object: {e}")))?;
    Ok(members
        .0
        .iter()
        .rev()
        .find(|(key, _)| **key == *name.as_bytes())
        .map(|(_, value)| value.get().to_owned()))
}

/// The length of `key` written as a JSON string by [`json_key`], without writing it when
/// it needs no escaping.
pub fn json_key_len(key: &str) -> usize {
    if key.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        key.len() + 2
    } else {
        json_key(key).len()
    }
}

/// `key` as a JSON string, escaped as JSON.stringify escapes it.
pub fn json_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 2);
    write_key(&mut out, key);
    out
}

/// Writes `key` as a JSON string. Most keys need no escaping and are copied as they are.
pub fn write_key(out: &mut String, key: &str) {
    if key.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(key);
        out.push('"');
    } else {
        // A str always serialises: escaping cannot fail.
        out.push_str(&serde_json::to_string(key).unwrap_or_default());
    }
}

/// Writes a key read from stored data (see [`Members`]): UTF-8 as [`write_key`] does, WTF-8
/// with each lone surrogate escaped as JSON.stringify escapes it.
fn write_stored_key(out: &mut String, key: &[u8]) {
    if let Ok(key) = std::str::from_utf8(key) {
        return write_key(out, key);
    }
    out.push('"');
    let mut rest = key;
    while !rest.is_empty() {
        let text = match std::str::from_utf8(rest) {
            Ok(text) => text,
            Err(e) => std::str::from_utf8(&rest[..e.valid_up_to()]).unwrap_or_default(),
        };
        let quoted = serde_json::to_string(text).unwrap_or_default();
        out.push_str(&quoted[1..quoted.len() - 1]);
        rest = match &rest[text.len()..] {
            [0xED, b1 @ 0xA0..=0xBF, b2 @ 0x80..=0xBF, tail @ ..] => {
                let unit = 0xD000 | (u32::from(b1 & 0x3F) << 6) | u32::from(b2 & 0x3F);
                let _ = write!(out, "\\u{unit:04x}");
                tail
            }
            // Not WTF-8, which serde_json never hands out.
            [_, tail @ ..] => {
                out.push(char::REPLACEMENT_CHARACTER);
                tail
            }
            [] => &[],
        };
    }
    out.push('"');
}

/// The top-level members of a JSON object text, in order, borrowing from the text
/// wherever a key needs no unescaping. Keys are bytes: UTF-8, or WTF-8 when a key holds
/// a lone surrogate (JSON.stringify writes one escaped and JSON.parse reads it back, but
/// a Rust string cannot hold it). Such a key never equals a patch's, and is kept as is.
struct Members<'a>(Vec<(Cow<'a, [u8]>, &'a RawValue)>);

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

struct Key<'a>(Cow<'a, [u8]>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_bytes<E: de::Error>(
                self,
                v: &'de [u8],
            ) -> std::result::Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> std::result::Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        // serde_json reads a string as bytes without requiring Unicode.
        deserializer.deserialize_bytes(KeyVisitor)
    }
}

/// Every store's `maxBytes` when none is given: most bytes of JSON per session (G7).
pub const DEFAULT_MAX_BYTES: usize = 1024 * 1024;

/// The `maxBytes` of a store: room for at least an empty object.
pub fn check_max_bytes(max_bytes: usize) -> Result<()> {
    if max_bytes < 2 {
        return Err(Error::InvalidOption {
            name: "maxBytes",
            reason: "must be at least 2 (the size of `{}`)".into(),
        });
    }
    Ok(())
}

pub fn check_max_age(max_age_ms: i64) -> Result<()> {
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
        let patch = Patch::of(&[("user", r#"{"name":"ann"}"#)], 500);
        let rec = patch.apply_to(None, 100, 1024).unwrap();
        assert_eq!(rec.data, r#"{"user":{"name":"ann"}}"#);
        assert_eq!(rec.expires_at_ms, 600);
        assert_eq!(rec.max_age_ms, 500);
    }

    #[test]
    fn merges_only_the_changed_keys_and_null_removes() {
        let rec = Patch::of(&[("b", "2"), ("c", "null")], 1_000)
            .apply_to(Some(&record(r#"{"a":1,"c":3}"#)), 0, 1024)
            .unwrap();
        assert_eq!(rec.data, r#"{"a":1,"b":2}"#);
        let rec = Patch::of(&[("z", "0"), ("a", "5")], 1_000)
            .apply_to(Some(&rec), 0, 1024)
            .unwrap();
        assert_eq!(
            rec.data, r#"{"a":5,"b":2,"z":0}"#,
            "updated keys keep their place"
        );
    }

    #[test]
    fn a_key_stored_twice_is_written_once_with_the_new_value() {
        let rec = Patch::of(&[("a", "9")], 1_000)
            .apply_to(Some(&record(r#"{"a":1,"b":2,"a":3}"#)), 0, 1024)
            .unwrap();
        assert_eq!(rec.data, r#"{"a":9,"b":2}"#);
    }

    #[test]
    fn keeps_numbers_exactly_as_written() {
        let changes = [
            ("big", "9007199254740991"),
            ("f", "0.1"),
            ("e", "1e+21"),
            ("z", "0"),
            ("s", r#""ü\u0000""#),
            ("k\"qé", "1"),
        ];
        let rec = Patch::of(&changes, 1_000).apply_to(None, 0, 1024).unwrap();
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
        let err = Patch::of(&[("blob", r#""0123456789""#)], 1_000)
            .apply_to(None, 0, 10)
            .unwrap_err();
        assert_eq!(err.code().as_str(), "ERR_SESSION_TOO_LARGE");
    }

    #[test]
    fn rejects_values_that_are_not_json_and_bad_lifetimes() {
        for bad in ["{", "{\"a\":}", "", "undefined", "1 2"] {
            let err = Patch::new(1_000)
                .unwrap()
                .set("a".into(), bad.into())
                .unwrap_err();
            assert_eq!(err.code().as_str(), "ERR_SESSION_VALUE", "{bad}");
        }
        assert_eq!(
            Patch::new(0).unwrap_err().code().as_str(),
            "ERR_SESSION_OPTIONS"
        );
    }

    #[test]
    fn the_last_write_of_a_key_in_one_patch_wins() {
        let rec = Patch::of(&[("a", "1"), ("a", "null"), ("b", "1"), ("b", "2")], 1_000)
            .apply_to(Some(&record(r#"{"a":0}"#)), 0, 1024)
            .unwrap();
        assert_eq!(rec.data, r#"{"b":2}"#);
    }

    #[test]
    fn keys_holding_lone_surrogates_are_kept_as_json_stringify_wrote_them() {
        // What JSON.stringify writes for {"\ud800": 1, "a\udfff\"b": 2, "é\u0001": 3}
        let stored = r#"{"\ud800":1,"a\udfff\"b":2,"é\u0001":3,"c":4}"#;
        let rec = Patch::of(&[("c", "null"), ("d", "5"), ("é\u{1}", "6")], 1_000)
            .apply_to(Some(&record(stored)), 0, 1024)
            .unwrap();
        assert_eq!(rec.data, r#"{"\ud800":1,"a\udfff\"b":2,"é\u0001":6,"d":5}"#);
    }

    #[test]
    fn a_corrupt_stored_record_is_a_store_error() {
        let err = Patch::of(&[("a", "1")], 1_000)
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
