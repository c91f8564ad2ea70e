//! Decoding stored records (think-session-file / think-session-redis's format and ThinkJS
//! 2's file format) and merging a patch into them: never panics; a decoded record's data is
//! a JSON object, survives encoding and decoding again, and a merge into it succeeds (under
//! the size limit) and keeps it an object.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;
use think_session_native::session::{Patch, Record};
use think_session_native::store::file::Layout;

/// The members of a JSON object, as text (numbers past f64's range are valid JSON, which
/// JSON.parse reads as Infinity; serde_json's Value would refuse them). Duplicates: the last.
fn members(text: &str) -> Option<BTreeMap<String, Box<RawValue>>> {
    serde_json::from_str(text).ok()
}

fuzz_target!(|bytes: &[u8]| {
    let text = String::from_utf8_lossy(bytes);
    let thinkjs3 = Record::from_thinkjs3(&text);
    for (layout, decoded) in [
        (Layout::ThinkJs3, thinkjs3),
        (
            Layout::ThinkJs2 { depth: 1 },
            Layout::ThinkJs2 { depth: 1 }.decode(bytes),
        ),
    ] {
        let Some(record) = decoded else { continue };
        // JSON text of an object (its keys may hold lone surrogates, which JSON.parse takes
        // and a Rust String cannot: a merge keeps such keys as they are)
        assert!(
            record.data.starts_with('{') && record.data.ends_with('}'),
            "{:?}",
            record.data
        );
        let again = layout
            .decode(layout.encode(&record).as_bytes())
            .expect("re-encoded record");
        assert_eq!(again.data, record.data);
        assert_eq!(again.expires_at_ms, record.expires_at_ms);

        let mut patch = Patch::new(60_000).unwrap();
        patch
            .set("fuzz \"key\"".into(), "[1,{\"a\":null}]".into())
            .unwrap();
        patch.set("gone".into(), "null".into()).unwrap();
        match patch.apply_to(
            Some(&record),
            record.expires_at_ms.saturating_sub(1),
            1 << 20,
        ) {
            Ok(merged) => match members(&merged.data) {
                Some(value) => {
                    assert_eq!(value["fuzz \"key\""].get(), "[1,{\"a\":null}]");
                    assert!(!value.contains_key("gone"));
                }
                // Keys holding lone surrogates, kept as they were: still one JSON object.
                None => {
                    assert!(members(&record.data).is_none(), "{:?}", merged.data);
                    serde_json::from_str::<&RawValue>(&merged.data).expect("JSON text");
                    assert!(merged.data.starts_with('{'), "{:?}", merged.data);
                    assert!(merged.data.contains(r#""fuzz \"key\"":[1,{"a":null}]"#));
                }
            },
            Err(err) => assert_eq!(err.code().as_str(), "ERR_SESSION_TOO_LARGE", "{err}"),
        }
    }
});
