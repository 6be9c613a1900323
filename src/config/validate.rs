//! Cross-block checks: names that must exist (VMTAs, pools, sources, pattern lists), the VMTA
//! namespace, pool membership rules, API key syntax, local delivery macros, and files the
//! configuration refers to.
//!
//! Owns the difference between a config checked away from its host (missing files are warnings)
//! and a config about to run (missing files are errors).

use std::collections::{BTreeMap, BTreeSet};

use super::diag::{Diagnostics, Location};
use super::model::{Config, DomainBlock, OtherBlock, SourceMatcher};
use super::resolve::DEFAULT_VMTA;
use super::rules::PatternResult;
use super::settings::{Origin, Settings};
use super::table::Dir;
use super::template::{Template, command_words};
use super::tree::suggest;
use super::value::Value;

/// Whether files named by the config must exist now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileCheck {
    /// `check-config`: missing files are warnings (the config may be checked elsewhere).
    Warn,
    /// `run`, reload and `check-config --strict`: missing files are errors.
    Require,
}

pub fn validate(config: &Config, files: FileCheck, diags: &mut Diagnostics) {
    names(config, diags);
    let defined = Names::of(config);
    pools(config, &defined, diags);
    references(config, &defined, diags);
    local_delivery(config, diags);
    api_keys(config, diags);
    super::shaping::check(config, diags);
    super::tls_names::check(config, diags);
    super::rewrite::check(config, diags);
    smtp_users(config, diags);
    super::event_sinks::check(config, diags);
    referenced_files(config, files, diags);
    diags.explain_missing_includes();
}

/// `authentication-method system` would check the operating system's password database, which
/// Ember never reads: refused rather than silently never authenticating.
fn smtp_users(config: &Config, diags: &mut Diagnostics) {
    for b in config.blocks_of("smtp-user") {
        if b.settings.text(Dir::AuthenticationMethod) == Some("system")
            && let Some(at) = b.settings.get(Dir::AuthenticationMethod).and_then(|e| e.origin.value_location())
        {
            diags.error(
                at,
                "authentication-method system: Ember does not read the system password database; \
                 use password (a crypt or argon2 hash is accepted) or certificate",
            );
        }
    }
}

/// VMTAs and pools share one namespace.
fn names(config: &Config, diags: &mut Diagnostics) {
    let mut seen: BTreeMap<&str, &Location> = BTreeMap::new();
    let all = config
        .vmtas
        .iter()
        .map(|v| (v.name.as_str(), &v.location))
        .chain(config.pools.iter().map(|p| (p.name.as_str(), &p.location)));
    for (name, location) in all {
        if let Some(first) = seen.get(name) {
            diags.error(
                location,
                format!("virtual-mta or pool name {name:?} is already defined at {}", first.file_line()),
            );
        } else {
            seen.insert(name, location);
        }
    }
    let mut tags: BTreeMap<(String, String), &Location> = BTreeMap::new();
    for b in &config.blocks {
        let Some(arg) = &b.arg else { continue };
        if !matches!(
            b.tag.as_str(),
            "smtp-pattern-list"
                | "pattern-list"
                | "smtp-user"
                | "source-group"
                | "rewrite-list"
                | "domain-key-list"
                | "proxy"
                | "acct-file"
                | "event-sink"
                | "smtp-listener"
        ) {
            continue;
        }
        let key = (b.tag.clone(), arg.clone());
        if let Some(first) = tags.get(&key) {
            diags.error(&b.location, format!("<{} {arg}> is already defined at {}", b.tag, first.file_line()));
        } else {
            tags.insert(key, &b.location);
        }
    }
}

