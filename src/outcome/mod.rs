//! What happens after a message is accepted or attempted, as operators see it: accounting
//! records (PowerMTA's CSV format), DSN status texts, bounce categories and generated DSNs.
//!
//! Knows nothing about sockets; the queue and delivery code call in with typed facts.

pub mod acct;
pub mod category;
pub mod dsn;
pub mod status;
