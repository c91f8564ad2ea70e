//! think-session-native: session storage for ThinkJS.
//!
//! The core (`session`, `id`, `store`) knows nothing of Node and is tested with
//! `cargo test`; the `node` feature adds the napi bindings in `napi`.

pub mod error;
pub mod id;
pub mod session;
pub mod store;

#[cfg(feature = "node")]
mod napi;

pub use error::{Error, ErrorCode, Result};
pub use id::SessionId;
pub use session::{now_ms, Patch, Record};
pub use store::SessionStore;
