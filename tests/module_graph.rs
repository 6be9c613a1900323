//! The layering check: the top-level modules of `src/` (`config`, `ingress`, `queue`, ...) must
//! depend on each other without a cycle, so that each layer can be understood, tested and later
//! moved (cluster, adaptive delivery) without dragging the layers above it along
//! (docs/architecture.md, "Module layering").
//!
//! Reads the sources as text rather than asking the compiler, so it needs no tool beyond `cargo
//! test`. A dependency is any `crate::X` path (in `use` or inline), `crate::{X, ...}` group, or
//! `super::` chain that climbs to the crate root. Comments and string literals are skipped.
//!
//! Test code does not count: anything under `#[cfg(test)]` (inline test modules, `mod tests;`
//! files and the directories below them, test-only `use` lines). A unit test may legitimately
//! reach up a layer to check that two stages agree (delivery's `file` output read back by the
//! ingress pickup parser), and such an arrow does not make production code depend on anything.
//! The test-only arrows are printed, so they stay visible.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Where one arrow was seen, for the failure message.
type Edges = BTreeMap<(String, String), String>;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// `::`
    Path,
    Punct(char),
}

/// The tokens of a Rust source, with their line numbers, comments and literals left out.
fn tokens(text: &str) -> Vec<(Tok, usize)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    let newlines = |s: &[char]| s.iter().filter(|&&c| c == '\n').count();
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            // Block comments nest in Rust.
            let start = i;
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            line += newlines(&chars[start..i]);
        } else if let Some(end) = raw_string_end(&chars, i) {
            line += newlines(&chars[i..end]);
            i = end;
        } else if c == '"' || (c == 'b' && next == Some('"')) {
            let start = i;
            i += if c == 'b' { 2 } else { 1 };
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            line += newlines(&chars[start..i.min(chars.len())]);
        } else if c == '\'' || (c == 'b' && next == Some('\'')) {
            // A char literal closes within a few characters; a lifetime (`'a`) does not.
            let open = if c == 'b' { i + 1 } else { i };
            let close = if chars.get(open + 1) == Some(&'\\') {
                (open + 3..chars.len().min(open + 12)).find(|&j| chars[j] == '\'')
            } else if chars.get(open + 2) == Some(&'\'') {
                Some(open + 2)
            } else {
                None
            };
            match close {
                Some(j) => i = j + 1,
                None => i = open + 1,
            }
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push((Tok::Ident(chars[start..i].iter().collect()), line));
        } else if c == ':' && next == Some(':') {
            out.push((Tok::Path, line));
            i += 2;
        } else {
            out.push((Tok::Punct(c), line));
            i += 1;
        }
    }
    out
}

