//! Structured one-line rules found inside blocks: `<smtp-pattern-list>` reply rules,
//! `<pattern-list>` entries, and backoff rules (`backoff-rule`, and the field-dialect lines
//! `421 RP-001 *, 1h, 5, 1000` inside `<domain>`).
//!
//! Owns their syntax and their static checks (conflicting actions, see `check_actions`). What
//! the rules do to a queue belongs to the shaping code. Errors say where in the rule's text the
//! problem is, so the caller can point at the column.

use std::fmt;

use super::lexer::Token;
use super::value::{ConfigRegex, ValueError, quote};
use super::values::{Interval, Rate, Ratio};

/// A problem in a rule: what is wrong and the byte offset in the rule's text where it is (the
/// start of the text when a part is missing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleError {
    pub offset: usize,
    pub message: String,
}

impl RuleError {
    fn new(offset: usize, message: impl fmt::Display) -> Self {
        RuleError { offset, message: message.to_string() }
    }

    /// The error at its column, for a rule written as `token`'s text.
    pub fn at(self, token: &Token) -> ValueError {
        ValueError::within(token, self.offset, self.message)
    }
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Where `part`, a slice of `whole`, starts in it.
fn offset_in(whole: &str, part: &str) -> usize {
    (part.as_ptr() as usize).saturating_sub(whole.as_ptr() as usize).min(whole.len())
}

/// The items of a list separated by commas and/or spaces, as slices of `text`.
fn items(text: &str) -> Vec<&str> {
    text.split(|c: char| c == ',' || c.is_whitespace()).filter(|s| !s.is_empty()).collect()
}

/// Splits `/regex/ rest` at the first unescaped closing slash; both are slices of `text`.
fn split_regex(text: &str) -> Result<(&str, &str), RuleError> {
    let start = text.trim();
    let at = offset_in(text, start);
    if !start.starts_with('/') {
        return Err(RuleError::new(at, format!("expected a /regular expression/ first, found {start:?}")));
    }
    let bytes = start.as_bytes();
    let mut i = 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'/' => return Ok((&start[..=i], start[i + 1..].trim())),
            _ => i += 1,
        }
    }
    Err(RuleError::new(at, format!("unterminated regular expression {start:?}: missing closing '/'")))
}

/// An action of a `reply` rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplyAction {
    Mode(QueueModeChange),
    SkipMx,
    BounceQueue,
    BounceRcpt,
    DeferQueue,
    DisableSourceIp,
    ReenableAfter(Option<Interval>),
    BackoffToNormalAfter(Option<Interval>),
    /// `trigger=N/INTERVAL` (beyond PowerMTA): the rule acts only on its Nth match within the
    /// interval, so one stray reply does not change a queue.
    Trigger(Rate),
    /// `trigger=PERCENT%/MIN-SAMPLE/WINDOW` (beyond PowerMTA): the rule acts only while its
    /// matches are more than PERCENT of at least MIN-SAMPLE attempts of the queue in WINDOW.
    RatioTrigger(Ratio),
    /// `adaptive=rate` or `adaptive=connections` (beyond PowerMTA): under `adaptive-delivery`,
    /// the reply is a push-back on the queue's rate or connections.
    Adaptive(PushBack),
}

/// What a receiver's push-back is about, for adaptive delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushBack {
    Rate,
    Connections,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueModeChange {
    Backoff,
    Normal,
}

/// `reply /regex/ action[,action…]`.
#[derive(Clone, Debug)]
pub struct ReplyRule {
    pub pattern: ConfigRegex,
    pub actions: Vec<ReplyAction>,
}

