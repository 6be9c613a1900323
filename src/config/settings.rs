//! A set of directive values with the place each came from. Used for one block as written and
//! for a queue's effective settings after inheritance.
//!
//! Owns the merge rule: a more specific layer replaces a directive's whole value (a repeatable
//! directive's whole list), and `""` clears what was inherited.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use super::diag::Location;
use super::lexer::Token;
use super::table::{DIRECTIVES, Dir};
use super::value::{Value, parse_value};

/// What a secret (a password) is printed as, wherever values are shown.
pub const SECRET_MASK: &str = "********";

/// Where a value came from.
#[derive(Clone, Debug)]
pub enum Origin {
    /// PowerMTA's default from the directive table.
    Default,
    /// A line of a config file; `written_as` is the field-dialect spelling when it was not the
    /// documented one. `location` is the directive's; `args` are the value's words as written,
    /// so a problem with one part of the value can point at its column.
    Config { location: Location, written_as: Option<String>, args: Arc<[Token]> },
}

impl Origin {
    pub fn location(&self) -> Option<&Location> {
        match self {
            Origin::Default => None,
            Origin::Config { location, .. } => Some(location),
        }
    }

    /// Where the value starts: its first word, or the directive when it has none.
    pub fn value_location(&self) -> Option<&Location> {
        match self {
            Origin::Default => None,
            Origin::Config { location, args, .. } => Some(args.first().map_or(location, |t| &t.location)),
        }
    }

    /// Where `part` is written in the value: a whole word, or one item of a comma-separated
    /// word (`customer` in `global,customer`). The last occurrence wins, since the names a value
    /// refers to follow its patterns. `None` when `part` is not written as such.
    pub fn part_location(&self, part: &str) -> Option<Location> {
        let Origin::Config { args, .. } = self else { return None };
        args.iter().rev().find_map(|t| {
            let mut found = None;
            let mut offset = 0;
            for item in t.text.split(',') {
                if item.trim() == part {
                    found = Some(offset + (item.len() - item.trim_start().len()));
                }
                offset += item.len() + 1;
            }
            let offset = found?;
            // Columns inside a quoted word are not the text's: point at the word.
            let shift = if t.quoted { 0 } else { t.text[..offset].chars().count() };
            let mut location = t.location.clone();
            location.col = location.col.saturating_add(u32::try_from(shift).unwrap_or(0));
            Some(location)
        })
    }

    /// `part_location`, else where the value starts.
    pub fn locate(&self, part: &str) -> Option<Location> {
        self.part_location(part).or_else(|| self.value_location().cloned())
    }

    /// `FILE:LINE`, `FILE:LINE (written as …)`, or `default`.
    pub fn describe(&self) -> String {
        match self {
            Origin::Default => "default".into(),
            Origin::Config { location, written_as: None, .. } => location.file_line(),
            Origin::Config { location, written_as: Some(w), .. } => {
                format!("{} (written as {w})", location.file_line())
            }
        }
    }
}

#[derive(Clone, Debug)]
pub struct Entry {
    pub value: Value,
    pub origin: Origin,
}

#[derive(Clone, Debug, Default)]
pub struct Settings {
    map: BTreeMap<Dir, Vec<Entry>>,
}

impl Settings {
    /// Records a value. For a directive that is not repeatable, returns where the value it
    /// replaces was set, so the caller can warn.
    pub fn set(&mut self, dir: Dir, entry: Entry) -> Option<Location> {
        let entries = self.map.entry(dir).or_default();
        if dir.def().repeatable && !matches!(entry.value, Value::Cleared) {
            entries.retain(|e| !matches!(e.value, Value::Cleared));
            entries.push(entry);
            return None;
        }
        let previous = entries.last().and_then(|e| e.origin.location().cloned());
        *entries = vec![entry];
        previous
    }

    /// Layers `specific` over `self`: every directive it sets replaces ours.
    pub fn overlay(&mut self, specific: &Settings) {
        for (dir, entries) in &specific.map {
            self.map.insert(*dir, entries.clone());
        }
    }

    /// The value in force: the last entry, or nothing when unset or cleared.
    pub fn get(&self, dir: Dir) -> Option<&Entry> {
        self.map.get(&dir).and_then(|e| e.last()).filter(|e| !matches!(e.value, Value::Cleared))
    }

