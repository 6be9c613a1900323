//! `<pattern-list>` selection at injection (docs/operations.md, "Injection"): the virtual MTA and
//! the recipient priority the `pattern-list` of a message's source chooses for it.
//!
//! Owns the matching rules. Entries are tried in the order they are written and the first match
//! wins: `mail-from /re/` on the envelope sender, `rcpt-to /re/` on a recipient, `header NAME /re/`
//! on the raw value of any `NAME` field, `*` always. A matching entry's `call-to:LIST` continues in
//! the named list; when that list matches nothing and the entry chose nothing itself, the calling
//! list goes on with its next entry (a called list is a subroutine, not a dead end). With several
//! recipients the first recipient whose choice came from an `rcpt-to` entry decides for the whole
//! message, PowerMTA's caveat [UG5 §3.3.14.3].
//!
//! An inline `<pattern-list>` (one without a name, inside another) is tried where it is written,
//! like a group of entries: its first match wins, and when nothing in it matches the outer list
//! continues after it. PowerMTA also lets an inline list hang on an entry
//! (`mail-from /re/ <pattern-list>` … `</pattern-list>`), making it conditional on that entry; the
//! configuration grammar does not parse that form (it reads the tag as a result word), so it cannot
//! reach this module.
//!
//! Built once per configuration generation from the config's values, whose regexes are already
//! compiled; evaluating a message compiles nothing. Knows nothing about SMTP or about which virtual
//! MTAs exist: the caller decides what an unknown name means and how to refuse it.

use std::collections::BTreeMap;

use crate::config::model::OtherBlock;
use crate::config::rules::PatternResult;
use crate::config::value::{ConfigRegex, Value};
use crate::config::{Config, Dir};
use crate::message::Recipient;
use crate::message::headers::Header;

/// What a pattern list chose for a message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// `virtual-mta=NAME` (a VMTA, a pool or `{default}`), as written.
    pub vmta: Option<Chosen>,
    /// `recipient-priority=N`, 0 to 100.
    pub priority: Option<u8>,
}

/// A virtual MTA name and the entry that chose it, for logs and refusals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chosen {
    pub name: String,
    /// `<pattern-list NAME> rcpt-to /re/ virtual-mta=x (FILE:LINE)`.
    pub rule: String,
}

/// The `<pattern-list>` blocks of one configuration generation, ready to evaluate.
#[derive(Debug, Default)]
pub struct PatternLists {
    lists: BTreeMap<String, List>,
    warnings: Vec<String>,
}

#[derive(Debug)]
struct List {
    items: Vec<Item>,
}

#[derive(Debug)]
enum Item {
    Entry(Entry),
    Inline(List),
}

#[derive(Debug)]
struct Entry {
    test: Test,
    /// The first `virtual-mta=` of the entry.
    vmta: Option<String>,
    /// The first `recipient-priority=` of the entry.
    priority: Option<u8>,
    /// Every `call-to:`, in the order written.
    calls: Vec<String>,
    rule: String,
}

#[derive(Debug)]
enum Test {
    MailFrom(ConfigRegex),
    RcptTo(ConfigRegex),
    Header(String, ConfigRegex),
    Always,
    /// An entry that cannot match: `header` without a field name (reported by `warnings`).
    Never,
}

/// A decision while evaluating: what is chosen so far and whether a recipient decided it.
#[derive(Debug, Default)]
struct Decision {
    vmta: Option<Chosen>,
    priority: Option<u8>,
    by_rcpt: bool,
}

impl Decision {
    fn is_empty(&self) -> bool {
        self.vmta.is_none() && self.priority.is_none()
    }

    /// Fills what the calling entry did not choose itself from what the called list chose.
    fn fill_from(&mut self, called: Decision) {
        if self.vmta.is_none() {
            self.vmta = called.vmta;
        }
        if self.priority.is_none() {
            self.priority = called.priority;
        }
        self.by_rcpt |= called.by_rcpt;
    }

    fn into_selection(self) -> Selection {
        Selection { vmta: self.vmta, priority: self.priority }
    }
}

/// The message facts the matchers see.
struct Probe<'m, 'h> {
    sender: &'m str,
    header: &'m Header<'h>,
}