impl ReplyRule {
    pub fn parse(text: &str) -> Result<ReplyRule, RuleError> {
        let (re, rest) = split_regex(text)?;
        let pattern = ConfigRegex::parse(re, true).map_err(|m| RuleError::new(offset_in(text, re), m))?;
        let words = items(rest);
        if words.is_empty() {
            return Err(RuleError::new(
                offset_in(text, re),
                format!(
                    "missing action after {re}: expected mode=backoff, mode=normal, skip-mx, bounce-queue, bounce-rcpt, defer-queue or disable-source-ip"
                ),
            ));
        }
        let mut actions = Vec::new();
        for w in words {
            let lower = w.to_lowercase();
            let here = offset_in(text, w);
            let never_or = |v: &str| -> Result<Option<Interval>, RuleError> {
                if v == "never" { Ok(None) } else { Interval::parse(v).map(Some).map_err(|m| RuleError::new(here, m)) }
            };
            let action = match lower.split_once('=') {
                Some(("mode", "backoff")) => ReplyAction::Mode(QueueModeChange::Backoff),
                Some(("mode", "normal")) => ReplyAction::Mode(QueueModeChange::Normal),
                Some(("reenable-after", v)) => ReplyAction::ReenableAfter(never_or(v)?),
                Some(("backoff-to-normal-after", v)) => ReplyAction::BackoffToNormalAfter(never_or(v)?),
                Some(("trigger", v)) if v.contains('%') => {
                    ReplyAction::RatioTrigger(Ratio::parse(v).map_err(|m| RuleError::new(here, m))?)
                }
                Some(("adaptive", "rate")) => ReplyAction::Adaptive(PushBack::Rate),
                Some(("adaptive", "connections")) => ReplyAction::Adaptive(PushBack::Connections),
                Some(("trigger", v)) => ReplyAction::Trigger(parse_threshold(v).map_err(|m| RuleError::new(here, m))?),
                None if lower == "skip-mx" => ReplyAction::SkipMx,
                None if lower == "bounce-queue" => ReplyAction::BounceQueue,
                None if lower == "bounce-rcpt" => ReplyAction::BounceRcpt,
                None if lower == "defer-queue" => ReplyAction::DeferQueue,
                None if lower == "disable-source-ip" => ReplyAction::DisableSourceIp,
                _ => {
                    return Err(RuleError::new(
                        here,
                        format!(
                            "unknown reply action {w:?}: expected mode=backoff, mode=normal, skip-mx, bounce-queue, bounce-rcpt, defer-queue, disable-source-ip, reenable-after=T, backoff-to-normal-after=T, trigger=N/T, trigger=P%/N/T, adaptive=rate or adaptive=connections"
                        ),
                    ));
                }
            };
            actions.push(action);
        }
        check_actions(&actions).map_err(|m| RuleError::new(offset_in(text, rest), m))?;
        Ok(ReplyRule { pattern, actions })
    }
}

/// An invalid combination of actions in one `reply` rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ActionConflict {
    #[error("conflicting actions: mode=backoff and mode=normal in one rule")]
    BackoffAndNormal,
    #[error("conflicting actions: skip-mx and bounce-queue in one rule")]
    SkipMxAndBounceQueue,
    #[error("reenable-after needs disable-source-ip in the same rule")]
    ReenableWithoutDisable,
    #[error("reenable-after is given more than once")]
    ReenableTwice,
    #[error("a rule has one trigger: trigger= is given more than once")]
    TwoTriggers,
}

/// The invalid combinations of actions in one `reply` rule.
fn check_actions(actions: &[ReplyAction]) -> Result<(), ActionConflict> {
    let has = |a: &ReplyAction| actions.contains(a);
    let count = |f: fn(&ReplyAction) -> bool| actions.iter().filter(|a| f(a)).count();
    if has(&ReplyAction::Mode(QueueModeChange::Backoff)) && has(&ReplyAction::Mode(QueueModeChange::Normal)) {
        return Err(ActionConflict::BackoffAndNormal);
    }
    if has(&ReplyAction::SkipMx) && has(&ReplyAction::BounceQueue) {
        return Err(ActionConflict::SkipMxAndBounceQueue);
    }
    let reenables = count(|a| matches!(a, ReplyAction::ReenableAfter(_)));
    if reenables > 0 && !has(&ReplyAction::DisableSourceIp) {
        return Err(ActionConflict::ReenableWithoutDisable);
    }
    if reenables > 1 {
        return Err(ActionConflict::ReenableTwice);
    }
    if count(|a| matches!(a, ReplyAction::Trigger(_) | ReplyAction::RatioTrigger(_))) > 1 {
        return Err(ActionConflict::TwoTriggers);
    }
    Ok(())
}

