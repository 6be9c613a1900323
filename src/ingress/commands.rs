//! SMTP command semantics for injection: EHLO/HELO, MAIL, RCPT, DATA, BDAT, RSET, NOOP, QUIT,
//! VRFY, EXPN, HELP, STARTTLS and AUTH, each answered with the reply code and enhanced status
//! code RFC 5321/3463 prescribe, and each refusal saying why.

use std::borrow::Cow;

use smtp_proto::request::receiver::BdatReceiver;
use smtp_proto::{
    AUTH_LOGIN, AUTH_PLAIN, Error as ParseError, MAIL_BODY_8BITMIME, MAIL_RET_FULL, MAIL_RET_HDRS, MAIL_SMTPUTF8,
    MailFrom, RCPT_NOTIFY_DELAY, RCPT_NOTIFY_FAILURE, RCPT_NOTIFY_NEVER, RCPT_NOTIFY_SUCCESS, RcptTo, Request,
};

use super::policy::SourcePolicy;
use super::session::{Flow, Mode, Session, Transaction};
use crate::message::{Notify, Recipient, Ret};
use crate::smtp::sasl::{decode_base64, decode_plain};
use crate::smtp::{DataReceiver, Reply};

/// `MAIL FROM:<local>` or `RCPT TO:<local>` rewritten to carry `local@domain-suffix`, when the
/// source qualifies bare local parts (`domain-suffix` with `auto-qualify-domain`); `None` for
/// every other line, which the parser then sees as sent (a bare local part is refused there).
fn qualified_line(line: &[u8], policy: &SourcePolicy) -> Option<Vec<u8>> {
    policy.qualify_with.as_ref()?;
    let text = std::str::from_utf8(line).ok()?;
    let verb = text.get(..4)?;
    if !verb.eq_ignore_ascii_case("MAIL") && !verb.eq_ignore_ascii_case("RCPT") {
        return None;
    }
    let open = text.find('<')?;
    let close = open + text[open..].find('>')?;
    let inner = &text[open + 1..close];
    if inner.contains(|c: char| c.is_whitespace() || matches!(c, '"' | '\\' | ':' | ',' | '<')) {
        return None;
    }
    let address = policy.qualify(inner)?;
    Some(format!("{}<{address}{}", &text[..open], &text[close..]).into_bytes())
}

impl Session {
    pub(super) async fn command(&mut self, line: &[u8]) -> Flow {
        if self.policy.log_commands {
            let shown = String::from_utf8_lossy(line);
            let shown =
                if shown.len() > 4 && shown[..4].eq_ignore_ascii_case("AUTH") { "AUTH ***".into() } else { shown };
            tracing::info!(peer = %self.conn.peer, ">>> {}", shown.trim_end());
        }
        let qualified = qualified_line(line, &self.policy);
        let line = qualified.as_deref().unwrap_or(line);
        let request = match Request::parse(&mut line.iter()) {
            Ok(r) => r,
            Err(e) => {
                let reply = match e {
                    ParseError::UnknownCommand => Reply::new(500, "5.5.1", "command unrecognized"),
                    ParseError::InvalidSenderAddress => Reply::new(501, "5.1.7", "bad sender address syntax"),
                    ParseError::InvalidRecipientAddress => Reply::new(501, "5.1.3", "bad recipient address syntax"),
                    ParseError::SyntaxError { syntax } => Reply::new(501, "5.5.4", format!("syntax: {syntax}")),
                    ParseError::InvalidParameter { param } => {
                        Reply::new(501, "5.5.4", format!("invalid parameter {param}"))
                    }
                    ParseError::UnsupportedParameter { param } => {
                        Reply::new(555, "5.5.4", format!("unsupported parameter {param}"))
                    }
                    ParseError::ResponseTooLong => Reply::new(500, "5.5.6", "line too long"),
                    _ => Reply::new(500, "5.5.2", "syntax error"),
                };
                self.reply(reply);
                return if self.count_error() { Flow::Close } else { Flow::Continue };
            }
        };
        match request {
            Request::Ehlo { host } => self.hello(&host, true),
            Request::Helo { host } => self.hello(&host, false),
            Request::Mail { from } => self.mail(from),
            Request::Rcpt { to } => self.rcpt(to),
            Request::Data => self.data(),
            Request::Bdat { chunk_size, is_last } => self.bdat(chunk_size, is_last),
            Request::Rset => {
                self.reset_transaction();
                self.reply(Reply::new(250, "2.0.0", "reset OK"));
                Flow::Continue
            }
            Request::Noop { .. } => {
                self.reply(Reply::new(250, "2.0.0", "OK"));
                Flow::Continue
            }
            Request::Quit => {
                let host = self.ctx.host_name().to_string();
                self.reply(Reply::new(221, "2.0.0", format!("{host} closing connection")));
                Flow::Close
            }
            Request::Vrfy { .. } => {
                self.reply(Reply::new(252, "2.1.5", "cannot VRFY user, but will accept message and attempt delivery"));
                Flow::Continue
            }
            Request::Expn { .. } => {
                self.reply(Reply::new(502, "5.5.1", "EXPN is not supported"));
                Flow::Continue
            }
            Request::Help { .. } => {
                self.reply(Reply::new(
                    214,
                    "2.0.0",
                    "commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT STARTTLS AUTH",
                ));
                Flow::Continue
            }
            Request::StartTls => self.starttls(),
            Request::Auth { mechanism, initial_response } => self.auth(mechanism, &initial_response),
            Request::Lhlo { .. } | Request::Etrn { .. } | Request::Atrn { .. } | Request::Burl { .. } => {
                self.reply(Reply::new(502, "5.5.1", "command not implemented"));
                if self.count_error() { Flow::Close } else { Flow::Continue }
            }
        }
    }

