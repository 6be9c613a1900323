//! `domain-macro NAME LIST` and `$NAME` expansion in `<domain>` patterns (REFERENCE.md §1.2).
//!
//! Owns macro collection (anywhere at top level, so file order does not matter), nesting and loop
//! detection. Expansion returns each resulting pattern and whether a macro produced it, because
//! explicitly written domains beat macro-produced ones.

use std::collections::BTreeMap;

use super::diag::{Diagnostics, Location};
use super::tree::Node;
use super::value::split_list;

#[derive(Debug, Default)]
pub struct Macros {
    defs: BTreeMap<String, (Vec<String>, Location)>,
}

/// Most patterns one `<domain>` argument may expand to: a guard against macro explosions.
const MAX_EXPANSION: usize = 10_000;

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Macros {
    pub fn collect(nodes: &[Node], diags: &mut Diagnostics) -> Macros {
        let mut macros = Macros::default();
        for node in nodes {
            let Node::Directive(d) = node else { continue };
            if d.name != "domain-macro" {
                continue;
            }
            let Some((name, values)) = d.args.split_first().filter(|(_, v)| !v.is_empty()) else {
                diags.error(
                    &d.location,
                    "domain-macro: expected NAME LIST like domain-macro msft hotmail.com,outlook.com",
                );
                continue;
            };
            if !valid_name(&name.text) {
                diags.error(
                    &name.location,
                    format!("domain-macro: invalid macro name {:?}: use letters, digits and '_'", name.text),
                );
                continue;
            }
            if let Some((_, first)) = macros.defs.get(&name.text) {
                diags.error(
                    &name.location,
                    format!("domain-macro {} is already defined at {}", name.text, first.file_line()),
                );
                continue;
            }
            let list = split_list(&values.iter().map(|t| t.text.as_str()).collect::<Vec<_>>().join(" "));
            macros
                .defs
                .insert(name.text.clone(), (list.iter().map(|v| v.to_lowercase()).collect(), d.location.clone()));
        }
        for name in macros.defs.keys() {
            if let Err(e) = macros.expand_name(name, &mut Vec::new()) {
                let location = &macros.defs[name].1;
                diags.error(location, format!("domain-macro {name}: {e}"));
            }
        }
        macros
    }

    /// Expands `$NAME` occurrences in a pattern. Returns (pattern, produced-by-macro).
    pub fn expand(&self, pattern: &str) -> Result<Vec<(String, bool)>, String> {
        if !pattern.contains('$') {
            return Ok(vec![(pattern.to_string(), false)]);
        }
        let results = self.expand_text(pattern, &mut Vec::new())?;
        Ok(results.into_iter().map(|p| (p, true)).collect())
    }

    fn expand_text(&self, text: &str, stack: &mut Vec<String>) -> Result<Vec<String>, String> {
        let Some(dollar) = text.find('$') else { return Ok(vec![text.to_string()]) };
        let after = &text[dollar + 1..];
        let len = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
        let name = &after[..len];
        if name.is_empty() {
            return Err("'$' must be followed by a macro name".into());
        }
        let values = self.expand_name(name, stack)?;
        let tails = self.expand_text(&after[len..], stack)?;
        let mut out = Vec::new();
        for v in &values {
            for t in &tails {
                out.push(format!("{}{v}{t}", &text[..dollar]));
                if out.len() > MAX_EXPANSION {
                    return Err(format!("expands to more than {MAX_EXPANSION} patterns"));
                }
            }
        }
        Ok(out)
    }

    fn expand_name(&self, name: &str, stack: &mut Vec<String>) -> Result<Vec<String>, String> {
        if stack.iter().any(|s| s == name) {
            let chain: Vec<&str> = stack.iter().map(String::as_str).chain([name]).collect();
            return Err(format!("macro loop: ${}", chain.join(" -> $")));
        }
        let Some((values, _)) = self.defs.get(name) else {
            return Err(format!("unknown domain-macro ${name}"));
        };
        stack.push(name.to_string());
        let mut out = Vec::new();
        for v in values {
            out.extend(self.expand_text(v, stack)?);
        }
        stack.pop();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tree::parse_text;

    fn macros(text: &str) -> (Macros, Diagnostics) {
        let mut d = Diagnostics::default();
        let nodes = parse_text("m.conf", text, std::path::Path::new("."), &mut d);
        let m = Macros::collect(&nodes, &mut d);
        (m, d)
    }

    #[test]
    fn nested_expansion() {
        let (m, d) = macros("domain-macro com com, net\ndomain-macro tld $com,org\n");
        assert!(d.is_empty(), "{d}");
        let got: Vec<String> = m.expand("yahoo.$tld").unwrap().into_iter().map(|(p, _)| p).collect();
        assert_eq!(got, ["yahoo.com", "yahoo.net", "yahoo.org"]);
        assert_eq!(m.expand("x.com").unwrap(), [("x.com".to_string(), false)]);
    }

    #[test]
    fn loops_and_unknown_names() {
        let (_, d) = macros("domain-macro a $b\ndomain-macro b $a\n");
        assert!(d.to_string().contains("macro loop: $a -> $b -> $a"), "{d}");
        let (m, _) = macros("domain-macro a x\n");
        assert_eq!(m.expand("$nope.com").unwrap_err(), "unknown domain-macro $nope");
    }
}