impl fmt::Display for ReplyAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let never = |i: &Option<Interval>| i.map_or_else(|| "never".to_string(), |i| i.to_string());
        match self {
            ReplyAction::Mode(QueueModeChange::Backoff) => f.write_str("mode=backoff"),
            ReplyAction::Mode(QueueModeChange::Normal) => f.write_str("mode=normal"),
            ReplyAction::SkipMx => f.write_str("skip-mx"),
            ReplyAction::BounceQueue => f.write_str("bounce-queue"),
            ReplyAction::BounceRcpt => f.write_str("bounce-rcpt"),
            ReplyAction::DeferQueue => f.write_str("defer-queue"),
            ReplyAction::DisableSourceIp => f.write_str("disable-source-ip"),
            ReplyAction::ReenableAfter(i) => write!(f, "reenable-after={}", never(i)),
            ReplyAction::BackoffToNormalAfter(i) => write!(f, "backoff-to-normal-after={}", never(i)),
            ReplyAction::Trigger(r) => write!(f, "trigger={r}"),
            ReplyAction::RatioTrigger(r) => write!(f, "trigger={r}"),
            ReplyAction::Adaptive(PushBack::Rate) => f.write_str("adaptive=rate"),
            ReplyAction::Adaptive(PushBack::Connections) => f.write_str("adaptive=connections"),
        }
    }
}

impl fmt::Display for ReplyRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let actions: Vec<String> = self.actions.iter().map(ToString::to_string).collect();
        write!(f, "{} {}", self.pattern.source, actions.join(","))
    }
}

/// What a `<pattern-list>` entry selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatternResult {
    VirtualMta(String),
    RecipientPriority(u8),
    CallTo(String),
}

/// `[HEADER] /regex/ result` or (for `*`) just `result`.
#[derive(Clone, Debug)]
pub struct PatternEntry {
    pub header: Option<String>,
    pub pattern: Option<ConfigRegex>,
    pub results: Vec<PatternResult>,
}

impl PatternEntry {
    pub fn parse(text: &str) -> Result<PatternEntry, RuleError> {
        let start = text.trim();
        let regex = |re: &str| ConfigRegex::parse(re, false).map_err(|m| RuleError::new(offset_in(text, re), m));
        let (header, pattern, rest) = if start.starts_with('/') {
            let (re, rest) = split_regex(start)?;
            (None, Some(regex(re)?), rest)
        } else if let Some((name, after)) =
            start.split_once(char::is_whitespace).filter(|(_, a)| a.trim_start().starts_with('/'))
        {
            let (re, rest) = split_regex(after)?;
            (Some(name.to_string()), Some(regex(re)?), rest)
        } else {
            (None, None, start)
        };
        let mut results = Vec::new();
        let mut words = items(rest).into_iter();
        while let Some(item) = words.next() {
            let here = offset_in(text, item);
            let result = if let Some(v) = item.strip_prefix("virtual-mta=") {
                PatternResult::VirtualMta(v.to_string())
            } else if let Some(v) = item.strip_prefix("recipient-priority=") {
                match v.parse::<u8>() {
                    Ok(n) if n <= 100 => PatternResult::RecipientPriority(n),
                    _ => return Err(RuleError::new(here, format!("recipient-priority must be 0 to 100, found {v:?}"))),
                }
            } else if let Some(v) = item.strip_prefix("call-to:") {
                // `call-to: OTHERLIST`, as PowerMTA's documentation writes it, has the name in the
                // next word.
                let name = if v.is_empty() { words.next().unwrap_or_default() } else { v };
                if name.is_empty() {
                    return Err(RuleError::new(here, "call-to: expected the name of a <pattern-list>"));
                }
                PatternResult::CallTo(name.to_string())
            } else {
                return Err(RuleError::new(
                    here,
                    format!(
                        "unknown pattern result {item:?}: expected virtual-mta=NAME, recipient-priority=N or call-to:LIST"
                    ),
                ));
            };
            results.push(result);
        }
        if results.is_empty() {
            return Err(RuleError::new(
                offset_in(text, start),
                "missing result: expected virtual-mta=NAME, recipient-priority=N or call-to:LIST",
            ));
        }
        Ok(PatternEntry { header, pattern, results })
    }
}