/// The end of a raw (byte) string starting at `i` (`r"…"`, `r#"…"#`, `br"…"`), if one does.
fn raw_string_end(chars: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    if chars.get(j) == Some(&'b') {
        j += 1;
    }
    if chars.get(j) != Some(&'r') || (i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')) {
        return None;
    }
    j += 1;
    let hashes = chars[j..].iter().take_while(|&&c| c == '#').count();
    j += hashes;
    if chars.get(j) != Some(&'"') {
        return None;
    }
    j += 1;
    while j < chars.len() {
        if chars[j] == '"' && chars[j + 1..].iter().take(hashes).filter(|&&c| c == '#').count() == hashes {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(chars.len())
}

fn ident(t: Option<&(Tok, usize)>) -> Option<&str> {
    match t {
        Some((Tok::Ident(s), _)) => Some(s),
        _ => None,
    }
}

/// What one file says: the top-level modules it refers to (with the line and whether only test
/// code does), and the child modules it declares under `#[cfg(test)]` as `mod name;`.
#[derive(Default)]
struct FileRefs {
    refs: Vec<(String, usize, bool)>,
    test_children: Vec<String>,
}

/// Scans one file whose module path is `module` (e.g. `["delivery", "client"]`).
fn scan(text: &str, module: &[String], top_level: &BTreeSet<String>) -> FileRefs {
    let toks = tokens(text);
    let mut found = FileRefs::default();
    // Open braces: whether each opened an inline `mod` (its name) and whether test code did.
    let mut braces: Vec<(Option<String>, bool)> = Vec::new();
    // The item after `#[cfg(test)]`, by the brace and bracket depth it starts at: it ends at a
    // `;` there, or is the test code inside the next `{` there.
    let mut test_item: Option<(usize, usize)> = None;
    let mut parens = 0usize;
    let mut i = 0;
    while i < toks.len() {
        let in_test = test_item.is_some() || braces.iter().any(|b| b.1);
        let (tok, line) = &toks[i];
        let depth = (braces.len(), parens);
        match tok {
            Tok::Punct('#') if is_cfg_test(&toks[i..]) => {
                test_item = test_item.or(Some(depth));
                i += 7;
                continue;
            }
            Tok::Punct('(' | '[') => parens += 1,
            Tok::Punct(')' | ']') => parens = parens.saturating_sub(1),
            Tok::Punct(';') if test_item == Some(depth) => {
                test_item = None;
                // `#[cfg(test)] mod name;`: the file of `name` is test code as a whole.
                if let (Some("mod"), Some(name)) =
                    (ident(toks.get(i.wrapping_sub(2))), ident(toks.get(i.wrapping_sub(1))))
                {
                    found.test_children.push(name.to_string());
                }
            }
            Tok::Punct('{') => {
                let inline_mod = match (ident(toks.get(i.wrapping_sub(2))), ident(toks.get(i.wrapping_sub(1)))) {
                    (Some("mod"), Some(name)) => Some(name.to_string()),
                    _ => None,
                };
                let test = in_test || test_item.is_some_and(|d| d == depth);
                if test_item == Some(depth) {
                    test_item = None;
                }
                braces.push((inline_mod, test));
            }
            Tok::Punct('}') => {
                braces.pop();
                if test_item.is_some_and(|(b, _)| b > braces.len()) {
                    test_item = None;
                }
            }
            Tok::Ident(word)
                if (word == "crate" || word == "super") && toks.get(i + 1).map(|t| &t.0) == Some(&Tok::Path) =>
            {
                let preceded_by_path = i > 0 && toks[i - 1].0 == Tok::Path;
                if !preceded_by_path {
                    let (targets, used) = path_targets(&toks[i..], module, &braces);
                    for t in targets.into_iter().filter(|t| top_level.contains(t)) {
                        found.refs.push((t, *line, in_test));
                    }
                    i += used;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    found
}

/// `#[cfg(test)]` at the start of `toks`.
fn is_cfg_test(toks: &[(Tok, usize)]) -> bool {
    let want = [
        Tok::Punct('#'),
        Tok::Punct('['),
        Tok::Ident("cfg".into()),
        Tok::Punct('('),
        Tok::Ident("test".into()),
        Tok::Punct(')'),
        Tok::Punct(']'),
    ];
    toks.len() >= want.len() && toks.iter().zip(&want).all(|(a, b)| &a.0 == b)
}

/// The crate-root modules a path starting at `toks` (with `crate` or `super`) names, and how many
/// tokens it used. A `super` chain that stays inside the current top-level module names none.
fn path_targets(toks: &[(Tok, usize)], module: &[String], braces: &[(Option<String>, bool)]) -> (Vec<String>, usize) {
    let mut i = 0;
    if ident(toks.first()) == Some("super") {
        let mut here: Vec<&str> = module.iter().map(String::as_str).collect();
        here.extend(braces.iter().filter_map(|b| b.0.as_deref()));
        while ident(toks.get(i)) == Some("super") && toks.get(i + 1).map(|t| &t.0) == Some(&Tok::Path) {
            here.pop();
            i += 2;
        }
        if !here.is_empty() {
            return (Vec::new(), i);
        }
    } else {
        i = 2;
    }
    match toks.get(i) {
        Some((Tok::Ident(name), _)) => (vec![name.clone()], i + 1),
        Some((Tok::Punct('{'), _)) => {
            // `crate::{a::b, c}`: the first segment of each element of the group.
            let mut names = Vec::new();
            let mut depth = 0;
            let mut expect_name = true;
            let mut j = i;
            while j < toks.len() {
                match &toks[j].0 {
                    Tok::Punct('{') => {
                        depth += 1;
                        expect_name = depth == 1;
                    }
                    Tok::Punct('}') => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    Tok::Punct(',') if depth == 1 => expect_name = true,
                    Tok::Ident(name) if expect_name && depth == 1 => {
                        names.push(name.clone());
                        expect_name = false;
                    }
                    _ => expect_name = false,
                }
                j += 1;
            }
            (names, j + 1)
        }
        _ => (Vec::new(), i),
    }
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect::<Vec<_>>();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file relative to `src/`: `delivery/client/tls.rs` is
/// `delivery::client::tls`, `message/mod.rs` is `message`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let file = parts.pop().unwrap();
    let stem = file.trim_end_matches(".rs");
    if stem != "mod" {
        parts.push(stem.to_string());
    }
    parts
}

/// The arrows between top-level modules: production code, and those only test code draws.
fn graph(files: &[(PathBuf, String)]) -> (Edges, Edges) {
    let top_level: BTreeSet<String> = files
        .iter()
        .filter_map(|(rel, _)| module_path(rel).first().cloned())
        .filter(|m| m != "lib" && m != "main")
        .collect();
    let mut scanned = Vec::new();
    let mut test_modules: BTreeSet<Vec<String>> = BTreeSet::new();
    for (rel, text) in files {
        let module = module_path(rel);
        if module.is_empty() || module == ["lib"] || module == ["main"] {
            continue;
        }
        let refs = scan(text, &module, &top_level);
        for child in &refs.test_children {
            let mut m = module.clone();
            m.push(child.clone());
            test_modules.insert(m);
        }
        scanned.push((rel, module, refs));
    }
    let (mut production, mut test_only) = (Edges::new(), Edges::new());
    for (rel, module, refs) in scanned {
        let test_file = (1..=module.len()).any(|n| test_modules.contains(&module[..n]));
        for (target, line, in_test) in refs.refs {
            if target == module[0] {
                continue;
            }
            let key = (module[0].clone(), target);
            let at = format!("src/{}:{line}", rel.display());
            if in_test || test_file {
                test_only.entry(key).or_insert(at);
            } else {
                production.entry(key).or_insert(at);
            }
        }
    }
    test_only.retain(|k, _| !production.contains_key(k));
    (production, test_only)
}

/// Every cycle a depth-first search meets (at most one per back edge), as module lists whose
/// last element is the first.
fn cycles(edges: &Edges) -> Vec<Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut adjacency: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        adjacency.entry(from).or_default().push(to);
    }
    let mut done: BTreeSet<&str> = BTreeSet::new();
    fn visit<'a>(
        node: &'a str,
        adjacency: &BTreeMap<&'a str, Vec<&'a str>>,
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
        out: &mut BTreeMap<String, Vec<String>>,
    ) {
        stack.push(node);
        for &next in adjacency.get(node).into_iter().flatten() {
            if let Some(at) = stack.iter().position(|&n| n == next) {
                let mut cycle: Vec<String> = stack[at..].iter().map(|s| s.to_string()).collect();
                cycle.push(next.to_string());
                let mut key = cycle[..cycle.len() - 1].to_vec();
                key.sort();
                out.entry(key.join(",")).or_insert(cycle);
            } else if !done.contains(next) {
                visit(next, adjacency, stack, done, out);
            }
        }
        stack.pop();
        done.insert(node);
    }
    for &start in adjacency.keys() {
        if !done.contains(start) {
            visit(start, &adjacency, &mut Vec::new(), &mut done, &mut out);
        }
    }
    out.into_values().collect()
}

fn describe(cycle: &[String], edges: &Edges) -> String {
    let mut text = cycle.join(" -> ");
    for pair in cycle.windows(2) {
        let at = &edges[&(pair[0].clone(), pair[1].clone())];
        text.push_str(&format!("\n    {} -> {}: {at}", pair[0], pair[1]));
    }
    text
}

fn sources() -> Vec<(PathBuf, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    paths
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p.strip_prefix(&src).unwrap().to_path_buf(), text)
        })
        .collect()
}

