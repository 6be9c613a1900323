//! Delivery: getting a message from the spool to the destination's MX hosts. MX resolution
//! (`mx`), the SMTP client transaction (`client`), and the outcome of each attempt per
//! recipient; local delivery types (`local`: discard, file, pipe). Knows nothing about how work
//! is chosen (that is `queue`).

pub mod added;
pub mod client;
pub mod local;
pub mod mx;
pub mod prepare;
pub mod tls_policy;
pub mod verp;

use std::sync::Arc;

use crate::message::Notify;
use crate::message::Ret;
use crate::smtp::Reply;

/// One message as the SMTP client sends it.
#[derive(Clone, Debug)]
pub struct OutgoingMessage {
    /// MAIL FROM; empty for the null sender (DSNs).
    pub sender: String,
    pub recipients: Vec<OutgoingRecipient>,
    pub env_id: Option<String>,
    pub ret: Option<Ret>,
    pub eight_bit: bool,
    pub smtputf8: bool,
    /// The message with CRLF line endings, not dot-stuffed.
    pub body: Arc<Vec<u8>>,
}

#[derive(Clone, Debug)]
pub struct OutgoingRecipient {
    pub address: String,
    pub notify: Notify,
    /// ORCPT address (sent as `rfc822;ADDR`, xtext-encoded).
    pub orcpt: Option<String>,
}

/// What the receiver said about one transaction.
#[derive(Clone, Debug)]
pub struct TransactionOutcome {
    /// One entry per recipient of the message, in order: the RCPT reply, or — when RCPT was
    /// accepted — the reply to the end of data (the same for all accepted recipients, except
    /// with LMTP, which Ember does not speak).
    pub recipients: Vec<Reply>,
}
