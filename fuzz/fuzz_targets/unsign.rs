//! Unsigning cookies: never panics, accepts only what the secret signed (a signature that
//! verifies is the canonical one `sign` writes), and every signed value comes back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use think_session_native::signing::{sign, unsign};

fuzz_target!(|bytes: &[u8]| {
    // first byte: the secret's length; then the secret, then the cookie
    let Some((&n, rest)) = bytes.split_first() else {
        return;
    };
    let split = (n as usize).min(rest.len());
    let secret = String::from_utf8_lossy(&rest[..split]);
    let cookie = String::from_utf8_lossy(&rest[split..]);
    if let Some(value) = unsign(&cookie, &[&secret]) {
        assert_eq!(
            sign(value, &secret),
            cookie,
            "only the canonical signature verifies"
        );
    }
    let signed = sign(&cookie, &secret);
    assert_eq!(unsign(&signed, &[&secret]), Some(&*cookie));
    assert_eq!(
        unsign(&signed, &["another secret", &secret]),
        Some(&*cookie)
    );
    // HMAC pads short keys with zero bytes: "k" and "k\0" are one key.
    if secret.trim_end_matches('\0') != "another secret" {
        assert_eq!(unsign(&signed, &["another secret"]), None);
    }
    // cut anywhere inside the signature: refused
    for cut in [1, 2, 10, 43] {
        if let Some(truncated) = signed.get(..signed.len() - cut) {
            assert_eq!(unsign(truncated, &[&secret]), None, "cut {cut}");
        }
    }
});
