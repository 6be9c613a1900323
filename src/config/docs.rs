//! Generates `docs/config-reference.md` from the directive table, so the reference cannot drift
//! from what the parser accepts. A test compares the file with this output.

use std::fmt::Write as _;

use super::dialect::{DIALECT, Mapping};
use super::table::DIRECTIVES;
use super::table_def::{BLOCKS, Status, scope_names};

/// Scope names with blocks in code spans, so Markdown does not read `<domain>` as HTML.
fn scopes(bits: u32) -> String {
    scope_names(bits)
        .iter()
        .map(|n| if n.starts_with('<') { format!("`{n}`") } else { n.clone() })
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn reference_markdown() -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Configuration reference\n");
    let _ = writeln!(
        s,
        "Generated from Ember's directive table (`src/config/table.rs`) by `cargo test` (set \
         `EMBER_BLESS=1` to rewrite it). Every directive PowerMTA documents is accepted, typed and shown \
         by `ember show settings`; **Status** says whether Ember acts on it yet. `pending` directives \
         are listed by `ember check-config` as \"accepted, not yet enforced\"; a `no effect` directive \
         has no meaning for Ember (the Meaning column says why) and `check-config` warns where it is used.\n"
    );
    let _ = writeln!(s, "## Syntax\n");
    let _ = writeln!(
        s,
        "- One directive per line, `#` starts a comment (outside double quotes). Names are case-insensitive.\n\
         - Blocks: `<tag argument>` … `</tag>`; a closing tag may repeat the argument.\n\
         - Double quotes keep spaces and `#` in a value; `\\\"` and `\\\\` escape inside them; `\"\"` clears an inherited value.\n\
         - Comma-separated lists may have spaces around their commas: `records d, b, t` is `records d,b,t` (a comma inside quotes is text).\n\
         - `include FILE` (or a glob) at top level and in `<source>`, `<domain>`, `<virtual-mta>`, `<smtp-pattern-list>`; \
         relative names resolve against the including file. Cycles are errors; a glob matching nothing is a warning.\n\
         - Relative paths of other files (keys, certificates, spools, accounting files) resolve against the directory of the main config file.\n\
         - `domain-macro NAME a.com,b.com` defines `$NAME` for `<domain>` patterns; macros nest, loops are errors.\n\
         - Domain patterns, general to specific: `*`, `[10/8]` (literal IPs), `[*.]x.com`, `*.x.com`, `x.com`. \
         The most specific match wins regardless of file order; an explicit domain beats one produced by a macro.\n\
         - Queue settings layer: defaults, then global `<domain>` blocks, then the pool's, then the virtual MTA's.\n"
    );
    let _ = writeln!(s, "## Blocks\n");
    let _ = writeln!(s, "| Block | May appear in |\n|---|---|");
    for (tag, _, parents) in BLOCKS {
        let _ = writeln!(s, "| `<{tag}>` | {} |", scopes(*parents));
    }
    let _ = writeln!(s, "\n## Field dialect\n");
    let _ = writeln!(s, "Spellings from real-world configs, mapped onto documented directives:\n");
    let _ = writeln!(s, "| Written | Means | In |\n|---|---|---|");
    for (name, scope, mapping) in DIALECT {
        let means = match mapping {
            Mapping::Rename(d) => format!("`{}`", d.def().name),
            Mapping::PerHour(d) => format!("`{} N/h`", d.def().name),
            Mapping::OutboundAuth => {
                "`auth-username USER` + `auth-password PASS` (at top level: for every queue)".into()
            }
        };
        let _ = writeln!(s, "| `{name}` | {means} | {} |", scopes(*scope));
    }
    let _ = writeln!(
        s,
        "| `421 RP-001 *, 1h, 5, 1000` (in `<domain>`) | `backoff-rule 421 RP-001 *, 1h, 5, 1000/h` | `<domain>` |"
    );
    let _ = writeln!(s, "| `domain-key SEL,,$domain,FILE` | `domain-key SEL,*,FILE` | top level, `<virtual-mta>` |\n");
    let _ = writeln!(s, "## Directives\n");
    let _ = writeln!(s, "| Directive | Value | Default | Where | Status | Meaning |\n|---|---|---|---|---|---|");
    let mut sorted: Vec<_> = DIRECTIVES.iter().collect();
    sorted.sort_by_key(|d| d.name);
    for d in sorted {
        let status = match d.status {
            Status::Enforced => "enforced",
            Status::Pending => "pending",
            Status::NoEffect => "no effect",
        };
        let repeat = if d.repeatable { " (repeatable)" } else { "" };
        let _ = writeln!(
            s,
            "| `{}` | {}{repeat} | {} | {} | {status} | {} |",
            d.name,
            d.ty.describe().replace('|', "\\|"),
            d.default.map_or_else(|| "–".to_string(), |v| format!("`{v}`")),
            scopes(d.scope.0),
            d.doc.replace('|', "\\|"),
        );
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn docs_config_reference_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/config-reference.md");
        let expected = super::reference_markdown();
        if std::env::var_os("EMBER_BLESS").is_some() {
            std::fs::write(path, &expected).unwrap();
        }
        let actual = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            actual == expected,
            "docs/config-reference.md is stale: run `EMBER_BLESS=1 cargo test docs_config_reference`"
        );
    }
}
