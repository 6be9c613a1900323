//! The bytes of a transaction: MAIL and RCPT commands with their ESMTP parameters, xtext
//! (RFC 3461 §4), and dot-stuffing of the body for DATA.

use crate::delivery::{OutgoingMessage, OutgoingRecipient};
use crate::message::Ret;

/// Which MAIL parameters to send: the server offers them, the configuration does not ignore
/// them, and the message needs them (the caller decides all three).
#[derive(Clone, Copy, Debug, Default)]
pub struct MailParams {
    pub size: bool,
    pub eight_bit_mime: bool,
    pub smtputf8: bool,
    pub dsn: bool,
}

pub fn mail_command(message: &OutgoingMessage, params: MailParams) -> Vec<u8> {
    let mut cmd = format!("MAIL FROM:<{}>", message.sender);
    if params.size {
        cmd.push_str(&format!(" SIZE={}", message.body.len()));
    }
    if params.eight_bit_mime {
        cmd.push_str(" BODY=8BITMIME");
    }
    if params.smtputf8 {
        cmd.push_str(" SMTPUTF8");
    }
    if params.dsn {
        match message.ret {
            Some(Ret::Full) => cmd.push_str(" RET=FULL"),
            Some(Ret::Headers) => cmd.push_str(" RET=HDRS"),
            None => {}
        }
        if let Some(id) = &message.env_id {
            cmd.push_str(" ENVID=");
            cmd.push_str(&xtext(id));
        }
    }
    cmd.push_str("\r\n");
    cmd.into_bytes()
}

pub fn rcpt_command(rcpt: &OutgoingRecipient, dsn: bool) -> Vec<u8> {
    let mut cmd = format!("RCPT TO:<{}>", rcpt.address);
    if dsn {
        let n = &rcpt.notify;
        if n.never {
            cmd.push_str(" NOTIFY=NEVER");
        } else if !n.is_default() {
            let flags: Vec<&str> = [(n.success, "SUCCESS"), (n.failure, "FAILURE"), (n.delay, "DELAY")]
                .into_iter()
                .filter_map(|(on, name)| on.then_some(name))
                .collect();
            cmd.push_str(" NOTIFY=");
            cmd.push_str(&flags.join(","));
        }
        if let Some(orcpt) = &rcpt.orcpt {
            cmd.push_str(" ORCPT=rfc822;");
            cmd.push_str(&xtext(orcpt));
        }
    }
    cmd.push_str("\r\n");
    cmd.into_bytes()
}

