//! Node bindings: type and error conversion only, no session logic.

use std::borrow::Cow;
use std::sync::RwLock;
use std::time::Duration;

use napi::bindgen_prelude::{AsyncTask, Either, ToNapiValue, TypeName};
use napi::{Env, JsError, JsString, Status, Task};
use napi_derive::napi;

use crate::error::{Error, ErrorCode};
use crate::session::Patch;
use crate::store::Format;

mod args;
#[cfg(feature = "db")]
mod db;
mod file;
mod io;
mod memory;
#[cfg(feature = "redis")]
mod redis;

use args::{IdArg, TextArg};

pub type Result<T> = napi::Result<T, ErrorCode>;

impl From<Error> for napi::Error<ErrorCode> {
    fn from(err: Error) -> Self {
        napi::Error::new(err.code(), err.to_string())
    }
}

/// Stores created from JavaScript, named there by their slot number. A plain function
/// taking a slot costs a tenth of a method call on a napi class, whose receiver is wrapped
/// in a fresh reference on every call; the per-request path cannot afford that. Stores
/// are made once per configuration and live as long as the process, so a slot hands out
/// a plain `&'static` with no reference count to keep.
pub struct Slots<T: 'static> {
    items: RwLock<Vec<&'static T>>,
}

impl<T> Slots<T> {
    pub const fn new() -> Self {
        Slots {
            items: RwLock::new(Vec::new()),
        }
    }

    pub fn insert(&self, item: T) -> u32 {
        let mut items = self.items.write().unwrap_or_else(|p| p.into_inner());
        items.push(Box::leak(Box::new(item)));
        (items.len() - 1) as u32
    }

    pub fn get(&self, slot: u32) -> Result<&'static T> {
        let items = self.items.read().unwrap_or_else(|p| p.into_inner());
        items.get(slot as usize).copied().ok_or_else(|| {
            Error::InvalidOption {
                name: "slot",
                reason: format!("no store was created in slot {slot}"),
            }
            .into()
        })
    }
}

/// A store call for the libuv thread pool, off the JS thread; a failure rejects with
/// an Error carrying the package's code, as synchronous calls throw.
pub struct Blocking<T> {
    work: Option<Box<dyn FnOnce() -> crate::Result<T> + Send>>,
    failure: Option<ErrorCode>,
}

pub fn blocking<T: ToNapiValue + TypeName + Send + 'static>(
    work: impl FnOnce() -> crate::Result<T> + Send + 'static,
) -> AsyncTask<Blocking<T>> {
    AsyncTask::new(Blocking {
        work: Some(Box::new(work)),
        failure: None,
    })
}

impl<T: ToNapiValue + TypeName + Send + 'static> Task for Blocking<T> {
    type Output = T;
    type JsValue = T;

    fn compute(&mut self) -> napi::Result<T> {
        let work = self
            .work
            .take()
            .ok_or_else(|| napi::Error::new(Status::GenericFailure, "a store task ran twice"))?;
        work().map_err(|err| {
            self.failure = Some(err.code());
            napi::Error::new(Status::GenericFailure, err.to_string())
        })
    }

    fn resolve(&mut self, _env: Env, output: T) -> napi::Result<T> {
        Ok(output)
    }

    fn reject(&mut self, env: Env, err: napi::Error) -> napi::Result<T> {
        match self.failure {
            Some(code) => {
                let error =
                    JsError::from(napi::Error::new(code, err.reason.clone())).into_unknown(env);
                Err(napi::Error::from(error))
            }
            None => Err(err),
        }
    }
}

/// A loaded session as the glue receives it: the data's JSON text, with a leading space
/// (which JSON.parse ignores) when the read also refreshed the expiry, so the glue knows
/// to send the cookie again.
fn loaded_text(data: &str, refreshed: bool) -> Cow<'_, str> {
    if refreshed {
        Cow::Owned(format!(" {data}"))
    } else {
        Cow::Borrowed(data)
    }
}

/// [`loaded_text`] for a store that hands over its data owned: no copy unless marked.
fn loaded_string(loaded: Option<(String, bool)>) -> Option<String> {
    loaded.map(|(data, refreshed)| {
        if refreshed {
            loaded_text(&data, true).into_owned()
        } else {
            data
        }
    })
}

/// The `format` option: 'thinkjs3' (the default) or 'thinkjs2'.
fn format_option(format: Option<&str>) -> Result<Format> {
    match format {
        None | Some("thinkjs3") => Ok(Format::ThinkJs3),
        Some("thinkjs2") => Ok(Format::ThinkJs2),
        Some(other) => Err(Error::InvalidOption {
            name: "format",
            reason: format!("{other:?} is neither 'thinkjs3' nor 'thinkjs2'"),
        }
        .into()),
    }
}

/// [`loaded_text`] as a JS string. Session data is mostly ASCII, which V8 takes as
/// Latin-1 with a plain copy instead of decoding UTF-8.
fn js_loaded_text<'env>(env: &'env Env, data: &str, refreshed: bool) -> Result<JsString<'env>> {
    let text = loaded_text(data, refreshed);
    let created = if text.is_ascii() {
        env.create_string_latin1(text.as_bytes())
    } else {
        env.create_string(&text)
    };
    created.map_err(|e| Error::store("node", e.reason).into())
}

/// True when `id` may be used as a session id: `[A-Za-z0-9_-]`, 8 to 128 characters.
#[napi(ts_args_type = "id: string")]
pub fn is_valid_id(id: IdArg) -> bool {
    id.0.is_ok()
}

/// A fresh session id from the operating system's secure random source: `length`
/// characters of `[A-Za-z0-9_]` (as ThinkJS 2's `cookie.length`), 32 when not given (190
/// bits), never fewer than 22 (130 bits).
#[napi]
pub fn generate_id(length: Option<f64>) -> Result<String> {
    let id = match length {
        None => crate::id::SessionId::generate()?,
        Some(len) => crate::id::SessionId::generate_of_len(whole_count("length", Some(len), 0)?)?,
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

/// The patch of one `set(name, value)` (value: the JSON text; `null` removes the key),
/// or of `update()` when `name` is null.
fn patch_of(name: Option<TextArg>, value: Option<TextArg>, max_age_ms: f64) -> Result<Patch> {
    let mut patch = Patch::new(whole_ms("maxAge", max_age_ms)?)?;
    if let Some(name) = name {
        let value = value.ok_or_else(|| {
            Error::InvalidValue("a name needs a value: JSON text, or null to remove the key".into())
        })?;
        patch.set(name.0?, value.0?)?;
    }
    Ok(patch)
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
        Some(v) if (1.0..=9e15).contains(&v) => Ok(v as usize),
        Some(v) => Err(Error::InvalidOption {
            name,
            reason: format!("{v} is not a positive whole number"),
        }
        .into()),
    }
}

/// Milliseconds from JavaScript as a timeout; `default` when not given.
fn duration(name: &'static str, ms: Option<f64>, default: Duration) -> Result<Duration> {
    Ok(match ms {
        None => default,
        Some(ms) => Duration::from_millis(whole_count(name, Some(ms), 0)? as u64),
    })
}
