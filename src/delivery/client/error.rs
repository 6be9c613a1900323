//! What can go wrong on an outbound connection, as a typed error and as the SMTP reply that
//! accounting records and DSNs quote (`dsnDiag`). Server replies are kept as the server sent
//! them; failures without one get a synthetic reply with an RFC 3463 code.

use std::fmt;
use std::io;

use crate::smtp::Reply;

/// Where in the session something happened, for timeouts, drops and synthetic replies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Connect,
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    TlsHandshake,
    Auth,
    Mail,
    Rcpt,
    /// The `DATA` command (waiting for `354`).
    Data,
    /// Sending the message body.
    DataSend,
    /// Waiting for the reply to the end of data (`.` or `BDAT … LAST`).
    DataTermination,
    Rset,
    Quit,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Connect => "connect",
            Phase::Greeting => "greeting",
            Phase::Ehlo => "EHLO",
            Phase::Helo => "HELO",
            Phase::StartTls => "STARTTLS",
            Phase::TlsHandshake => "TLS handshake",
            Phase::Auth => "AUTH",
            Phase::Mail => "MAIL FROM",
            Phase::Rcpt => "RCPT TO",
            Phase::Data => "DATA",
            Phase::DataSend => "message transfer",
            Phase::DataTermination => "end of data",
            Phase::Rset => "RSET",
            Phase::Quit => "QUIT",
        })
    }
}

