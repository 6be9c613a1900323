//! DSN status codes (RFC 3463 enhanced codes) as PowerMTA writes them in accounting records and
//! DSNs: `5.1.1 (bad destination mailbox address)`, and the enhanced code of an SMTP reply with
//! PowerMTA's fallbacks (`2xx` → `2.0.0`, `4xx` → `4.0.0`, `5xx` → `5.0.0`, a bare `553` →
//! `5.1.1` under `smtp-553-means-invalid-mailbox`).
//!
//! Pure functions over strings; knows nothing about queues or files.

use crate::smtp::reply::Reply;

/// The registry (RFC 3463 and its updates: RFC 3886, 4468, 4954, 5248, 6531, 6710, 7293,
/// 7372, 7505, 8098, 8461, 8617, 8689), subject and detail → description, lower case as
/// PowerMTA writes it. Where PowerMTA is seen to word a code its own way, its wording is used
/// (`X.1.2`, `X.3.5`, `X.7.1`).
const DETAILS: &[((u16, u16), &str)] = &[
    ((0, 0), "undefined status"),
    ((1, 0), "other address status"),
    ((1, 1), "bad destination mailbox address"),
    ((1, 2), "bad destination system: no such domain"),
    ((1, 3), "bad destination mailbox address syntax"),
    ((1, 4), "destination mailbox address ambiguous"),
    ((1, 5), "destination address valid"),
    ((1, 6), "destination mailbox has moved, no forwarding address"),
    ((1, 7), "bad sender's mailbox address syntax"),
    ((1, 8), "bad sender's system address"),
    ((1, 9), "message relayed to non-compliant mailer"),
    ((1, 10), "recipient address has null MX"),
    ((2, 0), "other or undefined mailbox status"),
    ((2, 1), "mailbox disabled, not accepting messages"),
    ((2, 2), "mailbox full"),
    ((2, 3), "message length exceeds administrative limit"),
    ((2, 4), "mailing list expansion problem"),
    ((3, 0), "other or undefined mail system status"),
    ((3, 1), "mail system full"),
    ((3, 2), "system not accepting network messages"),
    ((3, 3), "system not capable of selected features"),
    ((3, 4), "message too big for system"),
    // RFC 3463: "system incorrectly configured"; PowerMTA generates it for an unknown VMTA.
    ((3, 5), "specified VirtualMTA does not exist"),
    ((3, 6), "requested priority was changed"),
    ((4, 0), "other or undefined network or routing status"),
    ((4, 1), "no answer from host"),
    ((4, 2), "bad connection"),
    ((4, 3), "directory server failure"),
    ((4, 4), "unable to route"),
    ((4, 5), "mail system congestion"),
    ((4, 6), "routing loop detected"),
    ((4, 7), "delivery time expired"),
    ((4, 8), "loop detected"),
    ((5, 0), "other or undefined protocol status"),
    ((5, 1), "invalid command"),
    ((5, 2), "syntax error"),
    ((5, 3), "too many recipients"),
    ((5, 4), "invalid command arguments"),
    ((5, 5), "wrong protocol version"),
    ((5, 6), "authentication exchange line is too long"),
    ((6, 0), "other or undefined media error"),
    ((6, 1), "media not supported"),
    ((6, 2), "conversion required and prohibited"),
    ((6, 3), "conversion required but not supported"),
    ((6, 4), "conversion with loss performed"),
    ((6, 5), "conversion failed"),
    ((6, 6), "message content not available"),
    ((6, 7), "non-ASCII addresses not permitted for that sender/recipient"),
    ((6, 8), "UTF-8 string reply is required, but not permitted by the SMTP client"),
    ((6, 9), "UTF-8 header message cannot be transferred to one or more recipients"),
    ((7, 0), "other or undefined security status"),
    ((7, 1), "delivery not authorized"),
    ((7, 2), "mailing list expansion prohibited"),
    ((7, 3), "security conversion required but not possible"),
    ((7, 4), "security features not supported"),
    ((7, 5), "cryptographic failure"),
    ((7, 6), "cryptographic algorithm not supported"),
    ((7, 7), "message integrity failure"),
    ((7, 8), "authentication credentials invalid"),
    ((7, 9), "authentication mechanism is too weak"),
    ((7, 10), "encryption needed"),
    ((7, 11), "encryption required for requested authentication mechanism"),
    ((7, 12), "a password transition is needed"),
    ((7, 13), "user account disabled"),
    ((7, 14), "trust relationship required"),
    ((7, 15), "priority level is too low"),
    ((7, 16), "message is too big for the specified priority"),
    ((7, 17), "mailbox owner has changed"),
    ((7, 18), "domain owner has changed"),
    ((7, 19), "RRVS test cannot be completed"),
    ((7, 20), "no passing DKIM signature found"),
    ((7, 21), "no acceptable DKIM signature found"),
    ((7, 22), "no valid author-matched DKIM signature found"),
    ((7, 23), "SPF validation failed"),
    ((7, 24), "SPF validation error"),
    ((7, 25), "reverse DNS validation failed"),
    ((7, 26), "multiple authentication checks failed"),
    ((7, 27), "sender address has null MX"),
    ((7, 28), "mail flood detected"),
    ((7, 29), "ARC validation failure"),
    ((7, 30), "REQUIRETLS support required"),
];