impl PatternLists {
    /// Every named top-level `<pattern-list>` of `config`, entries in the order written.
    pub fn from_config(config: &Config) -> PatternLists {
        let mut lists = BTreeMap::new();
        let mut warnings = Vec::new();
        for block in config.blocks_of("pattern-list") {
            if let Some(name) = &block.arg {
                let label = format!("<pattern-list {name}>");
                lists.insert(name.clone(), List::build(block, &label, &mut warnings));
            }
        }
        let mut this = PatternLists { lists, warnings };
        this.warn_about_cycles();
        this
    }

    /// Problems that make entries useless without making the config invalid: `header` without a
    /// field name, `call-to:` loops. The daemon logs them once per generation.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// What the list `name` chooses for a message, or `None` when nothing in it matches (or there
    /// is no such list).
    pub fn select(&self, name: &str, sender: &str, recipients: &[Recipient], header: &Header<'_>) -> Option<Selection> {
        let (name, list) = self.lists.get_key_value(name)?;
        let probe = Probe { sender, header };
        let rcpts: Vec<Option<&str>> = if recipients.is_empty() {
            vec![None]
        } else {
            recipients.iter().map(|r| Some(r.address.as_str())).collect()
        };
        let mut first = None;
        for (i, rcpt) in rcpts.into_iter().enumerate() {
            let mut asked_rcpt = false;
            let decision = self.eval(list, &probe, rcpt, &mut vec![name.as_str()], &mut asked_rcpt);
            if decision.as_ref().is_some_and(|d| d.by_rcpt) {
                return decision.map(Decision::into_selection);
            }
            if i == 0 {
                // No rcpt-to entry was reached: the other recipients would get the same answer.
                if !asked_rcpt {
                    return decision.map(Decision::into_selection);
                }
                first = decision;
            }
        }
        first.map(Decision::into_selection)
    }

    /// The first match in `list` for one recipient. `stack` holds the named lists being
    /// evaluated, so a `call-to:` loop ends instead of recursing; `asked_rcpt` records that an
    /// `rcpt-to` entry was reached.
    fn eval<'s>(
        &'s self,
        list: &'s List,
        probe: &Probe<'_, '_>,
        rcpt: Option<&str>,
        stack: &mut Vec<&'s str>,
        asked_rcpt: &mut bool,
    ) -> Option<Decision> {
        for item in &list.items {
            let entry = match item {
                Item::Inline(inner) => match self.eval(inner, probe, rcpt, stack, asked_rcpt) {
                    Some(d) => return Some(d),
                    None => continue,
                },
                Item::Entry(entry) => entry,
            };
            let matched = match &entry.test {
                Test::MailFrom(re) => re.regex.is_match(probe.sender),
                Test::RcptTo(re) => {
                    *asked_rcpt = true;
                    rcpt.is_some_and(|r| re.regex.is_match(r))
                }
                Test::Header(name, re) => {
                    probe.header.raw_values(name).any(|v| re.regex.is_match(&String::from_utf8_lossy(v)))
                }
                Test::Always => true,
                Test::Never => false,
            };
            if !matched {
                continue;
            }
            let mut decision = Decision {
                vmta: entry.vmta.as_ref().map(|name| Chosen { name: name.clone(), rule: entry.rule.clone() }),
                priority: entry.priority,
                by_rcpt: matches!(entry.test, Test::RcptTo(_)),
            };
            for call in &entry.calls {
                let Some((called_name, called)) = self.lists.get_key_value(call) else { continue };
                if stack.contains(&called_name.as_str()) {
                    continue;
                }
                stack.push(called_name);
                let inner = self.eval(called, probe, rcpt, stack, asked_rcpt);
                stack.pop();
                if let Some(inner) = inner {
                    decision.fill_from(inner);
                }
            }
            if !decision.is_empty() {
                return Some(decision);
            }
        }
        None
    }

    /// Reports every named list that can reach itself through `call-to:` (evaluation skips the
    /// repeated call, so the loop only costs the entries it makes useless).
    fn warn_about_cycles(&mut self) {
        for (name, list) in &self.lists {
            let mut seen = vec![name.as_str()];
            let mut todo: Vec<&str> = list.calls().collect();
            while let Some(next) = todo.pop() {
                if next == name {
                    self.warnings.push(format!(
                        "<pattern-list {name}> calls itself through call-to: (the repeated call is skipped)"
                    ));
                    break;
                }
                if seen.contains(&next) {
                    continue;
                }
                seen.push(next);
                if let Some(l) = self.lists.get(next) {
                    todo.extend(l.calls());
                }
            }
        }
    }
}

