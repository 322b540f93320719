//! Sentio's shared core: wire types, request metadata, the error kinds and their one HTTP status
//! table, configuration, and the endpoint logic that every tier's thin shell calls.
//!
//! Pure Rust with no I/O: compiles for native targets and `wasm32-wasip2`.

pub mod audit;
pub mod config;
pub mod context;
pub mod envelope;
pub mod error;
pub mod http;
pub mod metadata;
pub mod redact_api;
pub mod routing;
pub mod sentiment_api;
pub mod texts;

pub use config::{AuditForwarding, ConfigError, EdgeConfig, EscalationThresholds, RoutingConfig};
pub use context::RequestContext;
pub use envelope::Envelope;
pub use error::ApiError;
pub use metadata::{Metadata, Priority};
pub use sentiment_api::Tier;
pub use texts::Texts;
