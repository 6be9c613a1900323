//! What happens after a message is accepted or attempted, as operators see it: accounting
//! records (PowerMTA's CSV format), and later DSNs, bounce categories and suppression updates.
//!
//! Knows nothing about sockets.

pub mod acct;
