//! Complaints: ARF reports (RFC 5965) and Hotmail's JMRP, turned into who complained about
//! which message. Parsing only; the processor decides what follows.

use super::report::{Parsed, address, field, field_blocks, fields};
use crate::message::headers::Header;

/// One complaint.
#[derive(Debug, Clone, Default)]
pub struct Complaint {
    /// `arf` or `jmrp` (the accounting `format` field).
    pub format: &'static str,
    pub feedback_type: String,
    pub user_agent: String,
    /// The complaining recipient (the address we mailed).
    pub rcpt: String,
    /// The original message's sender (MAIL FROM), when the report gives it.
    pub orig: String,
    pub reporting_mta: String,
    /// The IP the original message was sent from (`Source-IP`): one of ours.
    pub source_ip: String,
    pub reported_domain: String,
    pub env_id: String,
    /// The original message's header block, for `header_*` fields.
    pub headers: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComplaintError {
    #[error("not a feedback report (neither ARF multipart/report; report-type=feedback-report nor a JMRP report)")]
    NotAReport,
    #[error("ARF report without a message/feedback-report part")]
    NoFeedbackPart,
    #[error("feedback report names no recipient (no Original-Rcpt-To, and the original message has no To)")]
    NoRecipient,
}

/// Parses a complaint. A report without a recipient, or an ARF report missing its
/// machine-readable part, is an error the caller logs and keeps.
pub fn parse(raw: &[u8]) -> Result<Complaint, ComplaintError> {
    let parsed = Parsed::parse(raw).ok_or(ComplaintError::NotAReport)?;
    let original = parsed.original_headers().unwrap_or_default();
    let orig_header = Header::parse(&original);
    let from_original = |name: &str| orig_header.get(name).and_then(|v| address(&v));
    if parsed.report_type().as_deref() == Some("feedback-report") {
        let part = parsed.part("message", "feedback-report").ok_or(ComplaintError::NoFeedbackPart)?;
        let block: Vec<(String, String)> = field_blocks(&part).into_iter().flatten().collect();
        let rcpt = field(&block, "original-rcpt-to")
            .and_then(address)
            .or_else(|| from_original("x-hmxmroriginalrecipient"))
            .or_else(|| from_original("to"))
            .ok_or(ComplaintError::NoRecipient)?;
        return Ok(Complaint {
            format: "arf",
            feedback_type: field(&block, "feedback-type").unwrap_or("abuse").to_lowercase(),
            user_agent: field(&block, "user-agent").unwrap_or_default().to_string(),
            rcpt,
            orig: field(&block, "original-mail-from")
                .and_then(address)
                .or_else(|| from_original("return-path"))
                .unwrap_or_default(),
            reporting_mta: field(&block, "reporting-mta").map(super::report::mta).unwrap_or_default(),
            source_ip: field(&block, "source-ip").unwrap_or_default().to_string(),
            // Several values become one comma-separated list, as in the accounting file.
            reported_domain: fields(&block, "reported-domain").collect::<Vec<_>>().join(","),
            env_id: field(&block, "original-envelope-id").unwrap_or_default().to_string(),
            headers: original,
        });
    }
    // JMRP: Hotmail attaches the original message and adds X-HmXmrOriginalRecipient to it.
    if let Some(rcpt) = from_original("x-hmxmroriginalrecipient") {
        return Ok(Complaint {
            format: "jmrp",
            feedback_type: "abuse".into(),
            user_agent: "Hotmail JMRP".into(),
            rcpt,
            orig: from_original("return-path").unwrap_or_default(),
            reporting_mta: String::new(),
            source_ip: orig_header.get("x-originating-ip").unwrap_or_default().trim_matches(['[', ']']).to_string(),
            reported_domain: String::new(),
            env_id: String::new(),
            headers: original,
        });
    }
    Err(ComplaintError::NotAReport)
}

#[cfg(test)]
pub mod tests {
    use super::*;

    pub const ARF: &str = "From: <feedback@isp.example>\r\nTo: <fbl@fbl.ember.test>\r\nSubject: FW: offer\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=feedback-report;\r\n\tboundary=\"part1\"\r\n\r\n--part1\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n--part1\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: SomeGenerator/1.0\r\nVersion: 1\r\nOriginal-Mail-From: <bounces@news.example>\r\nOriginal-Rcpt-To: <Victim@isp.example>\r\nArrival-Date: Thu, 8 Mar 2005 14:00:00 EDT\r\nReporting-MTA: dns; mail.isp.example\r\nSource-IP: 192.0.2.1\r\nReported-Domain: news.example\r\n\r\n--part1\r\nContent-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\nFrom: <news@news.example>\r\nTo: <victim@isp.example>\r\nSubject: offer\r\nX-Job: spring\r\n\r\nbuy\r\n--part1--\r\n";

    #[test]
    fn arf_fields() {
        let c = parse(ARF.as_bytes()).unwrap();
        assert_eq!(c.format, "arf");
        assert_eq!(c.feedback_type, "abuse");
        assert_eq!(c.rcpt, "Victim@isp.example");
        assert_eq!(c.orig, "bounces@news.example");
        assert_eq!(c.reporting_mta, "mail.isp.example");
        assert_eq!(c.source_ip, "192.0.2.1");
        assert_eq!(c.reported_domain, "news.example");
        assert!(String::from_utf8_lossy(&c.headers).contains("X-Job: spring"));
    }

    #[test]
    fn redacted_rcpt_falls_back_to_the_original_to_and_missing_parts_are_errors() {
        let redacted = ARF.replace("Original-Rcpt-To: <Victim@isp.example>\r\n", "");
        assert_eq!(parse(redacted.as_bytes()).unwrap().rcpt, "victim@isp.example");
        let no_rcpt = redacted.replace("To: <victim@isp.example>\r\n", "");
        assert_eq!(parse(no_rcpt.as_bytes()).unwrap_err(), ComplaintError::NoRecipient);
        let no_part = ARF.replace("message/feedback-report", "text/plain");
        assert_eq!(parse(no_part.as_bytes()).unwrap_err(), ComplaintError::NoFeedbackPart);
        assert_eq!(parse(b"Subject: hello\r\n\r\nnot a report\r\n").unwrap_err(), ComplaintError::NotAReport);
        assert_eq!(parse(b"\x00\xff garbage").unwrap_err(), ComplaintError::NotAReport);
    }
}