    pub(super) fn reset_transaction(&mut self) {
        self.txn = None;
        self.mode = Mode::Command;
        self.body = Vec::new();
        self.oversized = false;
    }

    pub(super) fn reset_after_tls(&mut self) {
        self.helo = None;
        self.esmtp = false;
        self.auth_user = None;
        self.reset_transaction();
    }

    fn auth_offered(&self) -> bool {
        self.policy.allow_auth
            && !self.ctx.users.is_empty()
            && (self.encrypted || self.policy.allow_unencrypted_plain_auth)
            && (self.encrypted || !self.policy.require_starttls_before_auth)
    }

    fn starttls_offered(&self) -> bool {
        self.policy.allow_starttls && self.conn.tls.is_some() && !self.encrypted
    }

    fn hello(&mut self, host: &str, esmtp: bool) -> Flow {
        if host.trim().is_empty() {
            self.reply(Reply::new(501, "5.5.4", "EHLO/HELO needs a domain or address literal"));
            return Flow::Continue;
        }
        self.reset_transaction();
        self.helo = Some(host.to_string());
        self.esmtp = esmtp;
        let me = self.ctx.host_name().to_string();
        let greeting = format!("{me} hello {host} [{}]", self.conn.peer.ip());
        if !esmtp {
            self.reply(Reply::new(250, "", greeting));
            return Flow::Continue;
        }
        let mut lines = vec![greeting, "ENHANCEDSTATUSCODES".into(), "PIPELINING".into()];
        if self.policy.allow_chunking {
            lines.push("CHUNKING".into());
        }
        lines.push("8BITMIME".into());
        lines.push("DSN".into());
        lines.push(format!("SIZE {}", self.message_limit()));
        if self.policy.allow_smtputf8 {
            lines.push("SMTPUTF8".into());
        }
        if self.starttls_offered() {
            lines.push("STARTTLS".into());
        }
        if self.auth_offered() && self.auth_user.is_none() {
            lines.push("AUTH PLAIN LOGIN".into());
            if self.policy.broken_auth_clients {
                lines.push("AUTH=LOGIN PLAIN".into());
            }
        }
        self.reply(Reply::new(250, "", lines.join("\n")));
        Flow::Continue
    }