impl fmt::Display for PatternEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(h) = &self.header {
            write!(f, "{h} ")?;
        }
        if let Some(p) = &self.pattern {
            write!(f, "{} ", p.source)?;
        }
        let results: Vec<String> = self
            .results
            .iter()
            .map(|r| match r {
                PatternResult::VirtualMta(v) => format!("virtual-mta={v}"),
                PatternResult::RecipientPriority(n) => format!("recipient-priority={n}"),
                PatternResult::CallTo(l) => format!("call-to:{l}"),
            })
            .collect();
        f.write_str(&results.join(","))
    }
}

/// A reply-triggered backoff: when a reply has `code`, and (if given) the enhanced status code
/// and text, the queue enters backoff for `duration` with the given connection and rate caps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackoffRule {
    pub code: u16,
    pub enhanced: Option<String>,
    pub text: Option<String>,
    pub duration: Interval,
    pub max_smtp_out: u64,
    pub max_msg_rate: Option<Rate>,
    /// An optional fifth field `trigger=N/INTERVAL`: act on the Nth match within the interval.
    pub trigger: Option<Rate>,
}

/// Why a `trigger=` threshold is unusable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ThresholdError {
    #[error("trigger={0} never fires: expected N/INTERVAL like trigger=3/10m with N of at least 1")]
    NeverFires(String),
    #[error("expected trigger=N/INTERVAL like trigger=3/10m, found trigger={0:?}")]
    Syntax(String),
}

/// `N/INTERVAL` of a `trigger=`: at least one match, in a real interval.
pub fn parse_threshold(text: &str) -> Result<Rate, ThresholdError> {
    match Rate::parse(text) {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err(ThresholdError::NeverFires(text.to_string())),
        Err(_) => Err(ThresholdError::Syntax(text.to_string())),
    }
}

fn is_enhanced_code(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && matches!(parts[0], "2" | "4" | "5")
        && parts[1..].iter().all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
}

impl BackoffRule {
    /// Parses `CODE MATCH [MATCH], DURATION, CONNECTIONS, RATE`. A rate without a unit is per
    /// hour, as the field dialect's fourth column ("max messages/hour") means. A missing field is
    /// reported at the start of `text`, a bad one where it is written.
    pub fn parse(text: &str) -> Result<BackoffRule, RuleError> {
        let expected = "CODE MATCH *, DURATION, CONNECTIONS, RATE like 421 RP-001 *, 1h, 5, 1000";
        let start = offset_in(text, text.trim_start());
        let missing = || RuleError::new(start, format!("expected {expected}, found {:?}", text.trim()));
        let mut fields: Vec<&str> = text.split(',').map(str::trim).collect();
        let trigger = match fields.last().and_then(|f| f.strip_prefix("trigger=")) {
            Some(t) => {
                let at_trigger = offset_in(text, fields.last().expect("checked"));
                let parsed = parse_threshold(t).map_err(|m| RuleError::new(at_trigger, m))?;
                fields.pop();
                Some(parsed)
            }
            None => None,
        };
        let [head, duration, conns, rate] = fields.as_slice() else {
            return Err(missing());
        };
        let at = |part: &str| offset_in(text, part);
        let words = head_words(head).map_err(|m| RuleError::new(at(head), m))?;
        let Some((code, matches)) = words.split_first() else {
            return Err(missing());
        };
        let code_at = at(code);
        let code: u16 = code
            .parse()
            .ok()
            .filter(|c| (400..600).contains(c))
            .ok_or_else(|| RuleError::new(code_at, format!("expected a 4xx or 5xx reply code, found {code:?}")))?;
        if matches.is_empty() || matches.len() > 2 {
            let where_ = matches.get(2).map_or(code_at, |m| at(m));
            return Err(RuleError::new(
                where_,
                format!(
                    "expected one or two match fields (text, enhanced code or *) after {code}, found {}",
                    matches.len()
                ),
            ));
        }
        let (mut enhanced, mut text_match) = (None, None);
        for m in matches {
            let word = unquote(m);
            if word == "*" {
                continue;
            }
            if is_enhanced_code(word) && enhanced.is_none() {
                enhanced = Some(word.to_string());
            } else if text_match.is_none() {
                text_match = Some(word.to_string());
            } else {
                return Err(RuleError::new(at(m), format!("two text matches in one backoff rule: {word:?}")));
            }
        }
        let duration = Interval::parse(duration).map_err(|m| RuleError::new(at(duration), m))?;
        let max_smtp_out: u64 = conns
            .parse()
            .map_err(|_| RuleError::new(at(conns), format!("expected a number of connections, found {conns:?}")))?;
        if max_smtp_out == 0 {
            return Err(RuleError::new(
                at(conns),
                "a backoff rule needs at least one connection (0 would stop the queue; use the defer-queue action)",
            ));
        }
        let max_msg_rate = if rate.bytes().all(|b| b.is_ascii_digit()) && !rate.is_empty() && *rate != "0" {
            Rate::parse(&format!("{rate}/h"))
        } else {
            Rate::parse(rate)
        }
        .map_err(|m| RuleError::new(at(rate), m))?;
        if let Some(problem) = super::shaping::backoff_rate_problem(max_msg_rate, rate) {
            return Err(RuleError::new(at(rate), problem));
        }
        Ok(BackoffRule { code, enhanced, text: text_match, duration, max_smtp_out, max_msg_rate, trigger })
    }
}