/// A parsed enhanced status code `class.subject.detail`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusCode {
    pub class: u8,
    pub subject: u16,
    pub detail: u16,
}

impl StatusCode {
    /// Parses `2.0.0`, `5.1.10`: class 2, 4 or 5; subject and detail at most three digits.
    pub fn parse(text: &str) -> Option<StatusCode> {
        let mut parts = text.split('.');
        let (class, subject, detail) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let number = |s: &str| match s.len() {
            1..=3 if s.bytes().all(|b| b.is_ascii_digit()) => s.parse::<u16>().ok(),
            _ => None,
        };
        let class = match class {
            "2" => 2,
            "4" => 4,
            "5" => 5,
            _ => return None,
        };
        Some(StatusCode { class, subject: number(subject)?, detail: number(detail)? })
    }

    /// The RFC 3463 description. An unregistered detail falls back to its subject's "other"
    /// description (`5.7.606` → "other or undefined security status"); `2.0.0` is "success".
    pub fn description(&self) -> &'static str {
        if self.class == 2 && self.subject == 0 && self.detail == 0 {
            return "success";
        }
        let find = |key: (u16, u16)| DETAILS.iter().find(|(k, _)| *k == key).map(|(_, d)| *d);
        find((self.subject, self.detail)).or_else(|| find((self.subject, 0))).unwrap_or("undefined status")
    }
}

impl std::fmt::Display for StatusCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// The `dsnStatus` / DSN `Status:` text: `5.1.1 (bad destination mailbox address)`. Text that
/// is not an enhanced code is returned as it is.
pub fn status_text(code: &str) -> String {
    match StatusCode::parse(code.trim()) {
        Some(c) => format!("{c} ({})", c.description()),
        None => code.trim().to_string(),
    }
}

/// The enhanced code of a reply: its own when it carries one whose class agrees with the basic
/// code (RFC 3463 §2), also when it stands at the start of the text; else the basic code's
/// class with `.0.0`, except that a bare `553` is `5.1.1` when `smtp_553_means_invalid_mailbox`
/// (PowerMTA's default).
pub fn reply_status(reply: &Reply, smtp_553_means_invalid_mailbox: bool) -> StatusCode {
    from_parts(reply.code, &reply.enhanced, &reply.text, smtp_553_means_invalid_mailbox)
}

/// `reply_status` for a reply known only as a code and text (the text may start with the
/// enhanced code, as in `550 5.1.1 no such user` split after the basic code).
pub fn from_parts(code: u16, enhanced: &str, text: &str, smtp_553_means_invalid_mailbox: bool) -> StatusCode {
    let class = u8::try_from(code / 100).unwrap_or(5);
    let agrees = |c: &StatusCode| c.class == class;
    if let Some(c) = StatusCode::parse(enhanced.trim()).filter(agrees) {
        return c;
    }
    let first = text.split_whitespace().next().unwrap_or("");
    if let Some(c) = StatusCode::parse(first).filter(agrees) {
        return c;
    }
    if code == 553 && smtp_553_means_invalid_mailbox {
        return StatusCode { class: 5, subject: 1, detail: 1 };
    }
    let class = if matches!(class, 2 | 4 | 5) { class } else { 5 };
    StatusCode { class, subject: 0, detail: 0 }
}