#[test]
fn top_level_modules_depend_on_each_other_without_a_cycle() {
    let (production, test_only) = graph(&sources());
    // A scanner that silently saw nothing would pass; these arrows are known to exist.
    for (from, to) in [("daemon", "mgmt"), ("queue", "spool"), ("ingress", "message"), ("delivery", "smtp")] {
        assert!(production.contains_key(&(from.into(), to.into())), "the scan missed {from} -> {to}");
    }
    for ((from, to), at) in &test_only {
        eprintln!("test code only (not counted): {from} -> {to} at {at}");
    }
    let found = cycles(&production);
    let report: Vec<String> = found.iter().map(|c| describe(c, &production)).collect();
    assert!(found.is_empty(), "module cycles (docs/architecture.md, \"Module layering\"):\n{}", report.join("\n"));
}

#[test]
fn the_check_sees_cycles_through_every_kind_of_path() {
    let file = |path: &str, text: &str| (PathBuf::from(path), text.to_string());
    let files = [
        file("a/mod.rs", "use crate::b::X;\n// crate::c::in_a_comment\nconst S: &str = \"crate::c::in_a_string\";\n"),
        file("b.rs", "fn f() { crate::c::g(); }\n#[cfg(test)]\nmod tests { use crate::d::Y; }\n"),
        file("c/x/y.rs", "use crate::{message, a::Z};\nfn h() -> super::super::super::e::W { super::super::f() }\n"),
        file("d/mod.rs", "#[cfg(test)]\nmod tests;\nmod inner { use super::super::c::V; }\n"),
        file("d/tests.rs", "use crate::a::T;\n"),
        file("e.rs", "use super::a::Q;\nuse crate::d::R;\n"),
        file("message.rs", "pub struct M;\n"),
    ];
    let (production, test_only) = graph(&files);
    let arrows: Vec<String> = production.keys().map(|(a, b)| format!("{a}->{b}")).collect();
    assert_eq!(arrows, ["a->b", "b->c", "c->a", "c->e", "c->message", "d->c", "e->a", "e->d"]);
    let test_arrows: Vec<String> = test_only.keys().map(|(a, b)| format!("{a}->{b}")).collect();
    assert_eq!(test_arrows, ["b->d", "d->a"]);
    let found: Vec<String> = cycles(&production).iter().map(|c| c.join(" -> ")).collect();
    assert!(found.contains(&"a -> b -> c -> a".to_string()), "{found:?}");
}
