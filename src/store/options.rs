//! Store options as JavaScript hands them over: JSON text with the option names of each
//! store's JS peer (camelCase). Numbers arrive as JavaScript numbers, so each is checked
//! here once, with an error that names the option.

use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::session::DEFAULT_MAX_BYTES;
use crate::store::Format;

/// `json` as the options of `store`; an unknown option name is refused, not ignored.
pub fn parse<T: DeserializeOwned>(store: &'static str, json: &str) -> Result<T> {
    serde_json::from_str(json).map_err(|e| Error::InvalidOption {
        name: "options",
        reason: format!("{store} store: {e}"),
    })
}

/// A positive whole number; `default` when not given.
pub fn count(name: &'static str, value: Option<f64>, default: usize) -> Result<usize> {
    match value {
        None => Ok(default),
        Some(v) if v.fract() == 0.0 && (1.0..=9e15).contains(&v) => Ok(v as usize),
        Some(v) => Err(Error::InvalidOption {
            name,
            reason: format!("{v} is not a positive whole number"),
        }),
    }
}

/// Milliseconds as a timeout; `default` when not given.
pub fn millis(name: &'static str, value: Option<f64>, default: Duration) -> Result<Duration> {
    Ok(match value {
        None => default,
        Some(ms) => Duration::from_millis(count(name, Some(ms.trunc()), 0)? as u64),
    })
}

/// Milliseconds as a lifetime; fractions are cut, non-numbers refused.
pub fn lifetime_ms(name: &'static str, ms: f64) -> Result<i64> {
    if !(1.0..=9e15).contains(&ms) {
        return Err(Error::InvalidOption {
            name,
            reason: format!("{ms} is not a positive number of milliseconds"),
        });
    }
    Ok(ms as i64)
}

/// `maxBytes`: most bytes of JSON per session, [`DEFAULT_MAX_BYTES`] when not given.
pub fn max_bytes(value: Option<f64>) -> Result<usize> {
    count("maxBytes", value, DEFAULT_MAX_BYTES)
}

/// The `format` option: 'thinkjs3' (the default) or 'thinkjs2'.
pub fn format(value: Option<&str>) -> Result<Format> {
    match value {
        None | Some("thinkjs3") => Ok(Format::ThinkJs3),
        Some("thinkjs2") => Ok(Format::ThinkJs2),
        Some(other) => Err(Error::InvalidOption {
            name: "format",
            reason: format!("{other:?} is neither 'thinkjs3' nor 'thinkjs2'"),
        }),
    }
}

/// Store calls that may wait at once when the options say nothing (`maxPending`).
pub const DEFAULT_MAX_PENDING: usize = 1024;

/// `maxPending` taken out of a store's options: it bounds the calls waiting on the store,
/// which the bindings count, not the store. The rest goes to the store as it came.
pub fn take_max_pending(json: &str) -> Result<(String, usize)> {
    let Ok(mut map) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(json)
    else {
        return Ok((json.to_owned(), DEFAULT_MAX_PENDING)); // the store says what is wrong
    };
    let limit = match map.remove("maxPending") {
        None | Some(serde_json::Value::Null) => DEFAULT_MAX_PENDING,
        Some(value) => count(
            "maxPending",
            Some(value.as_f64().unwrap_or(f64::NAN)),
            DEFAULT_MAX_PENDING,
        )?,
    };
    let rest = serde_json::Value::Object(map).to_string();
    Ok((rest, limit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_pending_is_taken_out_of_the_options() {
        let (rest, limit) = take_max_pending(r#"{"url":"redis://x","maxPending":8}"#).unwrap();
        assert_eq!((rest.as_str(), limit), (r#"{"url":"redis://x"}"#, 8));
        let (_, limit) = take_max_pending(r#"{"url":"redis://x"}"#).unwrap();
        assert_eq!(limit, DEFAULT_MAX_PENDING);
        let err = take_max_pending(r#"{"maxPending":0}"#).unwrap_err();
        assert!(err.to_string().contains("maxPending"), "{err}");
    }

    #[test]
    fn numbers_are_checked_with_the_option_named() {
        assert_eq!(count("n", None, 7).unwrap(), 7);
        assert_eq!(count("n", Some(3.0), 7).unwrap(), 3);
        for bad in [0.0, -1.0, 1.5, f64::NAN, f64::INFINITY] {
            let err = count("maxEntries", Some(bad), 7).unwrap_err();
            assert!(err.to_string().contains("maxEntries"), "{err}");
        }
        assert_eq!(
            millis("t", Some(1500.7), Duration::ZERO).unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(lifetime_ms("maxAge", 10.9).unwrap(), 10);
        assert!(lifetime_ms("maxAge", 0.0).is_err());
        assert!(lifetime_ms("maxAge", f64::NAN).is_err());
        assert_eq!(max_bytes(None).unwrap(), DEFAULT_MAX_BYTES);
        assert!(format(Some("xml")).is_err());
    }
}