impl List {
    /// The entries and inline lists of `block`, in the order written. Includes are not allowed
    /// inside a `<pattern-list>`, so line and column order is the written order.
    fn build(block: &OtherBlock, label: &str, warnings: &mut Vec<String>) -> List {
        let mut items: Vec<((u32, u32), Item)> = Vec::new();
        for dir in [Dir::MailFromPattern, Dir::RcptToPattern, Dir::HeaderPattern, Dir::CatchAllPattern] {
            for e in block.settings.raw(dir).unwrap_or_default() {
                let Value::PatternEntry(p) = &e.value else { continue };
                let location = e.origin.location();
                let at = location.map_or((0, 0), |l| (l.line, l.col));
                let written = location.map(|l| format!(" ({})", l.file_line())).unwrap_or_default();
                let rule = format!("{label} {} {p}{written}", dir.def().name);
                let test = match (dir, &p.pattern, &p.header) {
                    (Dir::CatchAllPattern, _, _) | (_, None, _) => Test::Always,
                    (Dir::MailFromPattern, Some(re), _) => Test::MailFrom(re.clone()),
                    (Dir::RcptToPattern, Some(re), _) => Test::RcptTo(re.clone()),
                    (_, Some(re), Some(name)) => Test::Header(name.clone(), re.clone()),
                    (_, Some(_), None) => {
                        warnings.push(format!("{rule}: header entry without a field name never matches"));
                        Test::Never
                    }
                };
                let mut entry = Entry { test, vmta: None, priority: None, calls: Vec::new(), rule };
                for result in &p.results {
                    match result {
                        PatternResult::VirtualMta(v) => {
                            entry.vmta.get_or_insert_with(|| v.clone());
                        }
                        PatternResult::RecipientPriority(n) => {
                            entry.priority.get_or_insert(*n);
                        }
                        PatternResult::CallTo(l) => entry.calls.push(l.clone()),
                    }
                }
                items.push((at, Item::Entry(entry)));
            }
        }
        for inner in block.children.iter().filter(|c| c.tag == "pattern-list") {
            let at = (inner.location.line, inner.location.col);
            let label = format!("inline <pattern-list> ({}) in {label}", inner.location.file_line());
            items.push((at, Item::Inline(List::build(inner, &label, warnings))));
        }
        items.sort_by_key(|(at, _)| *at);
        List { items: items.into_iter().map(|(_, item)| item).collect() }
    }

