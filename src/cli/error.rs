//! Why a CLI command could not reach the daemon (address, TLS, connection), read its answer, or
//! open what it reads offline.

use std::io;
use std::path::PathBuf;

/// Printed after `ember: ` (or `ember: suppression: `); the texts are the CLI's output, which
/// operators' scripts and the integration tests read.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0:?}: the management API is reached over http:// or https://")]
    MgmtScheme(String),
    #[error("{0:?}: the port is not a number")]
    MgmtPort(String),
    #[error("{text:?} is not a management address (http://HOST:PORT or https://HOST:PORT): {source}")]
    MgmtAddress {
        text: String,
        #[source]
        source: io::Error,
    },
    #[error("{0:?} resolves to no address")]
    NoAddress(String),
    #[error("the management API is disabled (http-mgmt-port 0)")]
    MgmtDisabled,

    /// `--mgmt-ca`: unreadable, or holding no PEM certificate.
    #[error("--mgmt-ca {}: {reason}", path.display())]
    CaFile { path: PathBuf, reason: String },
    /// The TLS handshake failed on the daemon's certificate (the reason as rustls gives it).
    #[error(
        "the daemon's certificate at {url} is not trusted ({reason}); give the CA that signed it \
         (or the certificate itself, when self-signed) with --mgmt-ca FILE"
    )]
    Certificate { url: String, reason: String },
    #[error("cannot reach the daemon at {url}: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: Box<ureq::Error>,
    },
    /// A plain-HTTP request was answered with a redirect (`http-redirect-to-https yes`).
    #[error("the daemon at {url} redirects to {location}; use --mgmt {location_base}")]
    Redirected { url: String, location: String, location_base: String },
    #[error("reading the daemon's answer: {0}")]
    Read(#[source] Box<ureq::Error>),
    /// Writing an answer (an export) to its file or standard output.
    #[error("writing the answer: {0}")]
    Write(#[source] io::Error),
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
        mgmt.as_ref().map(|m| format!(" at {m}")).unwrap_or_default()
    )]
    Locked { path: PathBuf, mgmt: Option<super::remote::Mgmt> },
    #[error(transparent)]
    Store(crate::hygiene::store::StoreError),
}

impl CliError {
    /// The daemon's refusal, from its JSON envelope.
    pub(super) fn refused(status: u16, json: &serde_json::Value) -> CliError {
        CliError::Refused { status, message: json["message"].as_str().unwrap_or("").to_string() }
    }
}
