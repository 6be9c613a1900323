//! The SMTP wire protocol pieces Ember needs on both sides: replies with enhanced status codes,
//! line framing with hard length limits, the DATA receiver (dot-unstuffing), and SASL decoding. Commands are parsed by `smtp-proto`.
//!
//! Knows nothing about configuration files, policy or queues.

pub mod data;
pub mod line;
pub mod reply;
pub mod sasl;

pub use data::DataReceiver;
pub use line::{Line, LineReader};
pub use reply::Reply;
