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

    /// A fresh uuid v4 (122 random bits from the OS), the format think-session issues.
    pub fn generate() -> Result<Self> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|e| Error::store("random", e.to_string()))?;
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Ok(SessionId(format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        )))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id alphabet: `[A-Za-z0-9_-]`, nothing that a path, a key pattern or SQL gives meaning.
pub fn is_id_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// True when `id` may be used as a session id.
pub fn is_valid(id: &str) -> bool {
    check(id).is_ok()
}

fn check(id: &str) -> Result<()> {
    if id.len() < MIN_LEN || id.len() > MAX_LEN {
        return Err(Error::InvalidId(format!(
            "length {} is outside {MIN_LEN}..={MAX_LEN}",
            id.len()
        )));
    }
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
    fn generated_ids_are_uuid_v4_and_distinct() {
        let a = SessionId::generate().unwrap();
        let b = SessionId::generate().unwrap();
        assert_ne!(a, b);
        let s = a.as_str();
        assert_eq!(s.len(), 36);
        assert_eq!(&s[14..15], "4");
        assert!(matches!(&s[19..20], "8" | "9" | "a" | "b"));
        assert!(is_valid(s));
    }
}
