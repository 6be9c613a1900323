//! Suppression lists checked at RCPT: the field dialect's `suppress-file` and named
//! `<address-list>` blocks referenced by `suppression-lists` (docs/operations.md, "Injection").
//!
//! A list holds exact addresses, `@domain` entries, bare local parts and `/regex/` entries.
//! File-backed lists are re-read when the file changes (checked at most once a second), and bad
//! lines are reported with their line numbers while the rest loads.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::config::value::Value;
use crate::config::{Config, Dir};

#[derive(Debug, Default)]
pub struct AddressList {
    exact: HashSet<String>,
    domains: HashSet<String>,
    local_parts: HashSet<String>,
    patterns: Vec<regex::Regex>,
}

impl AddressList {
    /// Adds one entry; returns an explanation when the entry is not usable.
    pub fn add(&mut self, entry: &str) -> Result<(), String> {
        let entry = entry.trim();
        if let Some(re) = entry.strip_prefix('/').and_then(|r| r.strip_suffix('/')) {
            let compiled = regex::Regex::new(&format!("(?i){re}"))
                .map_err(|e| format!("invalid regular expression {entry}: {e}"))?;
            self.patterns.push(compiled);
            return Ok(());
        }
        if entry.is_empty() || entry.contains(char::is_whitespace) || entry.contains(['<', '>', ',']) {
            return Err(format!("not an address, @domain or /regex/: {entry:?}"));
        }
        match entry.rsplit_once('@') {
            Some(("", domain)) if !domain.is_empty() => self.domains.insert(domain.to_lowercase()),
            Some((local, domain)) if !local.is_empty() && !domain.is_empty() => self.exact.insert(entry.to_lowercase()),
            Some(_) => return Err(format!("not an address, @domain or /regex/: {entry:?}")),
            None => self.local_parts.insert(entry.to_lowercase()),
        };
        Ok(())
    }

    pub fn add_domain(&mut self, domain: &str) {
        self.domains.insert(domain.trim_start_matches('@').to_lowercase());
    }

    pub fn contains(&self, address: &str) -> bool {
        let lower = address.to_lowercase();
        if self.exact.contains(&lower) {
            return true;
        }
        if let Some((local, domain)) = lower.rsplit_once('@') {
            if self.local_parts.contains(local) {
                return true;
            }
            // `@example.com` also covers its subdomains' exact match only; parents are checked
            // label by label so `@example.com` does not match `notexample.com`.
            let mut d = domain;
            loop {
                if self.domains.contains(d) {
                    return true;
                }
                match d.split_once('.') {
                    Some((_, parent)) if parent.contains('.') => d = parent,
                    _ => break,
                }
            }
        }
        self.patterns.iter().any(|p| p.is_match(address))
    }

    pub fn len(&self) -> usize {
        self.exact.len() + self.domains.len() + self.local_parts.len() + self.patterns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Loads a list file, one entry a line (`#` comments). Bad lines come back as warnings.
    pub fn load_file(&mut self, path: &Path) -> Result<Vec<String>, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read suppression file {}: {e}", path.display()))?;
        let mut warnings = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let entry = line.split('#').next().unwrap_or("").trim();
            if entry.is_empty() {
                continue;
            }
            if let Err(e) = self.add(entry) {
                warnings.push(format!("{}:{}: {e}", path.display(), i + 1));
            }
        }
        Ok(warnings)
    }
}

/// A list loaded from a file, and when it was read.
struct FileList {
    list: Arc<AddressList>,
    modified: Option<SystemTime>,
    checked: Instant,
}

/// Every suppression list the configuration names.
pub struct Suppressions {
    named: HashMap<String, Arc<AddressList>>,
    files: Mutex<HashMap<PathBuf, FileList>>,
}

/// How often a file-backed list checks its file for changes.
const RECHECK: Duration = Duration::from_secs(1);

