//! Node bindings: type and error conversion only, no session logic. Every store is
//! reached through one class over the `SessionStore` trait (`store`); the rest are the
//! id and cookie helpers the glue needs, and the limits it reads from here.

use napi::bindgen_prelude::Either;
use napi_derive::napi;

use crate::error::{Error, ErrorCode};
use crate::store::options;

mod args;
mod event_loop;
mod promise;
mod runtime;
mod store;

pub type Result<T> = napi::Result<T, ErrorCode>;

impl From<Error> for napi::Error<ErrorCode> {
    fn from(err: Error) -> Self {
        napi::Error::new(err.code(), err.message())
    }
}

/// Most bytes of JSON per session when a store's `maxBytes` is not given (1 MiB).
#[napi]
pub const DEFAULT_MAX_BYTES: u32 = crate::session::DEFAULT_MAX_BYTES as u32;

/// The longest session id, and so the longest session cookie, that is looked up; a
/// longer one gets a fresh session.
#[napi]
pub const MAX_ID_LENGTH: u32 = crate::id::MAX_LEN as u32;

/// How this binary was built: 'release' or 'debug' (`npm pack` refuses a debug one).
#[napi]
pub fn build_profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

/// True when `id` may be used as a session id: `[A-Za-z0-9_-]`, 8 to 128 characters.
#[napi(ts_args_type = "id: string")]
pub fn is_valid_id(id: args::IdArg) -> bool {
    id.0.is_ok()
}

/// A fresh session id from the operating system's secure random source: `length`
/// characters of `[A-Za-z0-9_]` (as ThinkJS 2's `cookie.length`), 32 when not given (190
/// bits), never fewer than 22 (130 bits).
#[napi]
pub fn generate_id(length: Option<f64>) -> Result<String> {
    let id = match length {
        None => crate::id::SessionId::generate()?,
        Some(len) => {
            crate::id::SessionId::generate_of_len(options::count("length", Some(len), 0)?)?
        }
    };
    Ok(id.as_str().to_owned())
}

/// `value` signed with `secret` in ThinkJS 2's cookie format: `value.` followed by the
/// HMAC-SHA256 in base64 without padding.
#[napi]
pub fn sign(value: String, secret: String) -> Result<String> {
    if secret.is_empty() {
        return Err(Error::InvalidOption {
            name: "secret",
            reason: "an empty secret signs nothing".into(),
        }
        .into());
    }
    Ok(crate::signing::sign(&value, &secret))
}

/// The value of a cookie `sign` made with one of `secrets` (a secret or a list: the first
/// signs, any verifies), or null when the signature is missing, truncated or foreign.
/// Signatures are compared in constant time.
#[napi(ts_args_type = "cookie: string, secrets: string | string[]")]
pub fn unsign(cookie: String, secrets: Either<String, Vec<String>>) -> Option<String> {
    let secrets: Vec<&str> = match &secrets {
        Either::A(secret) => vec![secret.as_str()],
        Either::B(list) => list.iter().map(String::as_str).collect(),
    };
    let secrets: Vec<&str> = secrets.into_iter().filter(|s| !s.is_empty()).collect();
    crate::signing::unsign(&cookie, &secrets).map(str::to_owned)
}
