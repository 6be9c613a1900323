//! A list of addresses to match recipients against: exact addresses, `@domain` entries (which
//! also cover subdomains), bare local parts and `/regex/` entries, from configuration or from a
//! file with one entry a line.
//!
//! Used by the suppression lists ingress checks at RCPT and by the hygiene processors to
//! recognise their own addresses; it lives here so hygiene need not look into ingress.

use std::collections::HashSet;
use std::path::Path;

/// An entry `add` refuses.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    #[error("invalid regular expression {entry}: {source}")]
    Regex {
        entry: String,
        #[source]
        source: regex::Error,
    },
    #[error("not an address, @domain or /regex/: {0:?}")]
    NotAnAddress(String),
}

/// Bad entries are refused one by one (`add` says why), so a list with a typo still loads.
#[derive(Debug, Default)]
pub struct AddressList {
    exact: HashSet<String>,
    domains: HashSet<String>,
    local_parts: HashSet<String>,
    patterns: Vec<regex::Regex>,
}

impl AddressList {
    /// Adds one entry; returns an explanation when the entry is not usable.
    pub fn add(&mut self, entry: &str) -> Result<(), EntryError> {
        let entry = entry.trim();
        if let Some(re) = entry.strip_prefix('/').and_then(|r| r.strip_suffix('/')) {
            let compiled = regex::Regex::new(&format!("(?i){re}"))
                .map_err(|source| EntryError::Regex { entry: entry.to_string(), source })?;
            self.patterns.push(compiled);
            return Ok(());
        }
        if entry.is_empty() || entry.contains(char::is_whitespace) || entry.contains(['<', '>', ',']) {
            return Err(EntryError::NotAnAddress(entry.to_string()));
        }
        match entry.rsplit_once('@') {
            Some(("", domain)) if !domain.is_empty() => self.domains.insert(domain.to_lowercase()),
            Some((local, domain)) if !local.is_empty() && !domain.is_empty() => self.exact.insert(entry.to_lowercase()),
            Some(_) => return Err(EntryError::NotAnAddress(entry.to_string())),
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
}