    fn mail(&mut self, from: MailFrom<Cow<'_, str>>) -> Flow {
        if self.ctx.intake.is_closed() {
            self.reply(super::intake::Intake::refusal(self.ctx.host_name()));
            return Flow::Close;
        }
        let refusal = if self.helo.is_none() {
            Some(Reply::new(503, "5.5.1", "send EHLO or HELO first"))
        } else if self.txn.is_some() {
            Some(Reply::new(503, "5.5.1", "nested MAIL command"))
        } else if self.policy.require_auth && self.auth_user.is_none() {
            Some(Reply::new(530, "5.7.0", "authentication required"))
        } else if from.size as u64 > self.message_limit() {
            Some(Reply::new(
                552,
                "5.3.4",
                format!("message size {} exceeds the limit of {} bytes", from.size, self.message_limit()),
            ))
        } else if from.flags & MAIL_SMTPUTF8 != 0 && !self.policy.allow_smtputf8 {
            Some(Reply::new(555, "5.5.4", "SMTPUTF8 is not allowed for this source"))
        } else {
            None
        };
        if let Some(reply) = refusal {
            self.reply(reply);
            return if self.count_error() { Flow::Close } else { Flow::Continue };
        }
        let ret = if from.flags & MAIL_RET_FULL != 0 {
            Some(Ret::Full)
        } else if from.flags & MAIL_RET_HDRS != 0 {
            Some(Ret::Headers)
        } else {
            None
        };
        let sender = from.address.to_string();
        self.txn = Some(Transaction {
            sender: sender.clone(),
            ret,
            env_id: from.env_id.map(|e| e.to_string()),
            eight_bit: from.flags & MAIL_BODY_8BITMIME != 0,
            smtputf8: from.flags & MAIL_SMTPUTF8 != 0,
            ..Transaction::default()
        });
        self.reply(Reply::new(250, "2.1.0", format!("sender <{sender}> OK")));
        Flow::Continue
    }

    fn rcpt(&mut self, to: RcptTo<Cow<'_, str>>) -> Flow {
        let Some(txn) = &self.txn else {
            self.reply(Reply::new(503, "5.5.1", "need MAIL before RCPT"));
            return if self.count_error() { Flow::Close } else { Flow::Continue };
        };
        let address = to.address.to_string();
        let Some((_, domain)) = address.rsplit_once('@').filter(|(l, d)| !l.is_empty() && !d.is_empty()) else {
            self.reply(Reply::new(501, "5.1.3", format!("recipient <{address}> needs a domain")));
            return Flow::Continue;
        };
        let domain = domain.to_lowercase();
        let count = txn.recipients.len() + txn.suppressed.len();
        if let Some(max) = self.policy.max_rcpt_per_message
            && count as u64 >= max
        {
            if self.policy.too_many_rcpts_fails_message {
                self.txn.as_mut().expect("checked").too_many = true;
            } else {
                self.reply(Reply::new(452, "4.5.3", format!("too many recipients (at most {max} per message)")));
                return Flow::Continue;
            }
        }
        // Reports come from other domains' MTAs: a processor address is ours, whatever the
        // source may relay to, and never suppressed.
        if self.ctx.processors.kind_of(&address).is_some() {
            self.txn.as_mut().expect("checked").reports.push(address.clone());
            self.reply(Reply::new(250, "2.1.5", format!("recipient <{address}> OK")));
            return Flow::Continue;
        }
        if !self.policy.may_relay_to(&address, &domain) {
            let ip = self.conn.peer.ip();
            let reply = if self.policy.relay_debug {
                Reply::new(450, "4.7.1", format!("relaying to <{address}> denied for {ip}"))
            } else {
                Reply::new(550, "5.7.1", format!("relaying to <{address}> denied for {ip}"))
            };
            self.reply(reply);
            return Flow::Continue;
        }
        let notify = Notify {
            success: to.flags & RCPT_NOTIFY_SUCCESS != 0,
            failure: to.flags & RCPT_NOTIFY_FAILURE != 0,
            delay: to.flags & RCPT_NOTIFY_DELAY != 0,
            never: to.flags & RCPT_NOTIFY_NEVER != 0,
        };
        let orcpt = to.orcpt.map(|o| o.to_string());
        // An alias is checked for relay rights as asked (it is the address the client knows),
        // then replaced by its targets; the original address stays as ORCPT for DSNs.
        if let Some(targets) = self.ctx.aliases.expand(&address).map(<[String]>::to_vec) {
            let orcpt = orcpt.or_else(|| Some(format!("rfc822;{address}")));
            let mut kept = 0;
            for target in &targets {
                let mut recipient = Recipient::new(target.clone());
                recipient.orcpt = orcpt.clone();
                recipient.notify = notify;
                let target_domain = target.rsplit_once('@').map_or(String::new(), |(_, d)| d.to_lowercase());
                match self.suppressed_by(&target_domain, target) {
                    Some(list) if self.policy.accept_invalid_recipients => {
                        self.txn.as_mut().expect("checked").suppressed.push((recipient, list));
                        kept += 1;
                    }
                    Some(list) => {
                        tracing::info!(peer = %self.conn.peer, alias = %address, "alias target <{target}> is in suppression list \"{list}\"; dropped");
                    }
                    None => {
                        self.txn.as_mut().expect("checked").recipients.push(recipient);
                        kept += 1;
                    }
                }
            }
            let reply = if kept == 0 {
                Reply::new(550, "5.7.1", format!("every target of alias <{address}> is suppressed"))
            } else {
                Reply::new(250, "2.1.5", format!("recipient <{address}> OK"))
            };
            self.reply(reply);
            return Flow::Continue;
        }
        let mut recipient = Recipient::new(address.clone());
        recipient.orcpt = orcpt;
        recipient.notify = notify;
        if let Some(list) = self.suppressed_by(&domain, &address) {
            if self.policy.accept_invalid_recipients {
                self.txn.as_mut().expect("checked").suppressed.push((recipient, list));
                self.reply(Reply::new(250, "2.1.5", format!("recipient <{address}> OK")));
            } else {
                self.reply(Reply::new(
                    550,
                    "5.7.1",
                    format!("recipient is in suppression list \"{list}\": <{address}>"),
                ));
            }
            return Flow::Continue;
        }
        self.txn.as_mut().expect("checked").recipients.push(recipient);
        self.reply(Reply::new(250, "2.1.5", format!("recipient <{address}> OK")));
        Flow::Continue
    }

