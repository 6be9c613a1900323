//! `<rewrite-list NAME>`: envelope sender (`mail-from SOURCE TARGET`) and From header domain
//! (`from-domain PATTERN DOMAIN`) rewriting, named by `rewrite-list` in a `<source>` (applied
//! when the message is received) or a `<virtual-mta>` / `<virtual-mta-pool>` (applied when it is
//! delivered through it, before DKIM signing).
//!
//! `mail-from` SOURCE is `a@b`, `a@*`, `*@b`, `*@*` or `<>`; TARGET is an address, `*@b` (keep the
//! local part), `a@*` (keep the domain) or `<>`. `from-domain` PATTERN is a domain pattern (`*`,
//! `*.x`, `[*.]x`, `x`). The first matching line of each kind wins, in the order written.

use super::diag::Diagnostics;
use super::model::Config;
use super::pattern::DomainPattern;
use super::table::Dir;
use super::value::Value;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Any,
    Is(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Addr {
    Null,
    Parts(Part, Part),
}

#[derive(Clone, Debug, Default)]
pub struct RewriteList {
    mail_from: Vec<(Addr, Addr)>,
    from_domain: Vec<(DomainPattern, String)>,
}

/// A `rewrite-mail-from` side that is not an address pattern.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a@b, a@*, *@b, *@* or <>")]
struct NotAnAddress(String);

fn parse_addr(text: &str) -> Result<Addr, NotAnAddress> {
    if text == "<>" {
        return Ok(Addr::Null);
    }
    let part = |p: &str| if p == "*" { Part::Any } else { Part::Is(p.to_string()) };
    match text.rsplit_once('@') {
        Some((l, d)) if !l.is_empty() && !d.is_empty() && !text.contains(char::is_whitespace) => {
            Ok(Addr::Parts(part(l), part(&d.to_lowercase())))
        }
        _ => Err(NotAnAddress(text.to_string())),
    }
}

impl RewriteList {
    /// The `<rewrite-list NAME>` block, compiled; `None` when there is none. Lines that do not
    /// parse are left out (`check` reports them when the configuration loads).
    pub fn named(config: &Config, name: &str) -> Option<RewriteList> {
        let block = config.blocks_of("rewrite-list").find(|b| b.arg.as_deref() == Some(name))?;
        Some(Self::compile(&block.settings, &mut |_, _| {}))
    }

    /// The list of a virtual MTA, else of the pool the message was selected for.
    pub fn for_delivery(config: &Config, vmta: &str, selected: Option<&str>) -> Option<RewriteList> {
        let from_vmta = config.vmta(vmta).and_then(|v| v.settings.text(Dir::RewriteListRef));
        let from_pool = selected.and_then(|p| config.pool(p)).and_then(|p| p.settings.text(Dir::RewriteListRef));
        Self::named(config, from_vmta.or(from_pool)?)
    }

    fn compile(
        settings: &super::settings::Settings,
        report: &mut dyn FnMut(&super::settings::Entry, String),
    ) -> RewriteList {
        let mut list = RewriteList::default();
        for e in settings.all(Dir::RewriteMailFrom) {
            let Value::Words(w) = &e.value else { continue };
            match (parse_addr(&w[0]), parse_addr(&w[1])) {
                (Ok(from), Ok(to)) => list.mail_from.push((from, to)),
                (Err(why), _) | (_, Err(why)) => report(e, format!("mail-from: {why}")),
            }
        }
        for e in settings.all(Dir::FromDomain) {
            let Value::Words(w) = &e.value else { continue };
            match DomainPattern::parse(&w[0]) {
                Ok(p) if !w[1].contains(['@', '*', ' ']) => list.from_domain.push((p, w[1].to_lowercase())),
                Ok(_) => report(e, format!("from-domain: {:?} is not a domain", w[1])),
                Err(why) => report(e, format!("from-domain: {why}")),
            }
        }
        list
    }

    /// The new envelope sender (empty: `<>`), or `None` when no line matches.
    pub fn sender(&self, sender: &str) -> Option<String> {
        let (local, domain) = match sender.rsplit_once('@') {
            Some((l, d)) => (l, d.to_lowercase()),
            None => (sender, String::new()),
        };
        let fits = |p: &Part, v: &str| match p {
            Part::Any => true,
            Part::Is(x) => x.eq_ignore_ascii_case(v),
        };
        let (_, to) = self.mail_from.iter().find(|(from, _)| match from {
            Addr::Null => sender.is_empty(),
            Addr::Parts(l, d) => !sender.is_empty() && fits(l, local) && fits(d, &domain),
        })?;
        let pick = |p: &Part, keep: &str| match p {
            Part::Any => keep.to_string(),
            Part::Is(x) => x.clone(),
        };
        match to {
            Addr::Null => Some(String::new()),
            // A wildcard target keeps a part the null sender does not have: leave it alone.
            Addr::Parts(l, d) if sender.is_empty() && (*l == Part::Any || *d == Part::Any) => None,
            Addr::Parts(l, d) => Some(format!("{}@{}", pick(l, local), pick(d, &domain))),
        }
    }

    /// The message with the domain of its From address replaced, or `None` when nothing
    /// matches. Only the address's domain changes; display name, comments and folding stay.
    pub fn message(&self, message: &[u8]) -> Option<Vec<u8>> {
        if self.from_domain.is_empty() {
            return None;
        }
        let (start, end) = from_domain_span(message)?;
        let domain = std::str::from_utf8(&message[start..end]).ok()?.to_lowercase();
        let (_, target) = self.from_domain.iter().find(|(p, _)| p.matches(&domain))?;
        if *target == domain {
            return None;
        }
        let mut out = Vec::with_capacity(message.len() + target.len());
        out.extend_from_slice(&message[..start]);
        out.extend_from_slice(target.as_bytes());
        out.extend_from_slice(&message[end..]);
        Some(out)
    }
}

/// Byte range of the domain of the first From field's address: inside `<…>` when there is one,
/// else the first `local@domain` word.
fn from_domain_span(message: &[u8]) -> Option<(usize, usize)> {
    let header_end = find(message, b"\r\n\r\n").or_else(|| find(message, b"\n\n")).unwrap_or(message.len());
    let mut pos = 0;
    let field = loop {
        if pos >= header_end {
            return None;
        }
        let line_end = message[pos..header_end].iter().position(|&b| b == b'\n').map_or(header_end, |p| pos + p + 1);
        if message[pos..line_end].len() >= 5 && message[pos..pos + 5].eq_ignore_ascii_case(b"from:") {
            // The field goes on over folded lines.
            let mut end = line_end;
            while end < header_end && matches!(message[end], b' ' | b'\t') {
                end = message[end..header_end].iter().position(|&b| b == b'\n').map_or(header_end, |p| end + p + 1);
            }
            break (pos + 5, end);
        }
        pos = line_end;
    };
    let value = &message[field.0..field.1];
    let (base, addr) = match (value.iter().position(|&b| b == b'<'), value.iter().rposition(|&b| b == b'>')) {
        (Some(open), Some(close)) if open < close => (field.0 + open + 1, &value[open + 1..close]),
        _ => (field.0, value),
    };
    let at = addr.iter().position(|&b| b == b'@')?;
    let len = addr[at + 1..]
        .iter()
        .position(|b| b.is_ascii_whitespace() || matches!(b, b'>' | b',' | b';' | b'(' | b')'))
        .unwrap_or(addr.len() - at - 1);
    (len > 0).then_some((base + at + 1, base + at + 1 + len))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reports lines of `<rewrite-list>` blocks that cannot work, and `rewrite-list` names no block
/// defines.
pub fn check(config: &Config, diags: &mut Diagnostics) {
    for b in config.blocks_of("rewrite-list") {
        RewriteList::compile(&b.settings, &mut |e, why| {
            if let Some(at) = e.origin.value_location() {
                diags.error(at, why);
            }
        });
    }
    let holders = config
        .sources
        .iter()
        .map(|s| &s.settings)
        .chain(config.vmtas.iter().map(|v| &v.settings))
        .chain(config.pools.iter().map(|p| &p.settings));
    for s in holders {
        if let (Some(e), Some(name)) = (s.get(Dir::RewriteListRef), s.text(Dir::RewriteListRef))
            && !config.blocks_of("rewrite-list").any(|b| b.arg.as_deref() == Some(name))
            && let Some(at) = e.origin.value_location()
        {
            diags.error(at, format!("rewrite-list: no <rewrite-list {name}> is defined"));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{FileCheck, load_str};

    const LIST: &str = "<rewrite-list r>\n mail-from bounce@old.example bounce@new.example\n mail-from *@old.example *@new.example\n mail-from info@* news@*\n mail-from <> postmaster@new.example\n from-domain *.old.example new.example\n from-domain old.example new.example\n</rewrite-list>\n<virtual-mta v>\n rewrite-list r\n</virtual-mta>\n";

    fn list() -> RewriteList {
        let loaded = load_str("r.conf", LIST, Path::new("."), FileCheck::Warn);
        assert!(!loaded.diagnostics.has_errors(), "{}", loaded.diagnostics);
        RewriteList::for_delivery(&loaded.config, "v", None).unwrap()
    }

    #[test]
    fn mail_from_forms_first_match_wins() {
        let l = list();
        assert_eq!(l.sender("bounce@old.example").as_deref(), Some("bounce@new.example"));
        assert_eq!(l.sender("Alice@OLD.example").as_deref(), Some("Alice@new.example"));
        assert_eq!(l.sender("info@third.example").as_deref(), Some("news@third.example"));
        assert_eq!(l.sender("").as_deref(), Some("postmaster@new.example"));
        assert_eq!(l.sender("x@other.example"), None);
    }

    #[test]
    fn from_domain_changes_only_the_address_domain() {
        let l = list();
        let m = b"Subject: a@old.example\r\nFrom: \"Old (a@old.example)\"\r\n <news@mail.old.example>\r\nTo: x@old.example\r\n\r\nFrom: body@old.example\r\n";
        let out = String::from_utf8(l.message(m).unwrap()).unwrap();
        assert_eq!(
            out,
            "Subject: a@old.example\r\nFrom: \"Old (a@old.example)\"\r\n <news@new.example>\r\nTo: x@old.example\r\n\r\nFrom: body@old.example\r\n"
        );
        let bare = String::from_utf8(l.message(b"from: a@OLD.example (A)\r\n\r\nx").unwrap()).unwrap();
        assert_eq!(bare, "from: a@new.example (A)\r\n\r\nx");
        assert!(l.message(b"From: a@other.example\r\n\r\nx").is_none());
    }

    #[test]
    fn bad_lines_and_unknown_lists_are_config_errors() {
        let text = "<rewrite-list r>\n mail-from nobody x@y\n from-domain * a@b\n</rewrite-list>\n<source 0/0>\n rewrite-list missing\n</source>\n";
        let loaded = load_str("r.conf", text, Path::new("."), FileCheck::Warn);
        let shown = loaded.diagnostics.to_string();
        assert_eq!(loaded.diagnostics.errors().count(), 3, "{shown}");
        assert!(shown.contains("r.conf:2") && shown.contains("r.conf:3") && shown.contains("r.conf:6"), "{shown}");
    }
}
