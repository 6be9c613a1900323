//! Suppression lists checked at RCPT: the field dialect's `suppress-file` and named
//! `<address-list>` blocks referenced by `suppression-lists` (docs/operations.md, "Injection").
//!
//! A list (`hygiene::address_list`) holds exact addresses, `@domain` entries, bare local parts and
//! `/regex/` entries. File-backed lists are re-read when the file changes (checked at most once a
//! second), and bad lines are reported with their line numbers while the rest loads.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::config::value::Value;
use crate::config::{Config, Dir};
use crate::hygiene::address_list::AddressList;

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