    /// The `call-to:` targets of this list and its inline lists.
    fn calls(&self) -> impl Iterator<Item = &str> {
        let mut out: Vec<&str> = Vec::new();
        let mut todo = vec![self];
        while let Some(list) = todo.pop() {
            for item in &list.items {
                match item {
                    Item::Entry(e) => out.extend(e.calls.iter().map(String::as_str)),
                    Item::Inline(inner) => todo.push(inner),
                }
            }
        }
        out.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{FileCheck, load_str};

    const VMTAS: &str = "\
<virtual-mta tx>\n    smtp-source-host 127.0.0.2 tx.example.com\n</virtual-mta>
<virtual-mta promo>\n    smtp-source-host 127.0.0.3 promo.example.com\n</virtual-mta>
<virtual-mta yahoo>\n    smtp-source-host 127.0.0.4 y.example.com\n</virtual-mta>
<virtual-mta-pool bulk>\n    virtual-mta promo\n    virtual-mta yahoo\n</virtual-mta-pool>
";

    fn lists(text: &str) -> PatternLists {
        let loaded = load_str("p.conf", &format!("{VMTAS}{text}"), Path::new("."), FileCheck::Warn);
        assert!(!loaded.diagnostics.has_errors(), "{}", loaded.diagnostics);
        PatternLists::from_config(&loaded.config)
    }

    fn message(headers: &str) -> Vec<u8> {
        format!("{headers}Subject: test\r\n\r\nbody\r\n").into_bytes()
    }

    /// (vmta, priority) the list `name` chooses.
    fn pick(l: &PatternLists, name: &str, from: &str, to: &[&str], headers: &str) -> (Option<String>, Option<u8>) {
        let body = message(headers);
        let header = Header::parse(&body);
        let rcpts: Vec<Recipient> = to.iter().map(|r| Recipient::new(*r)).collect();
        match l.select(name, from, &rcpts, &header) {
            Some(s) => (s.vmta.map(|c| c.name), s.priority),
            None => (None, None),
        }
    }

    fn vmta(l: &PatternLists, name: &str, from: &str, to: &[&str], headers: &str) -> Option<String> {
        pick(l, name, from, to, headers).0
    }

    const SELECTION: &str = "\
<pattern-list by-recipient>
    rcpt-to /@yahoo\\.com$/ virtual-mta=yahoo
    * virtual-mta=bulk
</pattern-list>
<pattern-list selection>
    mail-from /^receipts@shop\\.example$/ virtual-mta=tx,recipient-priority=90
    header X-Campaign /^promo/ call-to:by-recipient
    rcpt-to /@vip\\.example$/ virtual-mta=tx
    header X-Priority /^1/ recipient-priority=80
    * virtual-mta=promo
</pattern-list>
";

    #[test]
    fn first_match_wins_in_written_order() {
        let l = lists(SELECTION);
        assert_eq!(
            pick(&l, "selection", "receipts@shop.example", &["a@vip.example"], ""),
            (Some("tx".into()), Some(90))
        );
        assert_eq!(vmta(&l, "selection", "news@shop.example", &["a@vip.example"], ""), Some("tx".into()));
        assert_eq!(vmta(&l, "selection", "news@shop.example", &["a@other.example"], ""), Some("promo".into()));
        // An entry that only sets a priority still ends the search: the VMTA falls back.
        assert_eq!(
            pick(&l, "selection", "news@shop.example", &["a@other.example"], "X-Priority: 1\r\n"),
            (None, Some(80))
        );
        assert!(l.select("nosuch", "a@b", &[], &Header::parse(b"\r\n")).is_none());
    }

    #[test]
    fn call_to_continues_in_the_named_list() {
        let l = lists(SELECTION);
        let promo = "X-Campaign: promo-spring\r\n";
        assert_eq!(vmta(&l, "selection", "news@shop.example", &["a@yahoo.com"], promo), Some("yahoo".into()));
        assert_eq!(vmta(&l, "selection", "news@shop.example", &["a@gmail.com"], promo), Some("bulk".into()));
        // The entry that chose names the list it is in, the line, and what it matched.
        let body = message(promo);
        let chosen = l
            .select("selection", "news@shop.example", &[Recipient::new("a@yahoo.com")], &Header::parse(&body))
            .and_then(|s| s.vmta)
            .unwrap();
        assert_eq!(chosen.rule, "<pattern-list by-recipient> rcpt-to /@yahoo\\.com$/ virtual-mta=yahoo (p.conf:15)");
    }

    #[test]
    fn a_called_list_without_a_match_returns_to_the_caller() {
        let l = lists(
            "<pattern-list yahoo-only>\n    rcpt-to /@yahoo\\.com$/ virtual-mta=yahoo\n</pattern-list>
<pattern-list main>\n    * call-to:yahoo-only\n    * virtual-mta=promo\n</pattern-list>
<pattern-list prio>\n    * call-to:yahoo-only,recipient-priority=5\n    * virtual-mta=promo\n</pattern-list>\n",
        );
        assert_eq!(vmta(&l, "main", "a@x", &["b@yahoo.com"], ""), Some("yahoo".into()));
        assert_eq!(vmta(&l, "main", "a@x", &["b@gmail.com"], ""), Some("promo".into()));
        // The caller's own result stands when the called list matches nothing.
        assert_eq!(pick(&l, "prio", "a@x", &["b@gmail.com"], ""), (None, Some(5)));
        assert_eq!(pick(&l, "prio", "a@x", &["b@yahoo.com"], ""), (Some("yahoo".into()), Some(5)));
    }

    #[test]
    fn the_first_recipient_matching_an_rcpt_to_entry_decides_for_the_message() {
        let l = lists(
            "<pattern-list p>
    rcpt-to /@yahoo\\.com$/ virtual-mta=yahoo
    rcpt-to /@vip\\.example$/ virtual-mta=tx
    * virtual-mta=promo
</pattern-list>\n",
        );
        // Recipient order, not entry order, decides.
        assert_eq!(vmta(&l, "p", "a@x", &["b@gmail.com", "c@vip.example", "d@yahoo.com"], ""), Some("tx".into()));
        assert_eq!(vmta(&l, "p", "a@x", &["b@gmail.com", "d@yahoo.com", "c@vip.example"], ""), Some("yahoo".into()));
        assert_eq!(vmta(&l, "p", "a@x", &["b@gmail.com", "e@hotmail.com"], ""), Some("promo".into()));
        // No recipient at all: rcpt-to entries cannot match.
        assert_eq!(vmta(&l, "p", "a@x", &[], ""), Some("promo".into()));
    }

    #[test]
    fn header_entries_see_the_raw_value_of_every_occurrence() {
        let l = lists(
            "<pattern-list h>
    header X-Campaign /spring\\r\\n\\tsale/ virtual-mta=yahoo
    header x-campaign /^promo$/ virtual-mta=promo
    header X-Campaign /(?i)^NEWS/ virtual-mta=tx
</pattern-list>\n",
        );
        assert_eq!(vmta(&l, "h", "a@x", &["b@y"], "X-Campaign: spring\r\n\tsale\r\n"), Some("yahoo".into()));
        assert_eq!(vmta(&l, "h", "a@x", &["b@y"], "X-Campaign: other\r\nX-CAMPAIGN: promo\r\n"), Some("promo".into()));
        assert_eq!(vmta(&l, "h", "a@x", &["b@y"], "X-Campaign: news-1\r\n"), Some("tx".into()));
        assert_eq!(vmta(&l, "h", "a@x", &["b@y"], "X-Other: promo\r\n"), None);
        // Regexes are case-sensitive unless they say otherwise.
        assert_eq!(vmta(&l, "h", "a@x", &["b@y"], "X-Campaign: PROMO\r\n"), None);
    }

    #[test]
    fn inline_lists_are_tried_where_they_are_written() {
        let l = lists(
            "<pattern-list outer>
    mail-from /^vip@/ virtual-mta=tx
    <pattern-list>
        rcpt-to /@yahoo\\.com$/ virtual-mta=yahoo
        header X-Campaign /promo/ virtual-mta=bulk
    </pattern-list>
    * virtual-mta=promo
</pattern-list>\n",
        );
        assert_eq!(vmta(&l, "outer", "vip@x", &["b@yahoo.com"], ""), Some("tx".into()));
        assert_eq!(vmta(&l, "outer", "a@x", &["b@yahoo.com"], ""), Some("yahoo".into()));
        assert_eq!(vmta(&l, "outer", "a@x", &["b@gmail.com"], "X-Campaign: promo\r\n"), Some("bulk".into()));
        assert_eq!(vmta(&l, "outer", "a@x", &["b@gmail.com"], ""), Some("promo".into()));
    }

    #[test]
    fn call_to_loops_end_and_are_reported() {
        let l = lists(
            "<pattern-list a>\n    * call-to:b\n    * virtual-mta=promo\n</pattern-list>
<pattern-list b>\n    rcpt-to /@yahoo\\.com$/ virtual-mta=yahoo\n    * call-to:a\n</pattern-list>\n",
        );
        assert_eq!(vmta(&l, "a", "x@y", &["b@gmail.com"], ""), Some("promo".into()));
        assert_eq!(vmta(&l, "b", "x@y", &["b@gmail.com"], ""), Some("promo".into()));
        assert_eq!(vmta(&l, "a", "x@y", &["b@yahoo.com"], ""), Some("yahoo".into()));
        assert_eq!(
            l.warnings(),
            [
                "<pattern-list a> calls itself through call-to: (the repeated call is skipped)",
                "<pattern-list b> calls itself through call-to: (the repeated call is skipped)",
            ]
        );
    }

    #[test]
    fn the_default_vmta_and_unknown_names_pass_through_as_written() {
        // Whether a name exists is the caller's business: the matcher reports what was written.
        let loaded = load_str(
            "p.conf",
            "<pattern-list p>\n    mail-from /^a@/ virtual-mta={default}\n    * virtual-mta=ghost\n</pattern-list>\n",
            Path::new("."),
            FileCheck::Warn,
        );
        let l = PatternLists::from_config(&loaded.config);
        assert_eq!(vmta(&l, "p", "a@x", &["b@y"], ""), Some("{default}".into()));
        assert_eq!(vmta(&l, "p", "b@x", &["b@y"], ""), Some("ghost".into()));
    }
}