fn pools(config: &Config, names: &Names, diags: &mut Diagnostics) {
    let mut owner_with_domains: BTreeMap<&str, &str> = BTreeMap::new();
    for pool in &config.pools {
        for e in pool.settings.all(Dir::VirtualMtaMember) {
            let (Value::Text(member), Some(location)) = (&e.value, e.origin.location()) else { continue };
            if config.vmta(member).is_none() {
                let at = e.origin.value_location().unwrap_or(location);
                let prefix = format!("<virtual-mta-pool {}>", pool.name);
                if config.pool(member).is_some() {
                    diags.error(
                        at,
                        format!("{prefix}: virtual-mta {member:?} is a pool; pools contain virtual MTAs only"),
                    );
                } else {
                    names.report(Kind::Vmta, member, &prefix, at, diags);
                }
                continue;
            }
            if pool.domains.is_empty() {
                continue;
            }
            if let Some(other) = owner_with_domains.insert(member, &pool.name)
                && other != pool.name
            {
                diags.error(
                    location,
                    format!("virtual-mta {member:?} is in pools {other:?} and {:?}, which both have <domain> blocks: its settings would be ambiguous", pool.name),
                );
            }
        }
    }
}

/// What a reference names, for "no <…> is defined" messages and "did you mean".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Source,
    PatternList,
    SourceGroup,
    SmtpPatternList,
    AddressList,
    Vmta,
    VmtaOrPool,
}

/// The names the configuration defines, by kind.
struct Names<'a> {
    sources: BTreeSet<&'a str>,
    pattern_lists: BTreeSet<&'a str>,
    source_groups: BTreeSet<&'a str>,
    smtp_pattern_lists: BTreeSet<&'a str>,
    address_lists: BTreeSet<&'a str>,
    vmtas: BTreeSet<&'a str>,
    pools: BTreeSet<&'a str>,
}

impl<'a> Names<'a> {
    fn of(config: &'a Config) -> Self {
        let named = |tags: &[&str]| -> BTreeSet<&'a str> {
            config.blocks.iter().filter(|b| tags.contains(&b.tag.as_str())).filter_map(|b| b.arg.as_deref()).collect()
        };
        Names {
            sources: config
                .sources
                .iter()
                .filter_map(|s| match &s.matcher {
                    SourceMatcher::Name(n) => Some(n.as_str()),
                    SourceMatcher::Cidr(_) => None,
                })
                .collect(),
            pattern_lists: named(&["pattern-list"]),
            source_groups: named(&["source-group"]),
            smtp_pattern_lists: named(&["smtp-pattern-list"]),
            address_lists: named(&["address-list", "suppression-list"]),
            vmtas: config.vmtas.iter().map(|v| v.name.as_str()).collect(),
            pools: config.pools.iter().map(|p| p.name.as_str()).collect(),
        }
    }

    /// The defined names of a kind, for suggestions.
    fn known(&self, kind: Kind) -> Vec<&'a str> {
        let sets: &[&BTreeSet<&'a str>] = match kind {
            Kind::Source => &[&self.sources],
            Kind::PatternList => &[&self.pattern_lists],
            Kind::SourceGroup => &[&self.source_groups],
            Kind::SmtpPatternList => &[&self.smtp_pattern_lists],
            Kind::AddressList => &[&self.address_lists],
            Kind::Vmta => &[&self.vmtas],
            Kind::VmtaOrPool => &[&self.vmtas, &self.pools],
        };
        sets.iter().flat_map(|s| s.iter().copied()).collect()
    }

    fn exists(&self, kind: Kind, name: &str) -> bool {
        // `{default}` is the virtual MTA used when none is selected: always there.
        (matches!(kind, Kind::Vmta | Kind::VmtaOrPool) && name == DEFAULT_VMTA) || self.known(kind).contains(&name)
    }

    /// `<smtp-pattern-list yahoo-code>`: the block a reference names.
    fn label(kind: Kind, name: &str) -> String {
        match kind {
            Kind::Source => format!("<source {name}>"),
            Kind::PatternList => format!("<pattern-list {name}>"),
            Kind::SourceGroup => format!("<source-group {name}>"),
            Kind::SmtpPatternList => format!("<smtp-pattern-list {name}>"),
            Kind::AddressList => format!("<address-list {name}>"),
            Kind::Vmta => format!("<virtual-mta {name}>"),
            Kind::VmtaOrPool => format!("<virtual-mta {name}> or <virtual-mta-pool {name}>"),
        }
    }

    /// `no <smtp-pattern-list yahoo-code> is defined (did you mean "yahoo-codes"?)`.
    fn undefined(&self, kind: Kind, name: &str) -> String {
        format!("no {} is defined{}", Self::label(kind, name), suggest(name, self.known(kind).into_iter()))
    }

    /// Reports `name`, written at `at`, as defined nowhere; `prefix` says what names it.
    fn report(&self, kind: Kind, name: &str, prefix: &str, at: &Location, diags: &mut Diagnostics) {
        diags.undefined_reference(at, &Self::label(kind, name), format!("{prefix}: {}", self.undefined(kind, name)));
    }

    /// Reports `name`, written in the value of `origin`, when it is not defined. `directive`
    /// prefixes the message; the location is where the name is written.
    fn check(&self, kind: Kind, name: &str, directive: &str, origin: &Origin, diags: &mut Diagnostics) {
        if self.exists(kind, name) {
            return;
        }
        if let Some(at) = origin.locate(name) {
            self.report(kind, name, directive, &at, diags);
        }
    }

    /// Checks the one-word reference `dir` of a block.
    fn check_setting(&self, settings: &Settings, dir: Dir, kind: Kind, diags: &mut Diagnostics) {
        for e in settings.raw(dir).unwrap_or_default() {
            if let Value::Text(name) = &e.value {
                self.check(kind, name, dir.def().name, &e.origin, diags);
            }
        }
    }
}

