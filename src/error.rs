//! One error type for the whole core; each variant carries its cause and maps to a
//! stable code that reaches JavaScript as `error.code`.

use std::fmt;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A session id outside the accepted alphabet or length (G5).
    #[error("invalid session id: {0}")]
    InvalidId(String),

    /// The merged record is over the store's size limit (G7); nothing was written.
    #[error("session data is {size} bytes, over the limit of {limit} bytes (raise `maxBytes` or store less)")]
    TooLarge { size: usize, limit: usize },

    /// A value or patch that is not a JSON object of JSON values.
    #[error("session value rejected: {0}")]
    InvalidValue(String),

    /// A store option with a value that cannot work.
    #[error("invalid option `{name}`: {reason}")]
    InvalidOption { name: &'static str, reason: String },

    /// The store has `limit` calls waiting already: this one is refused at once, so a slow
    /// store sheds load instead of queueing without bound.
    #[error(
        "{store} store is busy: {limit} calls are waiting already (`maxPending`); try again later"
    )]
    Busy { store: &'static str, limit: usize },

    /// The store failed or returned data it cannot trust (G3).
    #[error("{store} store: {source}")]
    Store {
        store: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    pub fn store(
        store: &'static str,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::Store {
            store,
            source: source.into(),
        }
    }

    /// The message JavaScript sees: this error and every cause below the one it names
    /// itself, so a driver's underlying reason (a refused connection under a pool
    /// timeout, say) is not lost on the way.
    pub fn message(&self) -> String {
        let mut message = self.to_string();
        let mut cause = std::error::Error::source(self).and_then(|s| s.source());
        while let Some(err) = cause {
            let text = err.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            cause = err.source();
        }
        message
    }

    /// The stable code JavaScript sees; documented in the README.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::InvalidId(_) => ErrorCode::InvalidId,
            Error::TooLarge { .. } => ErrorCode::TooLarge,
            Error::InvalidValue(_) => ErrorCode::InvalidValue,
            Error::InvalidOption { .. } => ErrorCode::InvalidOption,
            Error::Busy { .. } => ErrorCode::Busy,
            Error::Store { .. } => ErrorCode::Store,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("pool timed out")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn the_message_keeps_every_cause() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err = Error::store("db", Outer(refused));
        assert_eq!(err.message(), "db store: pool timed out: refused");
        assert_eq!(
            Error::InvalidId("x".into()).message(),
            "invalid session id: x"
        );
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidId,
    TooLarge,
    InvalidValue,
    InvalidOption,
    Busy,
    Store,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidId => "ERR_SESSION_INVALID_ID",
            ErrorCode::TooLarge => "ERR_SESSION_TOO_LARGE",
            ErrorCode::InvalidValue => "ERR_SESSION_VALUE",
            ErrorCode::InvalidOption => "ERR_SESSION_OPTIONS",
            ErrorCode::Busy => "ERR_SESSION_BUSY",
            ErrorCode::Store => "ERR_SESSION_STORE",
        }
    }
}

impl AsRef<str> for ErrorCode {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