impl Suppressions {
    /// Loads the named `<address-list>` blocks. Errors name the file and line.
    pub fn from_config(config: &Config) -> Result<Suppressions, Vec<String>> {
        let mut named = HashMap::new();
        let mut errors = Vec::new();
        for block in config.blocks_of("address-list").chain(config.blocks_of("suppression-list")) {
            let Some(name) = block.arg.clone() else { continue };
            let mut list = AddressList::default();
            for e in block.settings.all(Dir::Address) {
                if let (Value::Text(t), Some(loc)) = (&e.value, e.origin.location())
                    && let Err(m) = list.add(t)
                {
                    errors.push(format!("{loc}: address: {m}"));
                }
            }
            for e in block.settings.all(Dir::DomainEntry) {
                if let Value::Domain(d) = &e.value {
                    list.add_domain(&d.to_string());
                }
            }
            for e in block.settings.all(Dir::AddressFile) {
                if let Value::Path(p) = &e.value {
                    match list.load_file(&config.path(p)) {
                        Ok(warnings) => warnings.iter().for_each(|w| tracing::warn!("{w}")),
                        Err(m) => errors.push(m),
                    }
                }
            }
            named.insert(name, Arc::new(list));
        }
        if errors.is_empty() { Ok(Suppressions { named, files: Mutex::new(HashMap::new()) }) } else { Err(errors) }
    }

    /// The list that suppresses `address`, if any: the session's named lists, then `file`.
    pub fn check(&self, lists: &[String], file: Option<&Path>, address: &str) -> Option<String> {
        for name in lists {
            if self.named.get(name).is_some_and(|l| l.contains(address)) {
                return Some(name.clone());
            }
        }
        let path = file?;
        let list = self.file_list(path)?;
        list.contains(address)
            .then(|| path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned()))
    }

    /// The current contents of a file-backed list, re-read when the file changed. The lock is
    /// never held across file I/O: every session checking a recipient takes it, and a large
    /// file's reload must not stall them all. The session that finds the recheck due claims it
    /// (others keep using the current contents meanwhile) and does the stat and any reload itself.
    fn file_list(&self, path: &Path) -> Option<Arc<AddressList>> {
        let now = Instant::now();
        let current = {
            let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
            match files.get_mut(path) {
                Some(f) if now.duration_since(f.checked) < RECHECK => return Some(Arc::clone(&f.list)),
                Some(f) => {
                    f.checked = now;
                    Some((Arc::clone(&f.list), f.modified))
                }
                None => None,
            }
        };
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        if let Some((list, seen)) = &current
            && *seen == modified
        {
            return Some(Arc::clone(list));
        }
        let mut list = AddressList::default();
        match list.load_file(path) {
            Ok(warnings) => warnings.iter().for_each(|w| tracing::warn!("{w}")),
            // Keep the last good contents when the file becomes unreadable.
            Err(e) => {
                tracing::error!("{e}");
                if let Some((list, _)) = current {
                    return Some(list);
                }
            }
        }
        let list = Arc::new(list);
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        files.insert(path.to_path_buf(), FileList { list: Arc::clone(&list), modified, checked: now });
        Some(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_kinds() {
        let mut l = AddressList::default();
        for e in ["Bob@Example.com", "@blocked.example", "postmaster", "/^spam-trap-\\d+@/"] {
            l.add(e).unwrap();
        }
        assert!(l.contains("bob@example.COM"));
        assert!(!l.contains("alice@example.com"));
        assert!(l.contains("x@blocked.example"));
        assert!(l.contains("x@mx.blocked.example"));
        assert!(!l.contains("x@notblocked.example"));
        assert!(l.contains("Postmaster@anywhere.org"));
        assert!(l.contains("spam-trap-42@isp.net"));
        assert!(l.add("two words@x").is_err());
        assert!(l.add("/(/").is_err());
    }

    #[test]
    fn file_lists_report_bad_lines_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("supp.txt");
        std::fs::write(&path, "a@x.com\nnot valid <\n# comment\n@y.org\n").unwrap();
        let mut l = AddressList::default();
        let warnings = l.load_file(&path).unwrap();
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].ends_with("supp.txt:2: not an address, @domain or /regex/: \"not valid <\""),
            "{warnings:?}"
        );
        assert!(l.contains("q@y.org") && l.contains("a@x.com"));

        let s = Suppressions { named: HashMap::new(), files: Mutex::new(HashMap::new()) };
        assert_eq!(s.check(&[], Some(&path), "a@x.com").as_deref(), Some("supp.txt"));
        assert_eq!(s.check(&[], Some(&path), "new@z.net"), None);
        std::fs::write(&path, "new@z.net\n").unwrap();
        // Force the recheck rather than sleeping past the interval.
        s.files.lock().unwrap().get_mut(path.as_path()).unwrap().checked -= RECHECK;
        s.files.lock().unwrap().get_mut(path.as_path()).unwrap().modified = None;
        assert_eq!(s.check(&[], Some(&path), "new@z.net").as_deref(), Some("supp.txt"));
        assert_eq!(s.check(&[], Some(&path), "a@x.com"), None);
    }
}
