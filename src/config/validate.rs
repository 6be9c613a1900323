//! Cross-block checks: names that must exist (VMTAs, pools, sources, pattern lists), the VMTA
//! namespace, pool membership rules, API key syntax, and files the configuration refers to.
//!
//! Owns the difference between a config checked away from its host (missing files are warnings)
//! and a config about to run (missing files are errors).

use std::collections::{BTreeMap, BTreeSet};

use super::diag::{Diagnostics, Location};
use super::model::{Config, DomainBlock, SourceMatcher};
use super::settings::Settings;
use super::table::Dir;
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
    pools(config, diags);
    references(config, diags);
    api_keys(config, diags);
    referenced_files(config, files, diags);
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

fn pools(config: &Config, diags: &mut Diagnostics) {
    let mut owner_with_domains: BTreeMap<&str, &str> = BTreeMap::new();
    for pool in &config.pools {
        for (member, location) in pool.members() {
            if config.vmta(member).is_none() {
                let what = if config.pool(member).is_some() {
                    "is a pool; pools contain virtual MTAs only"
                } else {
                    "is not defined"
                };
                diags.error(location, format!("<virtual-mta-pool {}>: virtual-mta {member:?} {what}", pool.name));
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

/// Every place a directive names another block.
fn references(config: &Config, diags: &mut Diagnostics) {
    let named_sources: BTreeSet<&str> = config
        .sources
        .iter()
        .filter_map(|s| match &s.matcher {
            SourceMatcher::Name(n) => Some(n.as_str()),
            SourceMatcher::Cidr(_) => None,
        })
        .collect();
    let named = |tag: &str| -> BTreeSet<String> { config.blocks_of(tag).filter_map(|b| b.arg.clone()).collect() };
    let smtp_pattern_lists = named("smtp-pattern-list");
    let pattern_lists = named("pattern-list");
    let source_groups = named("source-group");
    let mut suppression = named("address-list");
    suppression.extend(named("suppression-list"));
    let vmta_or_pool = |n: &str| config.vmta(n).is_some() || config.pool(n).is_some();

    // Listeners and users name sources.
    for e in config.global.all(Dir::SmtpListener) {
        if let Value::Words(w) = &e.value {
            let location = e.origin.location().expect("from config");
            if let Err(m) = super::values::ListenAddr::parse(&w[0]) {
                diags.error(location, format!("smtp-listener: {m}"));
            }
            if let Some(opt) = w.get(1) {
                match opt.strip_prefix("source=") {
                    Some(name) if named_sources.contains(name) => {}
                    Some(name) => diags.error(
                        location,
                        format!("smtp-listener: source {name:?} is not defined (no <source {name}> block)"),
                    ),
                    None => diags.error(
                        location,
                        format!("smtp-listener: expected source=NAME after the address, found {opt:?}"),
                    ),
                }
            }
        }
    }
    for b in config.blocks.iter().filter(|b| b.tag == "smtp-listener" || b.tag == "smtp-user") {
        check_name(&b.settings, Dir::SourceRef, "source", |n| named_sources.contains(n), diags);
    }
    for s in &config.sources {
        check_name(&s.settings, Dir::PatternListRef, "pattern-list", |n| pattern_lists.contains(n), diags);
        check_name(&s.settings, Dir::SourceGroupRef, "source-group", |n| source_groups.contains(n), diags);
        check_name(
            &s.settings,
            Dir::DefaultVirtualMta,
            "virtual-mta or pool",
            |n| n == "by-smtp-source-ip" || vmta_or_pool(n),
            diags,
        );
        if let Some(e) = s.settings.get(Dir::SuppressionLists)
            && let Value::List(names) = &e.value
        {
            for n in names.iter().filter(|n| !suppression.contains(*n)) {
                diags.error(
                    e.origin.location().expect("from config"),
                    format!("suppression-lists: no <address-list {n}> is defined"),
                );
            }
        }
    }
    check_name(&config.global, Dir::InvalidVirtualMtaFallback, "virtual-mta", |n| config.vmta(n).is_some(), diags);
    let all_domains = config
        .domains
        .iter()
        .chain(config.vmtas.iter().flat_map(|v| &v.domains))
        .chain(config.pools.iter().flat_map(|p| &p.domains));
    let mut seen = BTreeSet::new();
    for d in all_domains.filter(|d: &&DomainBlock| seen.insert(std::sync::Arc::as_ptr(&d.settings))) {
        check_name(
            &d.settings,
            Dir::SmtpPatternListRef,
            "smtp-pattern-list",
            |n| smtp_pattern_lists.contains(n),
            diags,
        );
        for dir in [Dir::RerouteToVirtualMta, Dir::BackoffRerouteToVirtualMta] {
            check_name(&d.settings, dir, "virtual-mta or pool", vmta_or_pool, diags);
        }
    }
    for holder in config.vmtas.iter().map(|v| &v.settings).chain(config.pools.iter().map(|p| &p.settings)) {
        for e in holder.all(Dir::ColdVirtualMta) {
            if let Value::Text(n) = &e.value
                && config.vmta(n).is_none()
            {
                diags.error(
                    e.origin.location().expect("from config"),
                    format!("cold-virtual-mta: virtual-mta {n:?} is not defined"),
                );
            }
        }
    }
}

fn check_name(settings: &Settings, dir: Dir, what: &str, exists: impl Fn(&str) -> bool, diags: &mut Diagnostics) {
    if let Some(e) = settings.get(dir)
        && let Value::Text(name) = &e.value
        && !exists(name)
    {
        diags.error(
            e.origin.location().expect("from config"),
            format!("{}: {what} {name:?} is not defined", dir.def().name),
        );
    }
}

fn api_keys(config: &Config, diags: &mut Diagnostics) {
    for e in config.global.all(Dir::HttpApiKey) {
        if let Value::Text(key) = &e.value {
            let ok = (32..=128).contains(&key.len()) && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                diags.error(
                    e.origin.location().expect("from config"),
                    "http-api-key: a key must be 32 to 128 characters of A-Z, a-z, 0-9 and '_'",
                );
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
