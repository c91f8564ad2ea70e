//! Session id validation (G5): whatever the bytes, an accepted id is 8-128 characters of
//! `[A-Za-z0-9_-]`, the UTF-8 and UTF-16 validators agree, and nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use think_session_native::id::{is_id_byte, is_valid, SessionId, MAX_LEN, MIN_LEN};

fuzz_target!(|bytes: &[u8]| {
    let text = String::from_utf8_lossy(bytes);
    let parsed = SessionId::parse(&text);
    assert_eq!(parsed.is_ok(), is_valid(&text));
    let units: Vec<u16> = text.encode_utf16().collect();
    let from_utf16 = SessionId::from_utf16(&units);
    assert_eq!(parsed.is_ok(), from_utf16.is_ok(), "{text:?}");
    if let Ok(id) = parsed {
        let id = id.as_str();
        assert!((MIN_LEN..=MAX_LEN).contains(&id.len()));
        assert!(id.bytes().all(is_id_byte));
        assert_eq!(from_utf16.unwrap().as_str(), id);
    }
    // UTF-16 units that are not valid Unicode (lone surrogates) must be refused, not narrowed.
    let raw: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
        .collect();
    if let Ok(id) = SessionId::from_utf16(&raw) {
        assert!(raw.iter().all(|&u| u < 128 && is_id_byte(u as u8)));
        assert_eq!(id.as_str().len(), raw.len());
    }
});