    /// The suppression list that holds `address`: the source's lists and file, then the
    /// `suppress-file` of the recipient domain's settings (the field dialect puts it in `<domain *>`).
    fn suppressed_by(&self, domain: &str, address: &str) -> Option<String> {
        let ctx = &self.ctx;
        if ctx.global_suppression.contains(address) {
            return Some("global".to_string());
        }
        if let Some(list) =
            ctx.suppressions.check(&self.policy.suppression_lists, self.policy.suppress_file.as_deref(), address)
        {
            return Some(list);
        }
        let settings = ctx.domain_settings(domain)?;
        let file = settings.settings.path(crate::config::Dir::SuppressFile).map(|p| ctx.config.path(p))?;
        ctx.suppressions.check(&[], Some(&file), address)
    }

    fn ready_for_data(&mut self) -> Option<Reply> {
        match &self.txn {
            None => Some(Reply::new(503, "5.5.1", "need MAIL and RCPT before DATA")),
            Some(t) if t.recipients.is_empty() && t.suppressed.is_empty() && t.reports.is_empty() => {
                Some(Reply::new(554, "5.5.1", "no valid recipients"))
            }
            Some(_) => None,
        }
    }

    fn data(&mut self) -> Flow {
        if let Some(reply) = self.ready_for_data() {
            self.reply(reply);
            return if self.count_error() { Flow::Close } else { Flow::Continue };
        }
        self.body = Vec::new();
        self.oversized = false;
        self.mode = Mode::Data(DataReceiver::new());
        self.reply(Reply::new(354, "", "end data with <CR><LF>.<CR><LF>"));
        Flow::Continue
    }

    fn bdat(&mut self, size: usize, last: bool) -> Flow {
        if !self.policy.allow_chunking {
            self.reply(Reply::new(502, "5.5.1", "CHUNKING is not offered"));
            return if self.count_error() { Flow::Close } else { Flow::Continue };
        }
        // The chunk follows the command whatever we answer, so it is always read; a refused
        // chunk is read and dropped, then refused.
        self.pending_refusal = self.ready_for_data();
        if self.pending_refusal.is_some() || (self.body.len() + size) as u64 > self.message_limit() {
            self.oversized = true;
            self.body = Vec::new();
        }
        self.bdat_last = last;
        self.mode = Mode::Bdat(BdatReceiver::new(size, last));
        Flow::Continue
    }

