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
    /// Included files that could not be read (or a glob that matched nothing), where they were
    /// included. While one is missing, a name defined nowhere was probably defined there: the
    /// reference is reported as a consequence of the missing file, not as an error of its own.
    missing_includes: Vec<(Location, String)>,
    /// References left unresolved while an include is missing: what, and where it is written.
    unresolved: Vec<(String, Location)>,
}

impl Diagnostics {
    pub fn error(&mut self, location: &Location, message: impl Into<String>) {
        self.push(Severity::Error, location, message.into());
    }

    pub fn warning(&mut self, location: &Location, message: impl Into<String>) {
        self.push(Severity::Warning, location, message.into());
    }

    /// An included file that cannot be read (`reason`) or a glob that matched nothing.
    pub fn missing_include(&mut self, severity: Severity, location: &Location, file: &str, message: String) {
        self.push(severity, location, message);
        self.missing_includes.push((location.clone(), file.to_string()));
    }

    /// Reports a name that nothing defines. With an include missing, the name was probably
    /// defined in it: a warning that says so, and the include's error lists it; otherwise an
    /// error.
    pub fn undefined_reference(&mut self, location: &Location, what: &str, message: String) {
        match self.missing_includes.as_slice() {
            [] => self.error(location, message),
            missing => {
                let cause = match missing {
                    [(_, file)] => format!("{file} could not be read"),
                    _ => format!("{} included files could not be read", missing.len()),
                };
                self.warning(location, format!("{message}; left unresolved because {cause}"));
                self.unresolved.push((what.to_string(), location.clone()));
            }
        }
    }

    /// Adds to each missing include's own message what could not be resolved because of it.
    /// Called once, after every reference has been checked.
    pub fn explain_missing_includes(&mut self) {
        if self.unresolved.is_empty() {
            return;
        }
        const SHOWN: usize = 5;
        let mut listed: Vec<String> =
            self.unresolved.iter().take(SHOWN).map(|(what, at)| format!("{what} ({})", at.file_line())).collect();
        if self.unresolved.len() > SHOWN {
            listed.push(format!("and {} more", self.unresolved.len() - SHOWN));
        }
        let suffix = format!("; left unresolved while it is missing: {}", listed.join(", "));
        let places: Vec<Location> = self.missing_includes.iter().map(|(at, _)| at.clone()).collect();
        for d in &mut self.items {
            if places.contains(&d.location) && d.message.starts_with("include") && !d.message.ends_with(&suffix) {
                d.message.push_str(&suffix);
            }
        }
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
