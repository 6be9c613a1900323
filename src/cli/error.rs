//! Why a CLI command could not reach the daemon, read its answer, or open what it reads offline.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Printed after `ember: ` (or `ember: suppression: `); the texts are the CLI's output, which
/// operators' scripts and the integration tests read.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("the management API speaks plain HTTP on loopback; use http://")]
    Https,
    #[error("{text:?} is not a management address (http://HOST:PORT): {source}")]
    MgmtAddress {
        text: String,
        #[source]
        source: io::Error,
    },
    #[error("{0:?} resolves to no address")]
    NoAddress(String),
    #[error("the management API is disabled (http-mgmt-port 0)")]
    MgmtDisabled,

    #[error("cannot reach the daemon at {addr}: {source}")]
    Unreachable {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// Setting up the connection or sending the request failed.
    #[error("{0}")]
    Send(#[source] io::Error),
    #[error("reading the daemon's answer: {0}")]
    Read(#[source] io::Error),
    #[error("the daemon's answer has no body")]
    NoBody,
    #[error("malformed HTTP status line")]
    StatusLine,
    #[error("the daemon's answer is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// A status other than 200, with the envelope's `message`.
    #[error("the daemon refused: {status} {message}")]
    Refused { status: u16, message: String },

    /// `ember inject`'s recipient list.
    #[error("{}: {source}", path.display())]
    ReadList {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A line (counted from 1) of a recipient list, trimmed.
    #[error("{}:{line}: {text:?} is not an email address", path.display())]
    ListLine { path: PathBuf, line: usize, text: String },

    #[error("configuration has errors")]
    ConfigErrors,
    #[error("cannot read the spool: {0}")]
    Spool(#[source] crate::spool::SpoolError),
    /// The suppression journal is locked by a daemon whose API (at `addr`, when known) is silent.
    #[error(
        "{} is held by a running daemon, but its management API{} does not answer",
        path.display(),
        addr.map(|a| format!(" at {a}")).unwrap_or_default()
    )]
    Locked { path: PathBuf, addr: Option<SocketAddr> },
    #[error(transparent)]
    Store(crate::hygiene::store::StoreError),
}

impl CliError {
    /// The daemon's refusal, from its JSON envelope.
    pub(super) fn refused(status: u16, json: &serde_json::Value) -> CliError {
        CliError::Refused { status, message: json["message"].as_str().unwrap_or("").to_string() }
    }
}