/// The `dsnDiag` / `Diagnostic-Code:` text of a remote reply: `smtp;550 5.1.1 no such user`,
/// a multi-line reply joined with spaces.
pub fn diagnostic(reply: &Reply) -> String {
    format!("smtp;{reply}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn powermta_wordings() {
        assert_eq!(status_text("2.0.0"), "2.0.0 (success)");
        assert_eq!(status_text("5.1.1"), "5.1.1 (bad destination mailbox address)");
        assert_eq!(status_text("5.1.2"), "5.1.2 (bad destination system: no such domain)");
        assert_eq!(status_text("5.7.1"), "5.7.1 (delivery not authorized)");
        assert_eq!(status_text("4.4.1"), "4.4.1 (no answer from host)");
        assert_eq!(status_text("5.3.5"), "5.3.5 (specified VirtualMTA does not exist)");
        assert_eq!(status_text("4.4.7"), "4.4.7 (delivery time expired)");
        assert_eq!(status_text("5.0.0"), "5.0.0 (undefined status)");
        assert_eq!(status_text("4.2.2"), "4.2.2 (mailbox full)");
        assert_eq!(status_text("5.2.1"), "5.2.1 (mailbox disabled, not accepting messages)");
        assert_eq!(status_text("5.1.10"), "5.1.10 (recipient address has null MX)");
        assert_eq!(status_text("5.7.26"), "5.7.26 (multiple authentication checks failed)");
        assert_eq!(status_text("2.1.5"), "2.1.5 (destination address valid)");
    }

    #[test]
    fn unregistered_details_fall_back_to_their_subject() {
        // Outlook's 5.7.606 (banned sending IP) and Yahoo-style private codes.
        assert_eq!(status_text("5.7.606"), "5.7.606 (other or undefined security status)");
        assert_eq!(status_text("4.4.99"), "4.4.99 (other or undefined network or routing status)");
        assert_eq!(status_text("5.9.1"), "5.9.1 (undefined status)");
    }

    #[test]
    fn text_that_is_not_a_code_is_kept() {
        assert_eq!(status_text("3.0.0"), "3.0.0");
        assert_eq!(status_text("5.1"), "5.1");
        assert_eq!(status_text("5.1.1.1"), "5.1.1.1");
        assert_eq!(status_text(" 5.x.1 "), "5.x.1");
        assert_eq!(StatusCode::parse("5.1234.1"), None);
    }

    #[test]
    fn enhanced_code_from_a_reply() {
        let r = |code, enh: &'static str, text: &'static str| reply_status(&Reply::new(code, enh, text), true);
        assert_eq!(r(550, "5.1.1", "The email account that you tried to reach does not exist.").to_string(), "5.1.1");
        // The code still inside the text.
        assert_eq!(r(550, "", "5.7.1 Service unavailable, Client host blocked").to_string(), "5.7.1");
        // Class must agree with the basic code: 250 with 5.0.0 in its text is 2.0.0.
        assert_eq!(r(250, "", "5.0.0 looks odd but ok").to_string(), "2.0.0");
        assert_eq!(r(421, "", "mx.example.com Service not available").to_string(), "4.0.0");
        assert_eq!(r(554, "", "Transaction failed").to_string(), "5.0.0");
        assert_eq!(r(250, "", "ok 1700000000 qp 1234").to_string(), "2.0.0");
        // smtp-553-means-invalid-mailbox.
        assert_eq!(r(553, "", "sorry, that domain isn't in my list of allowed rcpthosts").to_string(), "5.1.1");
        assert_eq!(r(553, "5.7.1", "Sender address rejected").to_string(), "5.7.1");
        assert_eq!(reply_status(&Reply::new(553, "", "no"), false).to_string(), "5.0.0");
    }

    #[test]
    fn diagnostic_text() {
        let gmail = Reply::new(
            550,
            "5.1.1",
            "The email account that you tried to reach does not exist. Please try\ndouble-checking the recipient's email address.",
        );
        assert_eq!(
            diagnostic(&gmail),
            "smtp;550 5.1.1 The email account that you tried to reach does not exist. Please try double-checking the recipient's email address."
        );
        assert_eq!(diagnostic(&Reply::new(250, "", "DATA ok")), "smtp;250 DATA ok");
    }
}
