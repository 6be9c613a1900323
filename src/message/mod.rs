//! The message data model shared by ingress, spool, queues and delivery: identifiers, the
//! envelope and per-recipient state, and (in `headers`) reading and editing a message's header
//! block.
//!
//! Knows nothing about SMTP sessions or files; it is what crosses the boundaries between them.

pub mod headers;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A message's identity, unique on this host (the spool persists the counter). Printed as 16
/// hex digits, which is also how operators name it in `ember list`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MessageId(pub u64);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl FromStr for MessageId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        u64::from_str_radix(s, 16).map(MessageId)
    }
}

/// RFC 3461 NOTIFY flags of one recipient.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notify {
    pub success: bool,
    pub failure: bool,
    pub delay: bool,
    /// NOTIFY=NEVER was given explicitly.
    pub never: bool,
}

impl Notify {
    /// No NOTIFY parameter: failures (and delays) are reported, per RFC 3461 §4.1.
    pub fn is_default(&self) -> bool {
        *self == Notify::default()
    }
}

/// RFC 3461 RET: how much of the message a DSN returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ret {
    Full,
    Headers,
}

/// Where a recipient stands. Final states are never left.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecipientState {
    /// Waiting for its first or next attempt; `not_before` is a Unix time in seconds (0: now).
    Pending {
        not_before: u64,
        attempts: u32,
    },
    Delivered,
    Bounced,
    /// Removed by an operator (`ember delete`).
    Deleted,
}

impl RecipientState {
    pub fn is_final(&self) -> bool {
        !matches!(self, RecipientState::Pending { .. })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// The address as given in RCPT TO, without angle brackets.
    pub address: String,
    /// ORCPT, as given (`rfc822;x@y`).
    pub orcpt: Option<String>,
    pub notify: Notify,
    pub state: RecipientState,
}

impl Recipient {
    pub fn new(address: impl Into<String>) -> Self {
        Recipient {
            address: address.into(),
            orcpt: None,
            notify: Notify::default(),
            state: RecipientState::Pending { not_before: 0, attempts: 0 },
        }
    }

    /// The domain part, lower case (the queue a recipient belongs to before `queue-to`).
    pub fn domain(&self) -> String {
        self.address.rsplit_once('@').map_or_else(String::new, |(_, d)| d.to_lowercase())
    }
}

/// `Origin::kind` of the TLS-RPT reports Ember mails: signed at delivery for their From
/// domain whatever the queue's `dkim-sign` (delivery/prepare.rs).
pub const TLSRPT_ORIGIN: &str = "tlsrpt";

/// How the message came in, for accounting (`srcType`, `srcMta`) and Received headers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// `smtp`, `pickup`, `api`.
    pub kind: String,
    /// The client's EHLO/HELO name (empty for pickup).
    pub helo: String,
    pub client_ip: Option<std::net::IpAddr>,
    /// The local address the client connected to.
    pub local_ip: Option<std::net::IpAddr>,
    pub auth_user: Option<String>,
    /// The named `<source>` blocks the injecting connection matched besides its IP (the
    /// listener's source, `{auth}` and the user's, `{pickup}`), general first: with `client_ip`
    /// they give the message's source settings again after it is spooled (`suppress-local-dsn`,
    /// `dsn-return-default`, `verp-default`, …). Empty for mail Ember makes itself.
    #[serde(default)]
    pub sources: Vec<String>,
}

/// Everything about a message except its content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Assigned by the spool when the message is stored.
    pub id: MessageId,
    /// MAIL FROM, empty for the null sender `<>`.
    pub sender: String,
    pub recipients: Vec<Recipient>,
    /// Virtual MTA or pool selected at injection; `None` means `{default}`.
    pub vmta: Option<String>,
    pub job_id: Option<String>,
    pub env_id: Option<String>,
    pub ret: Option<Ret>,
    /// The message carries 8-bit content (BODY=8BITMIME) or needs SMTPUTF8.
    pub eight_bit: bool,
    pub smtputf8: bool,
    /// Unix time in milliseconds when the message was accepted.
    pub arrival_ms: u64,
    /// The `recipient-priority` (0 to 100) the source's `<pattern-list>` chose; `None` when it
    /// chose none.
    #[serde(default)]
    pub priority: Option<u8>,
    /// The `X-DKIM-Options` header value, taken off the message at injection when its source has
    /// `process-x-dkim-options`; it overrides the queue's signing options at delivery.
    #[serde(default)]
    pub dkim_options: Option<String>,
    pub origin: Origin,
}

impl Envelope {
    /// A message from `sender` to `recipients` before the spool stores it (id 0), with nothing
    /// else set but what the addresses imply (`smtputf8` for a non-ASCII one). Callers set the
    /// rest with struct update syntax: `Envelope { vmta, origin, ..Envelope::new(s, r) }`.
    pub fn new(sender: String, recipients: Vec<Recipient>) -> Envelope {
        Envelope {
            id: MessageId(0),
            smtputf8: !sender.is_ascii() || recipients.iter().any(|r| !r.address.is_ascii()),
            sender,
            recipients,
            vmta: None,
            job_id: None,
            env_id: None,
            ret: None,
            eight_bit: false,
            arrival_ms: 0,
            priority: None,
            dkim_options: None,
            origin: Origin::default(),
        }
    }

    pub fn live_recipients(&self) -> impl Iterator<Item = (usize, &Recipient)> {
        self.recipients.iter().enumerate().filter(|(_, r)| !r.state.is_final())
    }

    pub fn is_dead(&self) -> bool {
        self.recipients.iter().all(|r| r.state.is_final())
    }
}
