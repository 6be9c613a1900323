//! Diagnostics for configuration files: a location (`FILE:LINE:COL`), a severity and a message.
//!
//! Owns how problems are reported to operators. Every error the config engine produces goes
//! through here so that `check-config`, `run` and reload print the same lines.

use std::fmt;
use std::sync::Arc;

/// A position in a configuration file. Lines and columns are 1-based; columns count characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Location {
    pub file: Arc<str>,
    pub line: u32,
    pub col: u32,
}

impl Location {
    pub fn new(file: &Arc<str>, line: u32, col: u32) -> Self {
        Location { file: Arc::clone(file), line, col }
    }

    /// `FILE:LINE`, the form `show settings` uses to say where a value came from.
    pub fn file_line(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub location: Location,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{}: {}: {}", self.location, level, self.message)
    }
}

/// The problems found while loading one configuration, in the order they were found.
#[derive(Clone, Debug, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn error(&mut self, location: &Location, message: impl Into<String>) {
        self.push(Severity::Error, location, message.into());
    }

    pub fn warning(&mut self, location: &Location, message: impl Into<String>) {
        self.push(Severity::Warning, location, message.into());
    }

    fn push(&mut self, severity: Severity, location: &Location, message: String) {
        let diagnostic = Diagnostic { severity, location: location.clone(), message };
        // The same problem can be reached twice (a block included twice through a glob, a
        // setting resolved for several queues); report it once.
        if !self.items.contains(&diagnostic) {
            self.items.push(diagnostic);
        }
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter().filter(|d| d.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter().filter(|d| d.severity == Severity::Warning)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter()
    }

    /// Errors, then warnings, each in file order (`FILE`, `LINE`, `COL`), the order an operator
    /// fixes them in. Problems found at the same place keep the order they were found in.
    pub fn sorted(&self) -> Vec<&Diagnostic> {
        let mut all: Vec<&Diagnostic> = self.items.iter().collect();
        all.sort_by(|a, b| {
            let key = |d: &Diagnostic| (d.severity, Arc::clone(&d.location.file), d.location.line, d.location.col);
            key(a).cmp(&key(b))
        });
        all
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Turns every warning into an error (`check-config --strict`).
    pub fn escalate_warnings(&mut self) {
        for d in &mut self.items {
            d.severity = Severity::Error;
        }
    }

    pub fn extend(&mut self, other: Diagnostics) {
        for d in other.items {
            self.push(d.severity, &d.location, d.message);
        }
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.items {
            writeln!(f, "{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_lists_errors_then_warnings_in_file_order() {
        let a: Arc<str> = Arc::from("a.conf");
        let b: Arc<str> = Arc::from("b.conf");
        let mut d = Diagnostics::default();
        d.warning(&Location::new(&a, 1, 1), "w1");
        d.error(&Location::new(&b, 1, 1), "e3");
        d.error(&Location::new(&a, 10, 2), "e2");
        d.error(&Location::new(&a, 9, 30), "e1");
        d.warning(&Location::new(&a, 0, 5), "w0");
        d.error(&Location::new(&a, 10, 2), "e2bis");
        let order: Vec<&str> = d.sorted().iter().map(|x| x.message.as_str()).collect();
        assert_eq!(order, ["e1", "e2", "e2bis", "e3", "w0", "w1"]);
    }
}
