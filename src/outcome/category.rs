//! Bounce categories (docs/operations.md, "Delivery"): the `bounceCat` accounting field and the
//! `X-PowerMTA-BounceCategory` DSN field.
//!
//! A [`Classifier`] holds the operator's `<bounce-category-patterns>` followed by Ember's built-in
//! list, compiled once per configuration into one `RegexSet`, so classifying a reply is one pass
//! over each of its two strings whatever the number of patterns. The first pattern (in list
//! order) that matches the status code or the diagnostic text wins, as in PowerMTA; every
//! pattern is case-insensitive (a pattern may turn that off with `(?-i)`).
//!
//! Knows nothing about queues, files or sockets.

use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};

use crate::config::Config;
use crate::config::model::CategoryPattern;

/// The catch-all category.
pub const OTHER: &str = "other";

/// Ember's built-in patterns, in order: PowerMTA's list as copied into real configs — text
/// patterns, then DSN-code patterns, then the catch-all. The
/// `invalid-sender` patterns come from a variant of that list; they stand before the generic
/// policy words (`rejected`, `denied`) so "Sender address rejected" is not `policy-related`.
pub const DEFAULT_PATTERNS: &[(&str, &str)] = &[
    (r"spam", "spam-related"),
    (r"junk mail", "spam-related"),
    (r"blacklist", "spam-related"),
    (r"blocked", "spam-related"),
    (r"\bU\.?C\.?E\.?\b", "spam-related"),
    (r"\bAdv(ertisements?)?\b", "spam-related"),
    (r"unsolicited", "spam-related"),
    (r"\b(open)?RBL\b", "spam-related"),
    (r"realtime blackhole", "spam-related"),
    (r"http://basic.wirehub.nl/blackholes.html", "spam-related"),
    (r"\bvirus\b", "virus-related"),
    (r"message +content", "content-related"),
    (r"content +rejected", "content-related"),
    (r"quota", "quota-issues"),
    (r"limit exceeded", "quota-issues"),
    (r"mailbox +(is +)?full", "quota-issues"),
    (r"\bstorage\b", "quota-issues"),
    (
        r"(user|mailbox|recipient|rcpt|local part|address|account|mail drop|ad(d?)ressee) (has|has been|is)? *(currently|temporarily +)?(disabled|expired|inactive|not activated)",
        "inactive-mailbox",
    ),
    (r"(conta|usu.rio) inativ(a|o)", "inactive-mailbox"),
    (
        r"Too many (bad|invalid|unknown|illegal|unavailable) (user|mailbox|recipient|rcpt|local part|address|account|mail drop|ad(d?)ressee)",
        "other",
    ),
    (
        r"(No such|bad|invalid|unknown|illegal|unavailable) (local +)?(user|mailbox|recipient|rcpt|local part|address|account|mail drop|ad(d?)ressee)",
        "bad-mailbox",
    ),
    (
        r"(user|mailbox|recipient|rcpt|local part|address|account|mail drop|ad(d?)ressee) +(\S+@\S+ +)?(not (a +)?valid|not known|not here|not found|does not exist|bad|invalid|unknown|illegal|unavailable)",
        "bad-mailbox",
    ),
    (
        r"\S+@\S+ +(is +)?(not (a +)?valid|not known|not here|not found|does not exist|bad|invalid|unknown|illegal|unavailable)",
        "bad-mailbox",
    ),
    (r"no mailbox here by that name", "bad-mailbox"),
    (r"my badrcptto list", "bad-mailbox"),
    (r"not our customer", "bad-mailbox"),
    (r"no longer (valid|available)", "bad-mailbox"),
    (r"have a \S+ account", "bad-mailbox"),
    (r"\brelay(ing)?", "relaying-issues"),
    (r"domain (retired|bad|invalid|unknown|illegal|unavailable)", "bad-domain"),
    (r"domain no longer in use", "bad-domain"),
    (r"domain (\S+ +)?(is +)?obsolete", "bad-domain"),
    (
        r"sender ((verify|verification) failed|could not be verified|address rejected|domain must exist)",
        "invalid-sender",
    ),
    (r"unable to verify sender", "invalid-sender"),
    (r"requires valid sender domain", "invalid-sender"),
    (r"No MX for envelope sender domain", "invalid-sender"),
    (r"denied", "policy-related"),
    (r"prohibit", "policy-related"),
    (r"rejected", "policy-related"),
    (r"refused", "policy-related"),
    (r"allowed", "policy-related"),
    (r"banned", "policy-related"),
    (r"policy", "policy-related"),
    (r"suspicious activity", "policy-related"),
    (r"bad sequence", "protocol-errors"),
    (r"syntax error", "protocol-errors"),
    (r"\broute\b", "routing-errors"),
    (r"\bunroutable\b", "routing-errors"),
    (r"\bunrouteable\b", "routing-errors"),
    (r"^2.\d.\d", "success"),
    (r"^[45]\.1\.1", "bad-mailbox"),
    (r"^[45]\.1\.2", "bad-domain"),
    (r"^[45]\.3\.5", "bad-configuration"),
    (r"^[45]\.4\.1", "no-answer-from-host"),
    (r"^[45]\.4\.2", "bad-connection"),
    (r"^[45]\.4\.4", "routing-errors"),
    (r"^[45]\.4\.6", "routing-errors"),
    (r"^[45]\.4\.7", "message-expired"),
    (r"^[45]\.7\.1", "policy-related"),
    (r"", OTHER),
];