/// RFC 3461 xtext: printable ASCII except `+` and `=` as is, every other byte as `+XX`.
pub fn xtext(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// An address that cannot be put on a command line as is (it would end the command early or
/// smuggle another one).
pub fn is_unsafe_address(address: &str) -> bool {
    address.bytes().any(|b| b < 0x20 || b == 0x7f || b == b'<' || b == b'>')
}

/// Dot-stuffs a body for DATA, block by block, and ends it with `.`.
///
/// The body should already have CRLF line endings; a bare LF or bare CR is sent as CRLF, so no
/// receiver can read an end of data that Ember did not mean (SMTP smuggling) and a line after a
/// bare LF that starts with `.` is stuffed like any other.
#[derive(Debug)]
pub struct DotStuffer {
    line_start: bool,
    after_cr: bool,
}

impl Default for DotStuffer {
    fn default() -> Self {
        DotStuffer { line_start: true, after_cr: false }
    }
}

impl DotStuffer {
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + input.len() / 64 + 4);
        let mut rest = input;
        while let Some((&first, _)) = rest.split_first() {
            if self.after_cr {
                self.after_cr = false;
                out.push(b'\n');
                self.line_start = true;
                if first == b'\n' {
                    rest = &rest[1..];
                    continue;
                }
            }
            if self.line_start && first == b'.' {
                out.push(b'.');
            }
            // Copy the run up to the next line ending in one piece: this is the hot loop of
            // every delivery, and most bytes are plain text.
            let Some(end) = memchr::memchr2(b'\r', b'\n', rest) else {
                out.extend_from_slice(rest);
                self.line_start = false;
                return;
            };
            out.extend_from_slice(&rest[..end]);
            if end > 0 {
                self.line_start = false;
            }
            if rest[end] == b'\r' {
                out.push(b'\r');
                self.after_cr = true;
            } else {
                out.extend_from_slice(b"\r\n");
                self.line_start = true;
            }
            rest = &rest[end + 1..];
        }
    }

    /// Closes the last line if the body left it open, then writes the terminating `.`.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.after_cr {
            out.push(b'\n');
            self.line_start = true;
        }
        if !self.line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        *self = DotStuffer::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Notify;
    use std::sync::Arc;

    fn stuffed(parts: &[&[u8]]) -> String {
        let mut s = DotStuffer::default();
        let mut out = Vec::new();
        for p in parts {
            s.push(p, &mut out);
        }
        s.finish(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn dot_stuffing() {
        assert_eq!(stuffed(&[b"a\r\n.b\r\n..c\r\n"]), "a\r\n..b\r\n...c\r\n.\r\n");
        assert_eq!(stuffed(&[b".first\r\nx.y\r\n"]), "..first\r\nx.y\r\n.\r\n");
        assert_eq!(stuffed(&[b""]), ".\r\n");
        assert_eq!(stuffed(&[b"no newline"]), "no newline\r\n.\r\n");
        // Split across blocks, including between CR and LF.
        assert_eq!(stuffed(&[b"a\r", b"\n.", b"b\r\n"]), "a\r\n..b\r\n.\r\n");
        assert_eq!(stuffed(&[b"a\r\n", b".\r\n"]), "a\r\n..\r\n.\r\n");
        // Bare LF and bare CR become CRLF; no smuggled end of data.
        assert_eq!(stuffed(&[b"a\n.\nb\r\n"]), "a\r\n..\r\nb\r\n.\r\n");
        assert_eq!(stuffed(&[b"a\r.\rb"]), "a\r\n..\r\nb\r\n.\r\n");
        assert_eq!(stuffed(&[b"end\r"]), "end\r\n.\r\n");
    }

    /// The byte-at-a-time definition the fast path must match: bare CR and bare LF become CRLF,
    /// a line starting with a dot gets another.
    fn reference(input: &[u8]) -> Vec<u8> {
        let normalized = String::from_utf8_lossy(input).replace("\r\n", "\n").replace('\r', "\n");
        let mut out = String::new();
        let body = normalized.strip_suffix('\n').unwrap_or(&normalized);
        if !normalized.is_empty() {
            for line in body.split('\n') {
                if line.starts_with('.') {
                    out.push('.');
                }
                out.push_str(line);
                out.push_str("\r\n");
            }
        }
        out.push_str(".\r\n");
        out.into_bytes()
    }

    proptest::proptest! {
        #[test]
        fn chunked_stuffing_matches_the_definition(
            text in proptest::collection::vec(proptest::sample::select(b"ab.\r\n".to_vec()), 0..200),
            cuts in proptest::collection::vec(0usize..200, 0..6),
        ) {
            let mut points: Vec<usize> = cuts.into_iter().map(|c| c.min(text.len())).collect();
            points.sort_unstable();
            let mut parts = Vec::new();
            let mut from = 0;
            for p in points.into_iter().chain([text.len()]) {
                parts.push(&text[from..p]);
                from = p;
            }
            proptest::prop_assert_eq!(stuffed(&parts).into_bytes(), reference(&text));
        }
    }

    #[test]
    fn xtext_encoding() {
        assert_eq!(xtext("user+tag@example.com"), "user+2Btag@example.com");
        assert_eq!(xtext("a=b c"), "a+3Db+20c");
        assert_eq!(xtext("é"), "+C3+A9");
    }

    #[test]
    fn commands_with_parameters() {
        let msg = OutgoingMessage {
            sender: "bounce@example.com".into(),
            recipients: vec![],
            env_id: Some("id+1".into()),
            ret: Some(Ret::Headers),
            eight_bit: true,
            smtputf8: true,
            body: Arc::new(vec![b'x'; 1234]),
        };
        let all = MailParams { size: true, eight_bit_mime: true, smtputf8: true, dsn: true };
        assert_eq!(
            String::from_utf8(mail_command(&msg, all)).unwrap(),
            "MAIL FROM:<bounce@example.com> SIZE=1234 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=id+2B1\r\n"
        );
        assert_eq!(
            String::from_utf8(mail_command(&msg, MailParams::default())).unwrap(),
            "MAIL FROM:<bounce@example.com>\r\n"
        );
        let rcpt = OutgoingRecipient {
            address: "to@example.org".into(),
            notify: Notify { success: true, failure: true, ..Notify::default() },
            orcpt: Some("orig+x@example.org".into()),
        };
        assert_eq!(
            String::from_utf8(rcpt_command(&rcpt, true)).unwrap(),
            "RCPT TO:<to@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;orig+2Bx@example.org\r\n"
        );
        assert_eq!(String::from_utf8(rcpt_command(&rcpt, false)).unwrap(), "RCPT TO:<to@example.org>\r\n");
        let never = OutgoingRecipient { notify: Notify { never: true, ..Notify::default() }, orcpt: None, ..rcpt };
        assert_eq!(String::from_utf8(rcpt_command(&never, true)).unwrap(), "RCPT TO:<to@example.org> NOTIFY=NEVER\r\n");
        assert!(is_unsafe_address("a@b\r\nRSET"));
        assert!(!is_unsafe_address("\"a b\"@example.com"));
    }
}