/// Every place a directive names another block.
fn references(config: &Config, names: &Names, diags: &mut Diagnostics) {
    // Listeners and users name sources. The one-line listener's value is typed in `value.rs`:
    // the address, then `source=NAME` when given, then `tls=yes` when given.
    for e in config.global.all(Dir::SmtpListener) {
        if let Value::Words(w) = &e.value
            && let Some(option) = w.iter().skip(1).find(|o| o.starts_with("source="))
            && let Some(name) = option.strip_prefix("source=")
            && !names.exists(Kind::Source, name)
            && let Some(at) = e.origin.part_location(option).or_else(|| e.origin.locate(name))
        {
            names.report(Kind::Source, name, "smtp-listener", &at, diags);
        }
    }
    for b in config.blocks.iter().filter(|b| b.tag == "smtp-listener" || b.tag == "smtp-user") {
        names.check_setting(&b.settings, Dir::SourceRef, Kind::Source, diags);
    }
    for s in &config.sources {
        names.check_setting(&s.settings, Dir::PatternListRef, Kind::PatternList, diags);
        names.check_setting(&s.settings, Dir::SourceGroupRef, Kind::SourceGroup, diags);
        for e in s.settings.raw(Dir::DefaultVirtualMta).unwrap_or_default() {
            if let Value::Text(n) = &e.value
                && n != "by-smtp-source-ip"
            {
                names.check(Kind::VmtaOrPool, n, "default-virtual-mta", &e.origin, diags);
            }
        }
        for e in s.settings.raw(Dir::SuppressionLists).unwrap_or_default() {
            if let Value::List(lists) = &e.value {
                for n in lists {
                    names.check(Kind::AddressList, n, "suppression-lists", &e.origin, diags);
                }
            }
        }
    }
    names.check_setting(&config.global, Dir::InvalidVirtualMtaFallback, Kind::Vmta, diags);
    let all_domains = config
        .domains
        .iter()
        .chain(config.vmtas.iter().flat_map(|v| &v.domains))
        .chain(config.pools.iter().flat_map(|p| &p.domains));
    let mut seen = BTreeSet::new();
    for d in all_domains.filter(|d: &&DomainBlock| seen.insert(std::sync::Arc::as_ptr(&d.settings))) {
        names.check_setting(&d.settings, Dir::SmtpPatternListRef, Kind::SmtpPatternList, diags);
        for dir in [Dir::RerouteToVirtualMta, Dir::BackoffRerouteToVirtualMta, Dir::WarmupOverflowVirtualMta] {
            names.check_setting(&d.settings, dir, Kind::VmtaOrPool, diags);
        }
    }
    for holder in config.vmtas.iter().map(|v| &v.settings).chain(config.pools.iter().map(|p| &p.settings)) {
        names.check_setting(holder, Dir::ColdVirtualMta, Kind::Vmta, diags);
    }
    for list in config.blocks_of("pattern-list") {
        pattern_list(list, names, diags);
    }
}