impl Phase {
    /// "timeout waiting for …" / "connection dropped …" wording.
    fn waiting_for(self) -> String {
        match self {
            Phase::Connect => "connecting".into(),
            Phase::Greeting => "waiting for greeting".into(),
            Phase::TlsHandshake => "during TLS handshake".into(),
            Phase::DataSend => "sending message data".into(),
            Phase::DataTermination => "waiting for reply to end of data".into(),
            other => format!("waiting for reply to {other}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The TCP connection could not be made (refused, unreachable, source IP not local, …).
    #[error("cannot connect: {0}")]
    Connect(#[source] io::Error),
    #[error("timeout {}", .phase.waiting_for())]
    Timeout { phase: Phase },
    /// The server's greeting was 4xx/5xx.
    #[error("greeting refused: {0}")]
    Greeting(Reply),
    /// EHLO was refused with 4xx, or EHLO and then HELO were refused.
    #[error("EHLO/HELO refused: {0}")]
    Ehlo(Reply),
    /// `require-starttls` could not be honoured; nothing was sent in clear.
    #[error("TLS required: {why}")]
    TlsRequired { why: String },
    /// A transport-security policy (MTA-STS enforce) could not be met: nothing was sent.
    #[error("{policy}: {why}")]
    PolicyRefused { policy: String, why: String, failure: super::TlsFailure },
    /// TLS could not be set up on Ember's side (unreadable `smtp-tls-ca-file`, …).
    #[error("TLS setup: {0}")]
    Tls(String),
    /// The server refused the credentials (or the AUTH exchange).
    #[error("AUTH refused: {0}")]
    Auth(Reply),
    /// Ember would not or could not authenticate: credentials in clear without
    /// `use-unencrypted-plain-auth`, or no mechanism in common.
    #[error("cannot authenticate: {0}")]
    AuthNotPossible(String),
    /// A reply that ends the session outside the phases above (e.g. `421` to STARTTLS).
    #[error("{phase} refused: {reply}")]
    Refused { phase: Phase, reply: Reply },
    /// The server closed the connection, or the socket failed.
    #[error("connection dropped {}{}", .phase.waiting_for(), if .detail.is_empty() { String::new() } else { format!(" ({})", .detail) })]
    Disconnected { phase: Phase, detail: String },
    /// The client configuration cannot be used as is (a host name that cannot go with EHLO).
    #[error("configuration: {0}")]
    Config(String),
    /// The server sent something that is not SMTP: garbage, an over-long reply, data after
    /// the STARTTLS reply.
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl ClientError {
    pub(super) fn disconnected(phase: Phase, error: Option<&io::Error>) -> ClientError {
        ClientError::Disconnected { phase, detail: error.map(ToString::to_string).unwrap_or_default() }
    }

    /// The reply to record for the recipients this error affects: the server's own when there
    /// is one, else a synthetic 4xx (every client-side failure is worth a retry).
    pub fn reply(&self) -> Reply {
        match self {
            ClientError::Greeting(r) | ClientError::Ehlo(r) | ClientError::Auth(r) => r.clone(),
            ClientError::Refused { reply, .. } => reply.clone(),
            ClientError::Connect(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                Reply::new(421, "4.4.1", "connection refused")
            }
            ClientError::Connect(e) => Reply::new(421, "4.4.1", format!("cannot connect: {e}")),
            ClientError::Timeout { phase: Phase::Connect } => Reply::new(421, "4.4.1", "timeout connecting"),
            ClientError::Timeout { phase } => Reply::new(451, "4.4.2", format!("timeout {}", phase.waiting_for())),
            ClientError::TlsRequired { why } => Reply::new(451, "4.7.10", format!("TLS required: {why}")),
            ClientError::PolicyRefused { .. } => Reply::new(451, "4.7.5", self.to_string()),
            ClientError::Tls(why) => Reply::new(451, "4.7.5", format!("TLS setup: {why}")),
            ClientError::AuthNotPossible(why) => Reply::new(451, "4.7.0", format!("cannot authenticate: {why}")),
            ClientError::Disconnected { .. } => Reply::new(421, "4.4.2", self.to_string()),
            ClientError::Protocol(why) => Reply::new(451, "4.5.0", format!("protocol error: {why}")),
            ClientError::Config(why) => Reply::new(451, "4.3.5", format!("configuration: {why}")),
        }
    }

    /// The server's own reply this error carries, when it has one (a refused greeting, EHLO,
    /// AUTH, or a reply that ended the session).
    pub fn server_reply(&self) -> Option<&Reply> {
        match self {
            ClientError::Greeting(r) | ClientError::Ehlo(r) | ClientError::Auth(r) => Some(r),
            ClientError::Refused { reply, .. } => Some(reply),
            _ => None,
        }
    }

    /// A failure that will not go away by retrying this host: a 5xx greeting, or EHLO and
    /// HELO both refused with 5xx (`bounce-upon-5xx-greeting`).
    pub fn is_permanent(&self) -> bool {
        match self {
            ClientError::Greeting(r) | ClientError::Ehlo(r) => r.code >= 500,
            _ => false,
        }
    }

    /// The phase the session was in when it failed, when the error says.
    pub fn phase(&self) -> Option<Phase> {
        match self {
            ClientError::Connect(_) => Some(Phase::Connect),
            ClientError::Greeting(_) => Some(Phase::Greeting),
            ClientError::Ehlo(_) => Some(Phase::Ehlo),
            ClientError::Auth(_) | ClientError::AuthNotPossible(_) => Some(Phase::Auth),
            ClientError::Timeout { phase } | ClientError::Disconnected { phase, .. } => Some(*phase),
            ClientError::Refused { phase, .. } => Some(*phase),
            ClientError::TlsRequired { .. }
            | ClientError::PolicyRefused { .. }
            | ClientError::Tls(_)
            | ClientError::Protocol(_)
            | ClientError::Config(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_replies_are_transient_and_server_replies_kept() {
        let refused = ClientError::Connect(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(refused.reply().to_string(), "421 4.4.1 connection refused");
        assert_eq!(
            ClientError::Timeout { phase: Phase::Greeting }.reply().to_string(),
            "451 4.4.2 timeout waiting for greeting"
        );
        assert_eq!(
            ClientError::Timeout { phase: Phase::Rcpt }.reply().to_string(),
            "451 4.4.2 timeout waiting for reply to RCPT TO"
        );
        assert_eq!(
            ClientError::disconnected(Phase::DataTermination, None).reply().to_string(),
            "421 4.4.2 connection dropped waiting for reply to end of data"
        );
        let greeting = Reply::new(554, "5.7.1", "go away");
        assert_eq!(ClientError::Greeting(greeting.clone()).reply(), greeting);
        assert!(ClientError::Greeting(greeting).is_permanent());
        assert!(!ClientError::Greeting(Reply::new(421, "4.3.2", "busy")).is_permanent());
        assert!(!ClientError::TlsRequired { why: "x".into() }.is_permanent());
        for e in [
            ClientError::TlsRequired { why: "STARTTLS not offered".into() },
            ClientError::Tls("x".into()),
            ClientError::AuthNotPossible("x".into()),
            ClientError::Protocol("x".into()),
        ] {
            assert!(e.reply().is_transient(), "{e}");
        }
    }
}
