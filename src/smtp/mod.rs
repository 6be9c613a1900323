//! The SMTP wire protocol pieces Ember needs on both sides: replies with enhanced status codes,
//! line framing with hard length limits, the DATA receiver (dot-unstuffing), SASL decoding,
//! message data as `log-data` writes it to the log, and the names of a negotiated TLS session.
//! Commands are parsed by `smtp-proto`.
//!
//! Knows nothing about configuration files, policy or queues.

pub mod data;
pub mod datalog;
pub mod line;
pub mod reply;
pub mod sasl;
pub mod tls;

pub use data::DataReceiver;
pub use line::{Line, LineReader};
pub use reply::Reply;