/// The compiled pattern list of one configuration.
#[derive(Clone, Debug)]
pub struct Classifier {
    matcher: Matcher,
    categories: Vec<String>,
}

#[derive(Clone, Debug)]
enum Matcher {
    Set(RegexSet),
    /// When the patterns are too large to share one set (only with huge operator lists).
    Each(Vec<Regex>),
}

impl Default for Classifier {
    /// The built-in list alone.
    fn default() -> Classifier {
        Classifier::new(&[])
    }
}

impl Classifier {
    /// The configuration's `<bounce-category-patterns>`, then the built-in list.
    pub fn from_config(config: &Config) -> Classifier {
        Classifier::new(&config.bounce_categories)
    }

    /// `user` patterns (already compiled and checked by the config loader), then the built-in
    /// list.
    pub fn new(user: &[CategoryPattern]) -> Classifier {
        let mut sources: Vec<String> = user.iter().map(|p| p.pattern.regex.as_str().to_string()).collect();
        let mut categories: Vec<String> = user.iter().map(|p| p.category.clone()).collect();
        sources.extend(DEFAULT_PATTERNS.iter().map(|(re, _)| (*re).to_string()));
        categories.extend(DEFAULT_PATTERNS.iter().map(|(_, c)| (*c).to_string()));
        let set = RegexSetBuilder::new(&sources).case_insensitive(true).size_limit(64 << 20).build();
        let matcher = match set {
            Ok(set) => Matcher::Set(set),
            Err(_) => Matcher::Each(
                sources.iter().filter_map(|s| RegexBuilder::new(s).case_insensitive(true).build().ok()).collect(),
            ),
        };
        Classifier { matcher, categories }
    }

    /// The category of a status code (`5.1.1`; a description after it is ignored) and a
    /// diagnostic (`smtp;550 5.1.1 no such user`; the `smtp;` type is not part of what patterns
    /// see, so `/^550/` works as operators write it).
    pub fn classify(&self, status: &str, diag: &str) -> &str {
        let status = status.split_whitespace().next().unwrap_or("");
        let diag = diag_text(diag);
        let first = match &self.matcher {
            Matcher::Set(set) => {
                let a = set.matches(status).iter().next();
                let b = set.matches(diag).iter().next();
                a.into_iter().chain(b).min()
            }
            Matcher::Each(list) => list.iter().position(|re| re.is_match(status) || re.is_match(diag)),
        };
        first.and_then(|i| self.categories.get(i)).map_or(OTHER, String::as_str)
    }
}