/// `command` and `file-destination` must parse: an unknown macro or an open quote is found when
/// the configuration is loaded, not when the first message is delivered.
fn local_delivery(config: &Config, diags: &mut Diagnostics) {
    let all_domains = config
        .domains
        .iter()
        .chain(config.vmtas.iter().flat_map(|v| &v.domains))
        .chain(config.pools.iter().flat_map(|p| &p.domains));
    let mut seen = BTreeSet::new();
    for d in all_domains.filter(|d: &&DomainBlock| seen.insert(std::sync::Arc::as_ptr(&d.settings))) {
        for (dir, problem) in local_delivery_problems(&d.settings) {
            if let Some(at) = d.settings.get(dir).and_then(|e| e.origin.value_location()) {
                diags.error(at, format!("{}: {problem}", dir.def().name));
            }
        }
    }
}

/// The unknown macros and unbalanced quotes in one block's `file-destination` and `command`.
fn local_delivery_problems(s: &Settings) -> Vec<(Dir, String)> {
    let mut problems = Vec::new();
    if let Some(d) = s.text(Dir::FileDestination)
        && let Err(e) = Template::parse(d)
    {
        problems.push((Dir::FileDestination, e.to_string()));
    }
    if let Some(c) = s.text(Dir::Command)
        && let Err(e) = command_words(c)
    {
        problems.push((Dir::Command, e.to_string()));
    }
    problems
}

/// The results of a `<pattern-list>` and of the lists nested in it: the VMTAs and lists they
/// select must exist.
fn pattern_list(list: &OtherBlock, names: &Names, diags: &mut Diagnostics) {
    for dir in [Dir::MailFromPattern, Dir::RcptToPattern, Dir::HeaderPattern, Dir::CatchAllPattern] {
        for e in list.settings.raw(dir).unwrap_or_default() {
            let Value::PatternEntry(entry) = &e.value else { continue };
            for result in &entry.results {
                let (kind, name, written) = match result {
                    PatternResult::VirtualMta(n) => (Kind::VmtaOrPool, n, format!("virtual-mta={n}")),
                    PatternResult::CallTo(n) => (Kind::PatternList, n, format!("call-to:{n}")),
                    PatternResult::RecipientPriority(_) => continue,
                };
                if names.exists(kind, name) {
                    continue;
                }
                let at = e.origin.part_location(&written).or_else(|| e.origin.locate(name));
                if let Some(at) = at {
                    names.report(kind, name, dir.def().name, &at, diags);
                }
            }
        }
    }
    for inner in list.children.iter().filter(|c| c.tag == "pattern-list") {
        pattern_list(inner, names, diags);
    }
}

fn api_keys(config: &Config, diags: &mut Diagnostics) {
    for e in config.global.all(Dir::HttpApiKey) {
        if let Value::Text(key) = &e.value {
            let ok = (32..=128).contains(&key.len()) && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok && let Some(at) = e.origin.value_location() {
                diags.error(at, "http-api-key: a key must be 32 to 128 characters of A-Z, a-z, 0-9 and '_'");
            }
        }
    }
}