    pub(super) async fn bdat_chunk_done(&mut self) -> Flow {
        if let Some(reply) = self.pending_refusal.take() {
            self.oversized = false;
            self.reply(reply);
            return if self.count_error() { Flow::Close } else { Flow::Continue };
        }
        if self.bdat_last {
            return self.finish_message().await;
        }
        if self.oversized {
            // Keep reading chunks; the refusal comes with the last one.
            self.reply(Reply::new(250, "2.0.0", "chunk received"));
            return Flow::Continue;
        }
        let size = self.body.len();
        self.reply(Reply::new(250, "2.0.0", format!("{size} octets received")));
        Flow::Continue
    }

    fn starttls(&mut self) -> Flow {
        if self.encrypted {
            self.reply(Reply::new(503, "5.5.1", "TLS is already active"));
        } else if !self.starttls_offered() {
            self.reply(Reply::new(502, "5.5.1", "STARTTLS is not available"));
        } else {
            self.reply(Reply::new(220, "2.0.0", "ready to start TLS"));
            return Flow::StartTls;
        }
        Flow::Continue
    }

    fn auth(&mut self, mechanism: u64, initial: &str) -> Flow {
        let refusal = if self.helo.is_none() {
            Some(Reply::new(503, "5.5.1", "send EHLO first"))
        } else if self.auth_user.is_some() {
            Some(Reply::new(503, "5.5.1", "already authenticated"))
        } else if self.txn.is_some() {
            Some(Reply::new(503, "5.5.1", "AUTH is not allowed during a mail transaction"))
        } else if !self.policy.allow_auth || self.ctx.users.is_empty() {
            Some(Reply::new(503, "5.5.1", "AUTH is not available"))
        } else if !self.encrypted
            && (!self.policy.allow_unencrypted_plain_auth || self.policy.require_starttls_before_auth)
        {
            Some(Reply::new(538, "5.7.11", "encryption required for requested authentication mechanism"))
        } else if self.ctx.auth_failures.locked(self.conn.peer.ip(), self.policy.auth_failure_rate) {
            self.reply(Reply::new(421, "4.7.0", "too many authentication failures; try again later"));
            return Flow::Close;
        } else {
            None
        };
        if let Some(reply) = refusal {
            self.reply(reply);
            return if self.count_error() { Flow::Close } else { Flow::Continue };
        }
        let initial = if initial == "=" { "" } else { initial };
        match mechanism {
            AUTH_PLAIN if initial.is_empty() => {
                self.mode = Mode::AuthPlain;
                self.reply(Reply::new(334, "", ""));
                Flow::Continue
            }
            AUTH_PLAIN => self.auth_plain(initial),
            AUTH_LOGIN if initial.is_empty() => {
                self.mode = Mode::AuthLogin(None);
                self.reply(Reply::new(334, "", "VXNlcm5hbWU6"));
                Flow::Continue
            }
            AUTH_LOGIN => self.auth_login_user(initial),
            _ => {
                self.reply(Reply::new(504, "5.5.4", "mechanism not supported: use PLAIN or LOGIN"));
                Flow::Continue
            }
        }
    }

    /// A line answering a 334 challenge.
    pub(super) fn auth_continue(&mut self, line: &[u8]) -> Flow {
        let text = String::from_utf8_lossy(line).trim().to_string();
        let mode = std::mem::replace(&mut self.mode, Mode::Command);
        if text == "*" {
            self.reply(Reply::new(501, "5.0.0", "authentication cancelled"));
            return Flow::Continue;
        }
        match mode {
            Mode::AuthPlain => self.auth_plain(&text),
            Mode::AuthLogin(None) => self.auth_login_user(&text),
            Mode::AuthLogin(Some(user)) => match decode_base64(&text).and_then(|p| String::from_utf8(p).ok()) {
                Some(password) => self.verify(&user, &password),
                None => self.auth_syntax(),
            },
            _ => Flow::Continue,
        }
    }

    fn auth_plain(&mut self, text: &str) -> Flow {
        match decode_plain(text) {
            Some(c) => self.verify(&c.user, &c.password),
            None => self.auth_syntax(),
        }
    }

    fn auth_login_user(&mut self, text: &str) -> Flow {
        match decode_base64(text).and_then(|u| String::from_utf8(u).ok()) {
            Some(user) => {
                self.mode = Mode::AuthLogin(Some(user));
                self.reply(Reply::new(334, "", "UGFzc3dvcmQ6"));
                Flow::Continue
            }
            None => self.auth_syntax(),
        }
    }