/// The text of a diagnostic without its type (`smtp;`, `X-Postfix; `).
fn diag_text(diag: &str) -> &str {
    match diag.split_once(';') {
        Some((kind, rest)) if !kind.is_empty() && kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') => {
            rest.trim_start()
        }
        _ => diag,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{FileCheck, load_str};

    fn builtin(status: &str, diag: &str) -> String {
        Classifier::default().classify(status, diag).to_string()
    }

    #[test]
    fn gmail() {
        assert_eq!(
            builtin(
                "5.1.1",
                "smtp;550 5.1.1 The email account that you tried to reach does not exist. Please try double-checking \
                 the recipient's email address for typos or unnecessary spaces. Learn more at \
                 https://support.google.com/mail/?p=NoSuchUser e26si4398979plj.541 - gsmtp"
            ),
            "bad-mailbox"
        );
        assert_eq!(
            builtin(
                "5.7.1",
                "smtp;550 5.7.1 [203.0.113.5] Our system has detected that this message is likely unsolicited mail. \
                 To reduce the amount of spam sent to Gmail, this message has been blocked."
            ),
            "spam-related"
        );
        assert_eq!(
            builtin(
                "4.2.2",
                "smtp;452 4.2.2 The email account that you tried to reach is over quota. Please direct the recipient \
                 to https://support.google.com/mail/?p=OverQuotaTemp - gsmtp"
            ),
            "quota-issues"
        );
        // No text pattern knows "account that you tried to reach is disabled", and the list has
        // no pattern for 5.2.1: PowerMTA's list calls it "other" too.
        assert_eq!(
            builtin(
                "5.2.1",
                "smtp;550 5.2.1 The email account that you tried to reach is disabled. Learn more at \
                 https://support.google.com/mail/?p=DisabledUser - gsmtp"
            ),
            "other"
        );
        assert_eq!(
            builtin(
                "5.7.26",
                "smtp;550 5.7.26 This mail is unauthenticated, which poses a security risk to the sender and Gmail \
                 users, and has been blocked."
            ),
            "spam-related"
        );
        assert_eq!(builtin("2.0.0", "smtp;250 2.0.0 OK  1700000000 a1si2 - gsmtp"), "success");
    }

    #[test]
    fn outlook() {
        assert_eq!(
            builtin(
                "5.5.0",
                "smtp;550 5.5.0 Requested action not taken: mailbox unavailable (S2017062302). \
                 [BN8NAM12FT022.eop-nam12.prod.protection.outlook.com]"
            ),
            "bad-mailbox"
        );
        assert_eq!(
            builtin(
                "5.7.1",
                "smtp;550 5.7.1 Unfortunately, messages from [203.0.113.5] weren't sent. Please contact your Internet \
                 service provider since part of their network is on our block list (S3150)."
            ),
            "policy-related"
        );
        assert_eq!(
            builtin("5.4.1", "smtp;550 5.4.1 Recipient address rejected: Access denied. AS(201806281)"),
            "policy-related"
        );
        assert_eq!(
            builtin(
                "4.7.650",
                "smtp;451 4.7.650 The mail server [203.0.113.5] has been temporarily rate limited due to IP reputation."
            ),
            "other"
        );
        assert_eq!(
            builtin(
                "5.2.2",
                "smtp;552 5.2.2 Requested mail action aborted: exceeded storage allocation. Mailbox is full"
            ),
            "quota-issues"
        );
    }

    #[test]
    fn yahoo() {
        assert_eq!(
            builtin(
                "4.7.0",
                "smtp;421 4.7.0 [TS01] Messages from 203.0.113.5 temporarily deferred due to user complaints - \
                 4.16.55.1; see https://help.yahoo.com/kb/postmaster/SLN3434.html"
            ),
            "other"
        );
        assert_eq!(
            builtin(
                "5.7.9",
                "smtp;554 5.7.9 Message not accepted for policy reasons.  See https://help.yahoo.com/kb/postmaster/SLN7304.html"
            ),
            "policy-related"
        );
        assert_eq!(
            builtin(
                "5.0.0",
                "smtp;554 delivery error: dd This user doesn't have a yahoo.com account (kijitora@yahoo.com) [0] - \
                 mta1234.mail.bf1.yahoo.com"
            ),
            "bad-mailbox"
        );
        assert_eq!(
            builtin(
                "5.0.0",
                "smtp;554 delivery error: dd Sorry, your message to kijitora@yahoo.com cannot be delivered. This \
                 mailbox is disabled (554.30). - mta1234.mail.bf1.yahoo.com"
            ),
            "inactive-mailbox"
        );
        assert_eq!(
            builtin(
                "5.7.1",
                "smtp;553 5.7.1 [BL21] Connections will not be accepted from 203.0.113.5, because the ip is in \
                 Spamhaus's list; see https://postmaster.yahooinc.com/error-codes"
            ),
            "spam-related"
        );
    }

    #[test]
    fn other_mailers() {
        let cases = [
            (
                "5.1.1",
                "smtp;550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown in virtual mailbox table",
                "bad-mailbox",
            ),
            ("5.0.0", "smtp;550 No such user here", "bad-mailbox"),
            ("5.0.0", "smtp;550 Requested action not taken: mailbox unavailable", "bad-mailbox"),
            (
                "5.7.1",
                "smtp;554 5.7.1 Service unavailable; Client host [203.0.113.5] blocked using zen.spamhaus.org",
                "spam-related",
            ),
            ("5.7.1", "smtp;550 5.7.1 Relaying denied", "relaying-issues"),
            ("5.7.0", "smtp;554 5.7.0 Reject, id=12345 - INFECTED: Eicar-Test-Signature (virus)", "virus-related"),
            ("5.2.2", "smtp;552 5.2.2 Mailbox full", "quota-issues"),
            ("5.5.1", "smtp;503 5.5.1 Error: bad sequence of commands", "protocol-errors"),
            (
                "5.1.8",
                "smtp;553 5.1.8 <x@nodomain.invalid>: Sender address rejected: Domain not found",
                "invalid-sender",
            ),
            ("5.1.2", "smtp;550 5.1.2 Host unknown (Name server: example.invalid: host not found)", "bad-domain"),
            ("4.4.1", "smtp;421 4.4.1 Connection timed out", "no-answer-from-host"),
            ("4.4.2", "smtp;421 4.4.2 Connection dropped", "bad-connection"),
            ("5.0.0", "smtp;550 This message scored 9.9 points. Congratulations!", "other"),
            ("5.3.5", "smtp;550 5.3.5 specified VirtualMTA does not exist", "bad-configuration"),
        ];
        for (status, diag, want) in cases {
            assert_eq!(builtin(status, diag), want, "{diag}");
        }
    }

    #[test]
    fn expiry_is_message_expired() {
        assert_eq!(builtin("4.4.7", ""), "message-expired");
        assert_eq!(
            builtin("4.4.7 (delivery time expired)", "smtp;421 4.4.7 [internal] delivery time expired"),
            "message-expired"
        );
        assert_eq!(builtin("5.4.7", "smtp;554 5.4.7 delivery expired (message too old)"), "message-expired");
    }

    #[test]
    fn nothing_known_is_other() {
        assert_eq!(builtin("", ""), "other");
        assert_eq!(builtin("5.0.0", "smtp;550 go away"), "other");
    }

    #[test]
    fn operator_patterns_come_first_and_may_name_new_categories() {
        let text = "<bounce-category-patterns>\n    /^550 .*go away/ rude-refusal\n    /quota/ over-quota-custom\n    /^5\\.1\\.1/ bad-mailbox\n</bounce-category-patterns>\n";
        let loaded = load_str("t.conf", text, Path::new("."), FileCheck::Warn);
        assert!(!loaded.diagnostics.has_errors(), "{:?}", loaded.diagnostics);
        let c = Classifier::from_config(&loaded.config);
        // Anchored at the reply text, without `smtp;`.
        assert_eq!(c.classify("5.0.0", "smtp;550 GO AWAY now"), "rude-refusal");
        // Overrides the built-in /quota/ quota-issues.
        assert_eq!(c.classify("5.2.2", "smtp;552 5.2.2 over quota"), "over-quota-custom");
        // The operator's list is checked before the built-in text patterns.
        assert_eq!(c.classify("5.1.1", "smtp;550 5.1.1 blocked"), "bad-mailbox");
        // Not matched by the operator's list: the built-in list applies.
        assert_eq!(c.classify("5.7.1", "smtp;554 spam detected"), "spam-related");
    }

    #[test]
    fn case_insensitive_unless_a_pattern_says_otherwise() {
        assert_eq!(builtin("5.0.0", "smtp;550 MAILBOX IS FULL"), "quota-issues");
        assert_eq!(builtin("5.0.0", "smtp;550 message rejected as SPAM"), "spam-related");
        let text = "<bounce-category-patterns>\n    /(?-i)SHOUT/ shouting\n</bounce-category-patterns>\n";
        let loaded = load_str("t.conf", text, Path::new("."), FileCheck::Warn);
        let c = Classifier::from_config(&loaded.config);
        assert_eq!(c.classify("5.0.0", "smtp;550 SHOUT"), "shouting");
        assert_eq!(c.classify("5.0.0", "smtp;550 shout"), "other");
    }

    #[test]
    fn the_diagnostic_type_is_stripped_only_when_it_is_one() {
        assert_eq!(diag_text("smtp;550 x"), "550 x");
        assert_eq!(diag_text("X-Postfix; host not found"), "host not found");
        assert_eq!(diag_text("550 5.7.1 see http://x/?a;b"), "550 5.7.1 see http://x/?a;b");
    }
}
