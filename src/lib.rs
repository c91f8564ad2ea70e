//! think-session-native: session storage for ThinkJS.
//!
//! The core (`session`, `id`, `store`) knows nothing of Node and is tested with
//! `cargo test`; the `node` feature adds the napi bindings in `napi`.

pub mod error;
pub mod id;
pub mod session;
pub mod signing;
pub mod store;

// Test builds link no Node, so the bindings are left out of them.
#[cfg(all(feature = "node", not(test)))]
mod napi;

pub use error::{Error, ErrorCode, Result};
pub use id::SessionId;
pub use session::{now_ms, Patch, Record};
pub use store::SessionStore;