/// A backoff rule's first field with an opening quote and no closing one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unterminated quoted text in {0:?}")]
struct Unterminated(String);

/// Words of the first field as slices of it; a word in double quotes (text with spaces) keeps
/// its quotes, `unquote` removes them.
fn head_words(head: &str) -> Result<Vec<&str>, Unterminated> {
    let mut words = Vec::new();
    let mut rest = head.trim();
    while !rest.is_empty() {
        let end = if let Some(q) = rest.strip_prefix('"') {
            q.find('"').ok_or_else(|| Unterminated(head.to_string()))? + 2
        } else {
            rest.find(char::is_whitespace).unwrap_or(rest.len())
        };
        words.push(&rest[..end]);
        rest = rest[end..].trim_start();
    }
    Ok(words)
}

fn unquote(word: &str) -> &str {
    word.strip_prefix('"').and_then(|w| w.strip_suffix('"')).unwrap_or(word)
}

impl fmt::Display for BackoffRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        match (&self.text, &self.enhanced) {
            (Some(t), None) => write!(f, " {} *", quote(t))?,
            (None, Some(e)) => write!(f, " {e} *")?,
            (Some(t), Some(e)) => write!(f, " {e} {}", quote(t))?,
            (None, None) => f.write_str(" * *")?,
        }
        let rate = self.max_msg_rate.map_or_else(|| "unlimited".to_string(), |r| r.to_string());
        write!(f, ", {}, {}, {}", self.duration, self.max_smtp_out, rate)?;
        if let Some(t) = self.trigger {
            write!(f, ", trigger={t}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_dialect_backoff_rules() {
        let r = BackoffRule::parse("421 RP-001 *, 1h, 5, 1000").unwrap();
        assert_eq!((r.code, r.text.as_deref(), r.enhanced.as_deref()), (421, Some("RP-001"), None));
        assert_eq!(r.to_string(), "421 RP-001 *, 1h, 5, 1000/h");
        let r = BackoffRule::parse("421 4.3.2 *, 45m, 2, 500").unwrap();
        assert_eq!(r.enhanced.as_deref(), Some("4.3.2"));
        let t = BackoffRule::parse("421 RP-001 *, 1h, 5, 1000, trigger=3/10m").unwrap();
        assert_eq!(t.trigger, Some(Rate { count: 3, period: 600 }));
        assert_eq!(t.to_string(), "421 RP-001 *, 1h, 5, 1000/h, trigger=3/10m");
        assert_eq!(BackoffRule::parse(&t.to_string()).unwrap(), t);
        assert!(BackoffRule::parse("421 RP-001 *, 1h, 5, 1000, trigger=0").is_err());
        assert!(ReplyRule::parse("/x/ mode=backoff,trigger=2/1m").is_ok());
        assert!(ReplyRule::parse("/x/ mode=backoff,trigger=soon").is_err());
        let ratio = ReplyRule::parse("/x/ mode=backoff,trigger=5%/200/10m,adaptive=rate").unwrap();
        assert_eq!(ratio.to_string(), "/x/ mode=backoff,trigger=5%/200/10m,adaptive=rate");
        assert!(ReplyRule::parse("/x/ adaptive=connections").is_ok());
        assert!(ReplyRule::parse("/x/ adaptive=faster").is_err());
        assert!(ReplyRule::parse("/x/ mode=backoff,trigger=2/1m,trigger=5%/200/10m").is_err());
        assert_eq!(r.to_string(), "421 4.3.2 *, 45m, 2, 500/h");
        assert_eq!(BackoffRule::parse(&r.to_string()).unwrap(), r);
        assert!(BackoffRule::parse("250 x *, 1h, 5, 10").is_err());
        assert!(BackoffRule::parse("421 a b c, 1h, 5, 10").is_err());
        let quoted = BackoffRule::parse("421 4.7.0 \"[TS04] x\", 2h, 2, 300").unwrap();
        assert_eq!(quoted.text.as_deref(), Some("[TS04] x"));
    }

    #[test]
    fn backoff_rule_errors_say_where() {
        let at = |text: &str| BackoffRule::parse(text).unwrap_err().offset;
        // A missing field: the start of the rule.
        assert_eq!(at("421 RP-001 *, 1h, 5"), 0);
        assert_eq!(at("  421 RP-001 *, 1h, 5"), 2);
        // A bad field: where it is written.
        assert_eq!(at("421 RP-001 *, soon, 5, 1000"), 14);
        assert_eq!(at("421 RP-001 *, 1h, many, 1000"), 18);
        assert_eq!(at("421 RP-001 *, 1h, 5, 10/fortnight"), 21);
        assert_eq!(at("250 RP-001 *, 1h, 5, 10"), 0);
        assert_eq!(at("421 a b c, 1h, 5, 10"), 8);
        let e = BackoffRule::parse("421 RP-001 *, soon, 5, 1000").unwrap_err();
        assert_eq!(e.message, "expected a time interval like 30m, 4d12h or 300s, found \"soon\"");
    }

    #[test]
    fn reply_rules_and_conflicts() {
        let r = ReplyRule::parse("/^421 .* too many errors/ mode=backoff,disable-source-ip,reenable-after=1h").unwrap();
        assert!(r.pattern.regex.is_match("421 4.7.0 TOO MANY ERRORS"));
        assert_eq!(r.to_string(), "/^421 .* too many errors/ mode=backoff,disable-source-ip,reenable-after=1h");
        assert!(ReplyRule::parse("/x/ mode=backoff,mode=normal").is_err());
        assert!(ReplyRule::parse("/x/ skip-mx,bounce-queue").is_err());
        assert!(ReplyRule::parse("/x/ reenable-after=1h").is_err());
        assert!(ReplyRule::parse("/x/ fly").is_err());
        assert!(ReplyRule::parse("/x").is_err());
    }

    #[test]
    fn pattern_entries() {
        let p = PatternEntry::parse("/@yahoo\\./ virtual-mta=v1,recipient-priority=20").unwrap();
        assert_eq!(p.results.len(), 2);
        let h = PatternEntry::parse("X-Campaign /^promo/ virtual-mta=bulk").unwrap();
        assert_eq!(h.header.as_deref(), Some("X-Campaign"));
        let all = PatternEntry::parse("virtual-mta=default-pool").unwrap();
        assert!(all.pattern.is_none());
        assert_eq!(PatternEntry::parse("/x/ priority=3").unwrap_err().offset, 4);
        let spaced = PatternEntry::parse("/x/ call-to: other, virtual-mta=v1").unwrap();
        assert_eq!(spaced.results, [PatternResult::CallTo("other".into()), PatternResult::VirtualMta("v1".into())]);
    }

    #[test]
    fn reply_rule_errors_say_where() {
        let at = |text: &str| ReplyRule::parse(text).unwrap_err().offset;
        assert_eq!(at("/x/ mode=backoff, fly"), 18);
        assert_eq!(at("/x/ mode=backoff,mode=normal"), 4);
        assert_eq!(at("/(x/ skip-mx"), 0);
    }
}
