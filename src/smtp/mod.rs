//! The SMTP wire protocol pieces Ember needs on both sides: replies with enhanced status codes,
//! line framing with hard length limits, and SASL decoding. Commands are parsed by `smtp-proto`.
//!
//! Knows nothing about configuration files, policy or queues.

pub mod line;
pub mod reply;
pub mod sasl;

pub use line::{Line, LineReader};
pub use reply::Reply;
