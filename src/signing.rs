//! Signed cookie values in ThinkJS 2's format: `value.signature`, the signature being the
//! HMAC-SHA256 of the value under the secret, in standard base64 without `=` padding. A
//! value is accepted when the signature of any listed secret matches, compared in constant
//! time, so a secret can be rotated: sign with the new one, keep the old one listed.

use base64::engine::general_purpose::STANDARD_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &str, value: &str) -> HmacSha256 {
    // HMAC takes a key of any length.
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(value.as_bytes());
    mac
}

/// `value` followed by `.` and its signature under `secret`, as ThinkJS 2's `Cookie.sign`.
pub fn sign(value: &str, secret: &str) -> String {
    let signature = mac(secret, value).finalize().into_bytes();
    format!("{value}.{}", STANDARD_NO_PAD.encode(signature))
}

/// The value of a signed `cookie` when one of `secrets` signed it; `None` for a missing,
/// truncated, malformed or foreign signature.
pub fn unsign<'a>(cookie: &'a str, secrets: &[&str]) -> Option<&'a str> {
    let (value, signature) = cookie.rsplit_once('.')?;
    let signature = STANDARD_NO_PAD.decode(signature).ok()?;
    secrets
        .iter()
        .any(|secret| mac(secret, value).verify_slice(&signature).is_ok())
        .then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_as_thinkjs2_does() {
        // From ThinkJS 2.2.25's Cookie.sign('abc', 'secret').
        assert_eq!(
            sign("abc", "secret"),
            "abc.mUba1OAOkT/Ivo5dP34RCkqegy+D+wnDRShdeGONig4"
        );
    }

    #[test]
    fn unsigns_with_any_listed_secret_and_nothing_else() {
        let cookie = sign("session-id-1", "old");
        assert_eq!(unsign(&cookie, &["new", "old"]), Some("session-id-1"));
        assert_eq!(unsign(&cookie, &["new"]), None, "a retired secret");
        assert_eq!(
            unsign(&cookie[..cookie.len() - 2], &["old"]),
            None,
            "truncated"
        );
        let tampered = cookie.replacen("session-id-1", "session-id-2", 1);
        assert_eq!(unsign(&tampered, &["old"]), None, "tampered value");
        for bad in ["", "no-dot", "x.", ".", "x.!!!!", "x.====", "a.b.c"] {
            assert_eq!(unsign(bad, &["old"]), None, "{bad:?}");
        }
        assert_eq!(unsign(&cookie, &[]), None, "no secret");
    }
}