    /// Every entry of a repeatable directive, in order.
    pub fn all(&self, dir: Dir) -> &[Entry] {
        match self.map.get(&dir) {
            Some(e) if !e.iter().any(|x| matches!(x.value, Value::Cleared)) => e,
            _ => &[],
        }
    }

    /// The raw entries, including an explicit clear.
    pub fn raw(&self, dir: Dir) -> Option<&[Entry]> {
        self.map.get(&dir).map(Vec::as_slice)
    }

    pub fn iter(&self) -> impl Iterator<Item = (Dir, &[Entry])> {
        self.map.iter().map(|(d, e)| (*d, e.as_slice()))
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Effective value: ours, else the table default.
    pub fn effective(&self, dir: Dir) -> Option<&Value> {
        match self.map.get(&dir) {
            Some(entries) => entries.last().map(|e| &e.value).filter(|v| !matches!(v, Value::Cleared)),
            None => default_value(dir),
        }
    }
}

/// Typed reads of effective values, for the parts of Ember that act on settings. Each falls back
/// to the table default; a value of another type (impossible once the table types it) reads as
/// the "unset" answer rather than panicking.
impl Settings {
    pub fn flag(&self, dir: Dir) -> bool {
        matches!(self.effective(dir), Some(Value::Bool(true)))
    }

    pub fn uint(&self, dir: Dir) -> Option<u64> {
        match self.effective(dir) {
            Some(Value::Uint(n)) => Some(*n),
            _ => None,
        }
    }

    pub fn interval(&self, dir: Dir) -> Option<std::time::Duration> {
        match self.effective(dir) {
            Some(Value::Interval(i)) => Some(std::time::Duration::from_secs(i.seconds())),
            _ => None,
        }
    }

    /// A size limit in bytes; `None` is unlimited.
    pub fn size(&self, dir: Dir) -> Option<u64> {
        match self.effective(dir) {
            Some(Value::Size(s)) => s.map(|s| s.0),
            _ => None,
        }
    }

    pub fn rate(&self, dir: Dir) -> Option<super::values::Rate> {
        match self.effective(dir) {
            Some(Value::Rate(r)) => *r,
            _ => None,
        }
    }

    pub fn text(&self, dir: Dir) -> Option<&str> {
        match self.effective(dir) {
            Some(Value::Text(t)) => Some(t),
            _ => None,
        }
    }

    pub fn list(&self, dir: Dir) -> Vec<String> {
        match self.effective(dir) {
            Some(Value::List(l)) => l.clone(),
            _ => Vec::new(),
        }
    }

    pub fn path(&self, dir: Dir) -> Option<&std::path::Path> {
        match self.effective(dir) {
            Some(Value::Path(p)) => Some(p),
            Some(Value::FileWithPassword { file, .. }) => Some(file),
            _ => None,
        }
    }
}

/// The table's defaults, parsed once. A default that does not parse is a bug in the table, caught
/// by `defaults_parse` below.
static DEFAULTS: LazyLock<Vec<Option<Value>>> = LazyLock::new(|| {
    DIRECTIVES
        .iter()
        .map(|d| {
            let text = d.default?;
            let file = std::sync::Arc::from("<table>");
            let location = Location::new(&file, 0, 1);
            let args: Vec<Token> = text.split_whitespace().map(|t| Token::bare(t, location.clone())).collect();
            let rest = Token::bare(text, location);
            parse_value(d.ty, 1, &args, &rest).ok()
        })
        .collect()
});

pub fn default_value(dir: Dir) -> Option<&'static Value> {
    DEFAULTS[dir as usize].as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse() {
        for d in DIRECTIVES {
            if d.default.is_some() {
                assert!(default_value(d.id).is_some(), "default of {} does not parse: {:?}", d.name, d.default);
            }
        }
    }

    #[test]
    fn documented_defaults() {
        assert_eq!(default_value(Dir::MaxSmtpOut).unwrap().to_string(), "20");
        assert_eq!(default_value(Dir::RetryAfter).unwrap().to_string(), "10m");
        assert_eq!(default_value(Dir::BounceAfter).unwrap().to_string(), "4d12h");
        assert_eq!(default_value(Dir::MaxMsgRate).unwrap().to_string(), "unlimited");
    }
}
