//! Session ids: the one validator every store relies on (G5), and generation.
//!
//! Accepted ids are what ThinkJS itself issues: uuid v4 from think-session (3/4, with
//! or without dashes) and `think.uuid(length)` from ThinkJS 2 (`[A-Za-z0-9_]`). Nothing
//! else reaches a path, a key or a query, so an id can never name a file outside the
//! store, a key pattern or SQL text.

use std::fmt;

use crate::error::{Error, Result};

pub const MIN_LEN: usize = 8;
pub const MAX_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(String);

impl SessionId {
    pub fn parse(id: &str) -> Result<Self> {
        check(id)?;
        Ok(SessionId(id.to_owned()))
    }

    /// As [`SessionId::parse`], keeping the string it is given.
    pub fn from_string(id: String) -> Result<Self> {
        check(&id)?;
        Ok(SessionId(id))
    }

    /// As [`SessionId::parse`], from the UTF-16 code units a JS string is made of. A unit
    /// outside ASCII is refused as it is, never narrowed to a byte that might pass.
    pub fn from_utf16(units: &[u16]) -> Result<Self> {
        check_len(units.len())?;
        if let Some(&unit) = units.iter().find(|&&u| u >= 128 || !ID_BYTES[u as usize]) {
            return Err(Error::InvalidId(format!(
                "character U+{unit:04X} is outside [A-Za-z0-9_-]"
            )));
        }
        // Every unit is an id byte, so narrowing each is exact and the bytes are ASCII.
        let bytes = units.iter().map(|&u| u as u8).collect();
        String::from_utf8(bytes)
            .map(SessionId)
            .map_err(|e| Error::InvalidId(e.to_string()))
    }

    /// A fresh id of [`DEFAULT_LEN`] characters: 190 random bits from the OS, URL-safe
    /// (think-session's own uuid v4 carries 122).
    pub fn generate() -> Result<Self> {
        Self::generate_of_len(DEFAULT_LEN)
    }

    /// A fresh id of `len` characters of `[A-Za-z0-9_]`, ThinkJS 2's `think.uuid(len)`
    /// alphabet, 5.95 bits each from the OS; never shorter than [`MIN_RANDOM_LEN`].
    pub fn generate_of_len(len: usize) -> Result<Self> {
        const ALPHABET: &[u8; 63] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_";
        let len = len.clamp(MIN_RANDOM_LEN, MAX_LEN);
        let mut id = String::with_capacity(len);
        let mut bytes = [0u8; 64];
        while id.len() < len {
            getrandom::fill(&mut bytes).map_err(|e| Error::store("random", e.to_string()))?;
            // 252 = 4 * 63: bytes past it are dropped, so every character is equally likely.
            for &b in bytes.iter().filter(|&&b| b < 252) {
                if id.len() == len {
                    break;
                }
                id.push(ALPHABET[(b % 63) as usize] as char);
            }
        }
        Ok(SessionId(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The shortest generated id: 22 characters carry 130 random bits.
pub const MIN_RANDOM_LEN: usize = 22;

/// The length of ids issued when none is asked for.
pub const DEFAULT_LEN: usize = 32;

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id alphabet: `[A-Za-z0-9_-]`, nothing that a path, a key pattern or SQL gives meaning.
pub fn is_id_byte(b: u8) -> bool {
    ID_BYTES[b as usize]
}

/// [`is_id_byte`] as a table: one load per character on the per-request path.
const ID_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || c == b'-' || c == b'_';
        b += 1;
    }
    table
};

/// True when `id` may be used as a session id.
pub fn is_valid(id: &str) -> bool {
    check(id).is_ok()
}

fn check_len(len: usize) -> Result<()> {
    if !(MIN_LEN..=MAX_LEN).contains(&len) {
        return Err(Error::InvalidId(format!(
            "length {len} is outside {MIN_LEN}..={MAX_LEN}"
        )));
    }
    Ok(())
}

fn check(id: &str) -> Result<()> {
    check_len(id.len())?;
    match id.bytes().find(|b| !is_id_byte(*b)) {
        Some(b) => Err(Error::InvalidId(format!(
            "byte 0x{b:02x} is outside [A-Za-z0-9_-]"
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_ids_of_the_length_asked_for() {
        for len in [1, 22, 32, 40, 500] {
            let id = SessionId::generate_of_len(len).unwrap();
            assert_eq!(id.as_str().len(), len.clamp(MIN_RANDOM_LEN, MAX_LEN));
            assert!(id
                .as_str()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        }
        assert_ne!(
            SessionId::generate_of_len(32).unwrap(),
            SessionId::generate_of_len(32).unwrap()
        );
    }

    #[test]
    fn accepts_the_ids_thinkjs_issues() {
        assert!(is_valid("3b241101-e2bb-4255-8caf-4136c566a962"));
        assert!(is_valid("3b241101e2bb42558caf4136c566a962"));
        assert!(is_valid("aZ09_aZ09_aZ09_aZ09_aZ09_aZ09_ab"));
    }

    #[test]
    fn rejects_paths_patterns_sql_and_odd_lengths() {
        for bad in [
            "",
            "short",
            "../../etc/passwd",
            "..%2F..%2Fetc%2Fpasswd",
            "abc/defghijk",
            "abcdefgh\\ijk",
            "sess*ion-key-pattern",
            "x' OR '1'='1' --",
            "sessionid\0hidden",
            "séssion-identifier",
            "abcdefgh.json",
        ] {
            assert!(!is_valid(bad), "{bad:?} must be rejected");
        }
        assert!(!is_valid(&"a".repeat(MAX_LEN + 1)));
        assert!(is_valid(&"a".repeat(MAX_LEN)));
        assert_eq!(
            SessionId::parse("../x").unwrap_err().code().as_str(),
            "ERR_SESSION_INVALID_ID"
        );
    }

    #[test]
    fn utf16_ids_follow_the_same_rule() {
        let units = |s: &str| s.encode_utf16().collect::<Vec<u16>>();
        let id = SessionId::from_utf16(&units("3b241101-e2bb-4255-8caf-4136c566a962")).unwrap();
        assert_eq!(id.as_str(), "3b241101-e2bb-4255-8caf-4136c566a962");
        // U+0141 would narrow to 'A' and U+FF3F to '_': both must fail, not pass as ASCII.
        for bad in [
            "abcdefgh\u{141}",
            "abcdefgh\u{ff3f}",
            "../../abcdefgh",
            "short",
        ] {
            let err = SessionId::from_utf16(&units(bad)).unwrap_err();
            assert_eq!(err.code().as_str(), "ERR_SESSION_INVALID_ID", "{bad}");
        }
    }

    #[test]
    fn generated_ids_carry_at_least_128_bits_and_pass_the_validator() {
        let a = SessionId::generate().unwrap();
        let b = SessionId::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), DEFAULT_LEN);
        // 63 symbols: log2(63) * 32 = 191 bits
        assert!((DEFAULT_LEN as f64) * 63f64.log2() >= 128.0);
        assert!((MIN_RANDOM_LEN as f64) * 63f64.log2() >= 128.0);
        assert!(is_valid(a.as_str()));
    }
}
