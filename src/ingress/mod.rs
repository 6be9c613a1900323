//! Injection: SMTP listeners and sessions, the source policy that governs them, AUTH, suppression
//! at RCPT, and turning an accepted transaction into an envelope and body for the spool.
//!
//! Never decides delivery. Stores through the `MessageSink` trait, so it does not depend on the
//! spool's internals and its sessions can be tested against an in-memory sink.

pub mod added;
pub mod aliases;
pub mod commands;
pub mod context;
pub mod finish;
pub mod groups;
pub mod intake;
pub mod listener;
pub mod patterns;
pub mod pickup;
pub mod policy;
pub mod session;
pub mod suppression;
pub mod tls;
pub mod transmissions;
pub mod users;

use std::future::Future;
use std::pin::Pin;

use crate::message::{Envelope, MessageId};

/// Why a message could not be stored.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// Below the spool's free-space floor: a temporary condition (`452 4.3.1`).
    #[error("{0}")]
    Full(String),
    /// Anything else (I/O error, spool closed): also temporary for the client (`451 4.3.0`).
    #[error("{0}")]
    Failed(String),
}

pub type StoreFuture<'a> = Pin<Box<dyn Future<Output = Result<MessageId, StoreError>> + Send + 'a>>;

/// Where accepted messages go. Resolving `Ok` is the durability promise behind a `250`.
pub trait MessageSink: Send + Sync {
    fn store(&self, envelope: Envelope, body: Vec<u8>) -> StoreFuture<'_>;
}
