//! `alias SOURCE TARGET[,TARGET…]` (at top level or in `<aliases>`): recipients rewritten at
//! RCPT. A client that asks for SOURCE gets one `250`, and the message is queued for every
//! TARGET instead (each checked against suppression like any recipient).
//!
//! SOURCE is a whole address, or a bare local part that stands for that local part at every
//! `host-name` (so `alias postmaster ops@example.com` covers `postmaster@` each of Ember's own
//! names; the system's host name when the configuration names none). Matching ignores case. Targets are not expanded again, so aliases cannot loop.

use std::collections::HashMap;

use crate::config::value::Value;
use crate::config::{Config, Dir};

#[derive(Clone, Debug, Default)]
pub struct Aliases {
    /// Lowercased source address → targets, as written.
    map: HashMap<String, Vec<String>>,
}

impl Aliases {
    /// The aliases of a configuration, with `host_names` the names Ember answers to (for bare
    /// local parts); a later line for the same source replaces an earlier one (as a repeated
    /// directive does elsewhere). Problems are returned as messages.
    pub fn from_config(config: &Config, host_names: &[String]) -> Result<Aliases, Vec<String>> {
        let own: Vec<String> = host_names.iter().map(|h| h.to_lowercase()).collect();
        let entries = config
            .global
            .all(Dir::Alias)
            .iter()
            .chain(config.blocks_of("aliases").flat_map(|b| b.settings.all(Dir::Alias).iter()));
        let mut map = HashMap::new();
        let mut errors = Vec::new();
        for e in entries {
            let Value::Words(w) = &e.value else { continue };
            let (source, targets) = (&w[0], &w[1]);
            let at = e.origin.describe();
            let targets: Vec<String> =
                targets.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_string).collect();
            if let Some(bad) = targets.iter().find(|t| !is_address(t)) {
                errors.push(format!("{at}: alias {source}: target {bad:?} is not an address (local@domain)"));
                continue;
            }
            if targets.is_empty() {
                errors.push(format!("{at}: alias {source} has no target"));
                continue;
            }
            let source = source.trim_start_matches('<').trim_end_matches('>').to_lowercase();
            if is_address(&source) {
                map.insert(source, targets);
            } else if !source.is_empty() && !source.contains(['@', ' ', ',']) {
                for host in &own {
                    map.insert(format!("{source}@{host}"), targets.clone());
                }
            } else {
                errors.push(format!("{at}: alias source {source:?} is not an address or a local part"));
            }
        }
        if errors.is_empty() { Ok(Aliases { map }) } else { Err(errors) }
    }

    /// The targets `address` is rewritten to, if it is an alias.
    pub fn expand(&self, address: &str) -> Option<&[String]> {
        self.map.get(&address.to_lowercase()).map(Vec::as_slice)
    }
}

fn is_address(a: &str) -> bool {
    matches!(a.rsplit_once('@'), Some((l, d)) if !l.is_empty() && !d.is_empty() && !a.contains(char::is_whitespace))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{FileCheck, load_str};

    fn aliases(text: &str) -> Result<Aliases, Vec<String>> {
        let loaded = load_str("a.conf", text, Path::new("."), FileCheck::Warn);
        assert!(!loaded.diagnostics.has_errors(), "{}", loaded.diagnostics);
        let hosts: Vec<String> = ["mx.example.net", "mx2.example.net"].map(String::from).to_vec();
        Aliases::from_config(&loaded.config, &hosts)
    }

    #[test]
    fn addresses_local_parts_and_the_aliases_block() {
        let a = aliases(
            "host-name mx.example.net\nhost-name mx2.example.net\nalias Sales@Example.com a@x.example,b@y.example\n<aliases>\n alias postmaster ops@example.org\n</aliases>\n",
        )
        .unwrap();
        assert_eq!(a.expand("sales@example.COM").unwrap(), ["a@x.example", "b@y.example"]);
        assert_eq!(a.expand("POSTMASTER@mx.example.net").unwrap(), ["ops@example.org"]);
        assert_eq!(a.expand("postmaster@mx2.example.net").unwrap(), ["ops@example.org"]);
        assert!(a.expand("postmaster@elsewhere.example").is_none());
        assert!(a.expand("other@example.com").is_none());
        // Targets are not expanded again.
        let chained = aliases("alias a@x.example b@x.example\nalias b@x.example c@x.example\n").unwrap();
        assert_eq!(chained.expand("a@x.example").unwrap(), ["b@x.example"]);
    }

    #[test]
    fn bad_targets_are_reported_with_their_line() {
        let err = aliases("alias a@x.example nobody\n").unwrap_err();
        assert!(err[0].contains("a.conf:1") && err[0].contains("\"nobody\""), "{err:?}");
    }
}
