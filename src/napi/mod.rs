//! Node bindings: type and error conversion only, no session logic.

use napi_derive::napi;

use crate::error::{Error, ErrorCode};

mod memory;

pub type Result<T> = napi::Result<T, ErrorCode>;

impl From<Error> for napi::Error<ErrorCode> {
    fn from(err: Error) -> Self {
        napi::Error::new(err.code(), err.to_string())
    }
}

/// True when `id` may be used as a session id: `[A-Za-z0-9_-]`, 8 to 128 characters.
#[napi]
pub fn is_valid_id(id: String) -> bool {
    crate::id::is_valid(&id)
}

/// A fresh session id: a uuid v4 from the operating system's secure random source.
#[napi]
pub fn generate_id() -> Result<String> {
    Ok(crate::id::SessionId::generate()?.as_str().to_owned())
}

fn parse_id(id: &str) -> Result<crate::id::SessionId> {
    Ok(crate::id::SessionId::parse(id)?)
}

/// Milliseconds from JavaScript as a lifetime; fractions are cut, non-numbers refused.
fn whole_ms(name: &'static str, ms: f64) -> Result<i64> {
    if !ms.is_finite() || ms <= 0.0 || ms > 9e15 {
        return Err(Error::InvalidOption {
            name,
            reason: format!("{ms} is not a positive number of milliseconds"),
        }
        .into());
    }
    Ok(ms as i64)
}

fn whole_count(name: &'static str, value: Option<f64>, default: usize) -> Result<usize> {
    match value {
        None => Ok(default),
        Some(v) if v.is_finite() && v >= 1.0 && v <= 9e15 => Ok(v as usize),
        Some(v) => Err(Error::InvalidOption {
            name,
            reason: format!("{v} is not a positive whole number"),
        }
        .into()),
    }
}