    fn auth_syntax(&mut self) -> Flow {
        self.reply(Reply::new(501, "5.5.2", "cannot decode the authentication response (base64 expected)"));
        if self.count_error() { Flow::Close } else { Flow::Continue }
    }

    /// After a TLS handshake: a verified client certificate that names an
    /// `authentication-method certificate` user authenticates the session as that user, as a
    /// successful AUTH would (the `{auth}` source and the user's source apply).
    pub(super) fn certificate_login(&mut self, names: &[String]) {
        let Some((user, source)) = self.ctx.users.by_certificate(names) else { return };
        tracing::info!(peer = %self.conn.peer, user, "smtp client authenticated by its TLS certificate");
        self.login(user, source);
    }

    fn login(&mut self, user: String, source: Option<String>) {
        self.auth_user = Some(user);
        self.named_sources.push("{auth}".into());
        if let Some(s) = source {
            self.named_sources.push(s);
        }
        let names: Vec<&str> = self.named_sources.iter().map(String::as_str).collect();
        self.policy = SourcePolicy::for_client(&self.ctx.config, self.conn.peer.ip(), &names);
    }

    fn verify(&mut self, user: &str, password: &str) -> Flow {
        let ip = self.conn.peer.ip();
        match self.ctx.users.verify(user, password) {
            Some(source) => {
                self.login(user.to_string(), source);
                self.reply(Reply::new(235, "2.7.0", "authentication successful"));
                Flow::Continue
            }
            None => {
                tracing::warn!(peer = %self.conn.peer, user, "smtp authentication failed");
                if self.ctx.auth_failures.record(ip, self.policy.auth_failure_rate) {
                    self.reply(Reply::new(421, "4.7.0", "too many authentication failures; try again later"));
                    return Flow::Close;
                }
                self.reply(Reply::new(535, "5.7.8", "authentication credentials invalid"));
                if self.count_error() { Flow::Close } else { Flow::Continue }
            }
        }
    }
}

#[cfg(test)]
mod qualify_tests {
    use std::path::Path;

    use super::*;
    use crate::config::{FileCheck, load_str};

    fn policy(text: &str) -> SourcePolicy {
        let loaded = load_str("q.conf", text, Path::new("."), FileCheck::Warn);
        assert!(!loaded.diagnostics.has_errors(), "{}", loaded.diagnostics);
        SourcePolicy::for_client(&loaded.config, "192.0.2.1".parse().unwrap(), &[])
    }

    fn rewritten(p: &SourcePolicy, line: &str) -> Option<String> {
        qualified_line(line.as_bytes(), p).map(|l| String::from_utf8(l).unwrap())
    }

    #[test]
    fn bare_local_parts_in_mail_and_rcpt_get_the_suffix() {
        let p = policy("domain-suffix corp.example\n");
        assert_eq!(
            rewritten(&p, "MAIL FROM:<bob> SIZE=10\r\n").as_deref(),
            Some("MAIL FROM:<bob@corp.example> SIZE=10\r\n")
        );
        assert_eq!(rewritten(&p, "rcpt to:<alice>\r\n").as_deref(), Some("rcpt to:<alice@corp.example>\r\n"));
        // Qualified, null and odd addresses, and other commands, are left to the parser.
        assert_eq!(rewritten(&p, "RCPT TO:<alice@x.example>\r\n"), None);
        assert_eq!(rewritten(&p, "MAIL FROM:<>\r\n"), None);
        assert_eq!(rewritten(&p, "RCPT TO:<\"a b\">\r\n"), None);
        assert_eq!(rewritten(&p, "EHLO <bob>\r\n"), None);
        // The rewritten line parses to the qualified address.
        let line = rewritten(&p, "RCPT TO:<alice>\r\n").unwrap();
        match Request::parse(&mut line.as_bytes().iter()) {
            Ok(Request::Rcpt { to }) => assert_eq!(to.address, "alice@corp.example"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn without_suffix_or_auto_qualify_nothing_is_rewritten() {
        assert_eq!(rewritten(&policy(""), "RCPT TO:<alice>\r\n"), None);
        let off = policy("domain-suffix corp.example\n<source 0/0>\n auto-qualify-domain no\n</source>\n");
        assert_eq!(rewritten(&off, "RCPT TO:<alice>\r\n"), None);
    }
}