fn referenced_files(config: &Config, files: FileCheck, diags: &mut Diagnostics) {
    for r in &config.file_refs {
        let path = config.path(&r.path);
        let problem = match std::fs::metadata(&path) {
            Ok(m) if r.is_dir && !m.is_dir() => Some("is not a directory".to_string()),
            Ok(m) if !r.is_dir && m.is_dir() => Some("is a directory, not a file".to_string()),
            Ok(_) if !r.is_dir => std::fs::File::open(&path).err().map(|e| format!("cannot be read: {e}")),
            Ok(_) => None,
            Err(_) if r.is_dir => Some("does not exist".to_string()),
            Err(_) => Some("does not exist".to_string()),
        };
        let Some(problem) = problem else { continue };
        let what = if r.is_dir { "directory" } else { "file" };
        let message = format!("{}: {what} {} {problem}", r.directive, path.display());
        match files {
            FileCheck::Warn => diags.warning(&r.location, message),
            FileCheck::Require => diags.error(&r.location, message),
        }
    }
}

impl Config {
    /// Checks the files and directories the configuration names (for `run` and reload, after
    /// creating the directories Ember owns).
    pub fn check_files(&self, files: FileCheck) -> Diagnostics {
        let mut diags = Diagnostics::default();
        referenced_files(self, files, &mut diags);
        diags
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{FileCheck, load_str};

    /// The errors of a config in file order, as `LINE:COL: message`.
    fn errors(text: &str) -> Vec<String> {
        let loaded = load_str("t.conf", text, Path::new("."), FileCheck::Warn);
        loaded
            .diagnostics
            .sorted()
            .into_iter()
            .filter(|d| d.severity == crate::config::Severity::Error)
            .map(|d| format!("{}:{}: {}", d.location.line, d.location.col, d.message))
            .collect()
    }

    #[test]
    fn a_directive_with_no_effect_is_a_warning_at_its_first_use_only() {
        let text = "thread-reuse yes\n<domain *>\n  dk-sign yes\n</domain>\n<domain a.com>\n  dk-sign no\n</domain>\n";
        let loaded = load_str("t.conf", text, Path::new("."), FileCheck::Warn);
        assert_eq!(loaded.diagnostics.errors().count(), 0);
        let warnings: Vec<String> = loaded
            .diagnostics
            .sorted()
            .into_iter()
            .filter(|d| d.severity == crate::config::Severity::Warning)
            .map(|d| format!("{}:{}: {}", d.location.line, d.location.col, d.message))
            .collect();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].starts_with("1:1: thread-reuse: accepted, has no effect in Ember: "), "{warnings:?}");
        assert!(warnings[1].starts_with("3:3: dk-sign: accepted, has no effect in Ember: DomainKeys"), "{warnings:?}");
        assert!(loaded.config.not_yet_enforced().is_empty());
    }

    const VMTAS: &str = "\
<virtual-mta v1>
    smtp-source-host 127.0.0.2 v1.example.net
</virtual-mta>
<virtual-mta-pool pool1>
    virtual-mta v1
