//! Asynchronous bounces: delivery status notifications (RFC 3464) another MTA sent to one of our
//! return paths after accepting a message, one entry per recipient. Parsing only.

use super::report::{Parsed, address, field, field_blocks, mta};

/// One recipient of a DSN.
#[derive(Debug, Clone, Default)]
pub struct Bounced {
    pub rcpt: String,
    pub orcpt: String,
    /// `failed`, `delayed`, `delivered`, `relayed` or `expanded` (lower case).
    pub action: String,
    /// The enhanced status, e.g. `5.1.1`.
    pub status: String,
    /// `smtp;550 5.1.1 ...` as given (the type is kept, as PowerMTA writes `dsnDiag`).
    pub diag: String,
    pub remote_mta: String,
}

/// A parsed DSN.
#[derive(Debug, Clone, Default)]
pub struct Dsn {
    pub reporting_mta: String,
    pub env_id: String,
    pub recipients: Vec<Bounced>,
    /// The original message's header block, for `header_*` fields.
    pub headers: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DsnError {
    #[error("not a delivery status notification (no multipart/report; report-type=delivery-status)")]
    NotADsn,
    #[error("DSN without a message/delivery-status part")]
    NoStatusPart,
    #[error("DSN names no recognisable recipient (no Final-Recipient or Original-Recipient with an address)")]
    NoRecipient,
}

pub fn parse(raw: &[u8]) -> Result<Dsn, DsnError> {
    let parsed = Parsed::parse(raw).ok_or(DsnError::NotADsn)?;
    if parsed.report_type().as_deref() != Some("delivery-status") {
        return Err(DsnError::NotADsn);
    }
    let part = parsed
        .part("message", "delivery-status")
        .or_else(|| parsed.part("message", "global-delivery-status"))
        .ok_or(DsnError::NoStatusPart)?;
    let blocks = field_blocks(&part);
    let mut dsn = Dsn { headers: parsed.original_headers().unwrap_or_default(), ..Dsn::default() };
    for block in &blocks {
        if let Some(m) = field(block, "reporting-mta") {
            dsn.reporting_mta = mta(m);
        }
        if let Some(e) = field(block, "original-envelope-id") {
            dsn.env_id = e.to_string();
        }
        let orcpt = field(block, "original-recipient").and_then(address);
        let Some(rcpt) = field(block, "final-recipient").and_then(address).or_else(|| orcpt.clone()) else {
            continue;
        };
        let status = field(block, "status").unwrap_or("").split_whitespace().next().unwrap_or("").to_string();
        let action = field(block, "action").unwrap_or("").to_lowercase();
        // A block without Action says what its status says.
        let action = if action.is_empty() {
            match status.chars().next() {
                Some('5') => "failed".to_string(),
                Some('4') => "delayed".to_string(),
                _ => "delivered".to_string(),
            }
        } else {
            action
        };
        dsn.recipients.push(Bounced {
            rcpt,
            orcpt: orcpt.unwrap_or_default(),
            action,
            status,
            diag: field(block, "diagnostic-code").map(|d| d.replacen("; ", ";", 1)).unwrap_or_default(),
            remote_mta: field(block, "remote-mta").map(mta).unwrap_or_default(),
        });
    }
    if dsn.recipients.is_empty() {
        return Err(DsnError::NoRecipient);
    }
    Ok(dsn)
}

#[cfg(test)]
pub mod tests {
    use super::*;

    pub const DSN: &str = "From: MAILER-DAEMON@mx.remote.example\r\nTo: <bounce-42@bounce.ember.test>\r\nSubject: Undelivered Mail\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nSorry.\r\n--b1\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.remote.example\r\nOriginal-Envelope-Id: env-42\r\n\r\nFinal-Recipient: rfc822; gone@remote.example\r\nOriginal-Recipient: rfc822; Gone@remote.example\r\nAction: failed\r\nStatus: 5.1.1\r\nRemote-MTA: dns; mailstore.remote.example\r\nDiagnostic-Code: smtp; 550 5.1.1 <gone@remote.example>: user unknown\r\n\r\nFinal-Recipient: rfc822; slow@remote.example\r\nAction: delayed\r\nStatus: 4.2.2\r\nDiagnostic-Code: smtp; 452 4.2.2 mailbox full\r\n\r\n--b1\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: news@news.example\r\nTo: gone@remote.example\r\nX-Job: spring\r\nSubject: offer\r\n\r\n--b1--\r\n";

    #[test]
    fn per_recipient_fields() {
        let d = parse(DSN.as_bytes()).unwrap();
        assert_eq!(d.reporting_mta, "mx.remote.example");
        assert_eq!(d.env_id, "env-42");
        assert_eq!(d.recipients.len(), 2);
        let r = &d.recipients[0];
        assert_eq!((r.rcpt.as_str(), r.orcpt.as_str()), ("gone@remote.example", "Gone@remote.example"));
        assert_eq!((r.action.as_str(), r.status.as_str()), ("failed", "5.1.1"));
        assert_eq!(r.diag, "smtp;550 5.1.1 <gone@remote.example>: user unknown");
        assert_eq!(r.remote_mta, "mailstore.remote.example");
        assert_eq!(d.recipients[1].action, "delayed");
        assert!(String::from_utf8_lossy(&d.headers).contains("X-Job: spring"));
    }

    #[test]
    fn dsns_without_recipients_or_status_are_errors() {
        let none = DSN
            .replace(
                "Final-Recipient: rfc822; gone@remote.example\r\nOriginal-Recipient: rfc822; Gone@remote.example\r\n",
                "",
            )
            .replace("Final-Recipient: rfc822; slow@remote.example\r\n", "Final-Recipient: rfc822; undisclosed\r\n");
        assert_eq!(parse(none.as_bytes()).unwrap_err(), DsnError::NoRecipient);
        let no_part = DSN.replace("message/delivery-status", "text/plain");
        assert_eq!(parse(no_part.as_bytes()).unwrap_err(), DsnError::NoStatusPart);
        assert_eq!(parse(b"Subject: out of office\r\n\r\nI am away.\r\n").unwrap_err(), DsnError::NotADsn);
    }
}
