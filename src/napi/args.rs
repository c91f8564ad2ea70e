//! String arguments read as UTF-16. napi-rs reads a `String` as UTF-8 in two passes over
//! the string (measure, then copy into a zeroed buffer), and V8's UTF-8 writer is its
//! slow path: for a 36-character id that was most of a store call. Asking for UTF-16 is
//! one length query and one plain copy. Each argument keeps its validation error so that
//! the call rejects with the package's error code rather than a napi status.

use std::mem::MaybeUninit;
use std::ptr;

use napi::bindgen_prelude::FromNapiValue;
use napi::{sys, Status};

use crate::error::Error;
use crate::id::{SessionId, MAX_LEN};

/// A session id argument, checked (G5) before any store sees it.
pub struct IdArg(pub crate::Result<SessionId>);

/// A string argument as UTF-8; a lone surrogate (not Unicode) is a value error.
pub struct TextArg(pub crate::Result<String>);

impl FromNapiValue for IdArg {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Self> {
        // One unit past the longest id tells "too long" without copying the rest.
        let mut buffer = [MaybeUninit::<u16>::uninit(); MAX_LEN + 2];
        let units = unsafe { read_utf16(env, value, &mut buffer, "session id")? };
        if units.len() > MAX_LEN {
            let length = unsafe { utf16_len(env, value, "session id")? };
            return Ok(IdArg(Err(Error::InvalidId(format!(
                "length {length} is over {MAX_LEN}"
            )))));
        }
        Ok(IdArg(SessionId::from_utf16(units)))
    }
}

/// Names and values of a request are short: those fit on the stack, no allocation.
const SHORT_TEXT: usize = 256;

impl FromNapiValue for TextArg {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Self> {
        let mut short = [MaybeUninit::<u16>::uninit(); SHORT_TEXT + 1];
        let units = unsafe { read_utf16(env, value, &mut short, "value")? };
        if units.len() < SHORT_TEXT {
            return Ok(TextArg(utf16_to_string(units)));
        }
        let length = unsafe { utf16_len(env, value, "value")? };
        let mut long = vec![MaybeUninit::<u16>::uninit(); length + 1];
        let units = unsafe { read_utf16(env, value, &mut long, "value")? };
        Ok(TextArg(utf16_to_string(units)))
    }
}

fn utf16_to_string(units: &[u16]) -> crate::Result<String> {
    if units.iter().all(|&u| u < 0x80) {
        let ascii = units.iter().map(|&u| u as u8).collect();
        return String::from_utf8(ascii).map_err(|e| Error::InvalidValue(e.to_string()));
    }
    String::from_utf16(units).map_err(|_| {
        Error::InvalidValue("a string holds a lone surrogate, which is not Unicode".into())
    })
}

unsafe fn utf16_len(env: sys::napi_env, value: sys::napi_value, what: &str) -> napi::Result<usize> {
    let mut length = 0;
    let status =
        unsafe { sys::napi_get_value_string_utf16(env, value, ptr::null_mut(), 0, &mut length) };
    check_string(status, what)?;
    Ok(length)
}

/// Copies up to `buffer.len() - 1` code units (napi keeps one for a terminator) and gives
/// back those it wrote; the buffer needs no zeroing first.
unsafe fn read_utf16<'a>(
    env: sys::napi_env,
    value: sys::napi_value,
    buffer: &'a mut [MaybeUninit<u16>],
    what: &str,
) -> napi::Result<&'a [u16]> {
    let mut copied = 0;
    let status = unsafe {
        sys::napi_get_value_string_utf16(
            env,
            value,
            buffer.as_mut_ptr().cast(),
            buffer.len(),
            &mut copied,
        )
    };
    check_string(status, what)?;
    // napi wrote `copied` units (and a terminator after them).
    Ok(unsafe { std::slice::from_raw_parts(buffer.as_ptr().cast(), copied.min(buffer.len())) })
}

fn check_string(status: sys::napi_status, what: &str) -> napi::Result<()> {
    match status {
        sys::Status::napi_ok => Ok(()),
        sys::Status::napi_string_expected => Err(napi::Error::new(
            Status::StringExpected,
            format!("the {what} must be a string"),
        )),
        other => Err(napi::Error::new(
            Status::from(other),
            format!("could not read the {what}"),
        )),
    }
}