</virtual-mta-pool>
";

    #[test]
    fn undefined_names_point_at_the_name_and_suggest_a_defined_one() {
        let text = format!(
            "{VMTAS}<source 10/8>
    default-virtual-mta pool2
    suppression-lists a, nosuch
    source-group grp
</source>
<address-list a>
    address x@example.com
</address-list>
<domain *>
    backoff-reroute-to-virtual-mta v2
</domain>
"
        );
        assert_eq!(
            errors(&text),
            [
                "8:25: default-virtual-mta: no <virtual-mta pool2> or <virtual-mta-pool pool2> is defined (did you mean \"pool1\"?)",
                "9:26: suppression-lists: no <address-list nosuch> is defined",
                "10:18: source-group: no <source-group grp> is defined",
                "16:36: backoff-reroute-to-virtual-mta: no <virtual-mta v2> or <virtual-mta-pool v2> is defined (did you mean \"v1\"?)",
            ]
        );
    }

    #[test]
    fn pattern_list_results_must_name_defined_vmtas_and_lists() {
        let text = format!(
            "{VMTAS}<pattern-list outer>
    rcpt-to /@a\\.com$/ virtual-mta=v1,recipient-priority=5
    mail-from /x/ virtual-mta=pool1
    header X-Y /z/ virtual-mta=ghost
    <pattern-list>
        * call-to:nosuch
    </pattern-list>
    * call-to: outer
</pattern-list>
"
        );
        assert_eq!(
            errors(&text),
            [
                "10:20: header: no <virtual-mta ghost> or <virtual-mta-pool ghost> is defined",
                "12:11: *: no <pattern-list nosuch> is defined",
            ]
        );
    }

    #[test]
    fn local_delivery_macros_and_quotes_are_checked_at_load() {
        let errs = errors(
            "<domain a.example>\n    type file\n    file-destination /m/$home\n</domain>\n<domain b.example>\n    type pipe\n    command \"/bin/x '$user\"\n</domain>\n<domain c.example>\n    command \"/bin/x $user $$1\"\n    file-destination /m/${domain}/$user\n</domain>\n",
        );
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs[0].contains("file-destination: unknown macro $home"), "{errs:?}");
        assert!(errs[1].contains("command: unterminated quote"), "{errs:?}");
    }

    #[test]
    fn the_default_vmta_always_exists() {
        let text = format!(
            "{VMTAS}<source 10/8>\n    default-virtual-mta {{default}}\n</source>\n<pattern-list p>\n    * virtual-mta={{default}}\n</pattern-list>\n"
        );
        assert_eq!(errors(&text), Vec::<String>::new());
    }

    #[test]
    fn reserved_names_cannot_name_a_vmta_or_pool() {
        let errs = errors("<virtual-mta-pool {default}>\n</virtual-mta-pool>\n<virtual-mta {x}>\n</virtual-mta>\n");
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(
            errs[0].starts_with("1:19: <virtual-mta-pool>: invalid name \"{default}\": names in braces are reserved")
        );
        assert!(errs[1].starts_with("3:14: <virtual-mta>: invalid name \"{x}\""));
    }

    #[test]
    fn smtp_users_may_be_named_by_address_and_listeners_name_sources() {
        let text = "<source feeder>\n</source>\n<smtp-user app+1@example.com>\n    source feedr\n</smtp-user>\nsmtp-listener 0/0:25 source=feeder\nsmtp-listener 0/0:26 source=fedeer\nhttp-api-key short\n";
        assert_eq!(
            errors(text),
            [
                "4:12: source: no <source feedr> is defined (did you mean \"feeder\"?)",
                "7:22: smtp-listener: no <source fedeer> is defined (did you mean \"feeder\"?)",
                "8:14: http-api-key: a key must be 32 to 128 characters of A-Z, a-z, 0-9 and '_'",
            ]
        );
    }

    #[test]
    fn references_a_missing_include_would_have_defined_are_its_consequence_not_errors_of_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let text = "include vmtas.conf\n\
                    <virtual-mta-pool p1>\n  virtual-mta v1\n</virtual-mta-pool>\n\
                    <source 127.0.0.1>\n  default-virtual-mta v2\n</source>\n";
        let loaded = load_str("t.conf", text, dir.path(), FileCheck::Warn);
        let shown: Vec<String> = loaded
            .diagnostics
            .sorted()
            .into_iter()
            .map(|d| format!("{:?} {}:{}: {}", d.severity, d.location.line, d.location.col, d.message))
            .collect();
        let missing = dir.path().join("vmtas.conf").display().to_string();
        assert_eq!(
            shown,
            [
                format!(
                    "Error 1:9: include: cannot read {missing}: no such file; left unresolved while it is missing: \
                     <virtual-mta v1> (t.conf:3), <virtual-mta v2> or <virtual-mta-pool v2> (t.conf:6)"
                ),
                format!(
                    "Warning 3:15: <virtual-mta-pool p1>: no <virtual-mta v1> is defined; left unresolved because {missing} could not be read"
                ),
                format!(
                    "Warning 6:23: default-virtual-mta: no <virtual-mta v2> or <virtual-mta-pool v2> is defined (did you mean \"p1\"?); left unresolved because {missing} could not be read"
                ),
            ]
        );
        // The same references without the include are errors of their own.
        let alone = errors(text.trim_start_matches("include vmtas.conf\n"));
        assert_eq!(alone.len(), 2, "{alone:?}");
    }
}
