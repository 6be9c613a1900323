//! Builds the block tree of a configuration from its files: matches `<tag>` with `</tag>`,
//! splices `include`d files in place, and reports unbalanced or unreadable input.
//!
//! Owns file reading (UTF-8 checks), include resolution (relative paths, globs, cycles). Knows
//! nothing about what directives mean: that is `model.rs`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::diag::{Diagnostics, Location, Severity};
use super::lexer::{Line, Token, lex};
use super::table_def::{BLOCKS, belongs, scope};

#[derive(Clone, Debug)]
pub struct Directive {
    pub name: String,
    pub location: Location,
    pub args: Vec<Token>,
    pub rest: Token,
    pub full: String,
}

#[derive(Clone, Debug)]
pub struct Block {
    pub tag: String,
    pub location: Location,
    pub arg: Option<Token>,
    pub children: Vec<Node>,
}

#[derive(Clone, Debug)]
pub enum Node {
    Directive(Directive),
    Block(Block),
}

/// How deep includes may nest before we call it runaway.
const MAX_INCLUDE_DEPTH: usize = 32;

/// Reads a configuration file and everything it includes.
pub fn parse_file(path: &Path, diags: &mut Diagnostics) -> Vec<Node> {
    let mut builder = Builder { diags, stack: Vec::new() };
    let display: Arc<str> = Arc::from(path.display().to_string());
    match builder.read(path, &display, None) {
        Some(text) => builder.parse_text(&display, &text, path, scope::GLOBAL),
        None => Vec::new(),
    }
}

/// Parses configuration text that has no file of its own (the embedded default, tests). Includes
/// resolve relative to `base_dir`.
pub fn parse_text(name: &str, text: &str, base_dir: &Path, diags: &mut Diagnostics) -> Vec<Node> {
    let mut builder = Builder { diags, stack: Vec::new() };
    let display: Arc<str> = Arc::from(name);
    builder.parse_text(&display, text, &base_dir.join(name), scope::GLOBAL)
}

struct Builder<'a> {
    diags: &'a mut Diagnostics,
    /// Canonical paths of the files being read, outermost first, for cycle detection.
    stack: Vec<PathBuf>,
}

struct Open {
    block: Block,
    bit: u32,
}

impl Builder<'_> {
    /// Reads a file as UTF-8, reporting where it is not. `from` is the include directive.
    fn read(&mut self, path: &Path, display: &Arc<str>, from: Option<&Location>) -> Option<String> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                let here = from.cloned().unwrap_or_else(|| Location::new(display, 1, 1));
                match from {
                    Some(_) => self.diags.missing_include(
                        Severity::Error,
                        &here,
                        &path.display().to_string(),
                        format!("include: cannot read {}: {}", path.display(), io_reason(&e)),
                    ),
                    None => self.diags.error(&here, format!("cannot read {}: {}", path.display(), io_reason(&e))),
                }
                return None;
            }
        };
        match String::from_utf8(bytes) {
            Ok(text) => Some(text),
            Err(e) => {
                let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
                let text = String::from_utf8_lossy(good);
                let line = text.matches('\n').count() + 1;
                let col = text.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                let location = Location::new(
                    display,
                    u32::try_from(line).unwrap_or(u32::MAX),
                    u32::try_from(col).unwrap_or(u32::MAX),
                );
                self.diags.error(&location, "invalid UTF-8: configuration files must be UTF-8 text");
                None
            }
        }
    }

    fn parse_text(&mut self, file: &Arc<str>, text: &str, path: &Path, outer_bit: u32) -> Vec<Node> {
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        self.stack.push(canonical);
        let lines = lex(file, text, self.diags);
        let mut root: Vec<Node> = Vec::new();
        let mut open: Vec<Open> = Vec::new();
        for line in lines {
            match line {
                Line::Open { tag, tag_location, arg } => {
                    let parent_bit = open.last().map_or(outer_bit, |o| o.bit);
                    let bit = match BLOCKS.iter().find(|(t, _, _)| *t == tag) {
                        Some((_, bit, parents)) => {
                            if parents & parent_bit == 0 {
                                self.diags.error(
                                    &tag_location,
                                    format!("<{tag}> is not allowed here: it belongs {}", belongs(*parents)),
                                );
                            }
                            *bit
                        }
                        None => {
                            let suggestion = suggest(&tag, BLOCKS.iter().map(|(t, _, _)| *t));
                            self.diags.error(&tag_location, format!("unknown block <{tag}>{suggestion}"));
                            0
                        }
                    };
                    open.push(Open { block: Block { tag, location: tag_location, arg, children: Vec::new() }, bit });
                }
                Line::Close { tag, location } => match open.pop() {
                    Some(o) if o.block.tag == tag => push(&mut root, &mut open, Node::Block(o.block)),
                    Some(o) => {
                        self.diags.error(
                            &location,
                            format!(
                                "mismatched </{tag}>: expected </{}> to close <{}> opened at {}",
                                o.block.tag,
                                o.block.tag,
                                o.block.location.file_line()
                            ),
                        );
                        // Assume the closing tag was mistyped: close the open block anyway so
                        // one typo does not cascade into errors on every later line.
                        push(&mut root, &mut open, Node::Block(o.block));
                    }
                    None => self.diags.error(&location, format!("unexpected </{tag}>: no block is open")),
                },
                Line::Directive { name, name_location, args, rest, full } => {
                    let here = open.last().map_or(outer_bit, |o| o.bit);
                    // A `domain-macro` list that ends in a bare `,` continues on the next line
                    // (`domain-macro big a.com,b.com,` then `c.com,d.com`), as installers write
                    // long lists.
                    if let Some(Node::Directive(prev)) = last_node(&mut root, &mut open)
                        && prev.name == "domain-macro"
                        && prev.args.len() > 1
                        && prev.args.last().is_some_and(|t| t.continues_list())
                    {
                        prev.rest.text.push(' ');
                        prev.rest.text.push_str(&rest.text);
                        prev.args.push(Token::bare(name, name_location));
                        prev.args.extend(args);
                        continue;
                    }
                    if name == "include" {
                        for node in self.include(&name_location, &args, path, here) {
                            push(&mut root, &mut open, node);
                        }
                    } else {
                        push(
                            &mut root,
                            &mut open,
                            Node::Directive(Directive { name, location: name_location, args, rest, full }),
                        );
                    }
                }
            }
        }
        while let Some(o) = open.pop() {
            let arg = o.block.arg.as_ref().map(|a| format!(" {}", a.text)).unwrap_or_default();
            self.diags
                .error(&o.block.location, format!("unterminated <{}{arg}>: missing </{}>", o.block.tag, o.block.tag));
            push(&mut root, &mut open, Node::Block(o.block));
        }
        self.stack.pop();
        root
    }

    /// Expands `include FILE|GLOB` into the nodes of the included files.
    fn include(&mut self, location: &Location, args: &[Token], including: &Path, bit: u32) -> Vec<Node> {
        const ALLOWED: u32 = scope::GLOBAL | scope::SOURCE | scope::DOMAIN | scope::VMTA | scope::SMTP_PATTERN_LIST;
        if bit & ALLOWED == 0 {
            self.diags.error(location, format!("include is not allowed here: it belongs {}", belongs(ALLOWED)));
            return Vec::new();
        }
        let [target] = args else {
            let message =
                if args.is_empty() { "include: missing file name" } else { "include: expected one file name or glob" };
            self.diags.error(location, message);
            return Vec::new();
        };
        if target.text.starts_with("http://") || target.text.starts_with("https://") {
            self.diags.error(
                &target.location,
                "include: remote configuration over HTTP(S) is not supported; copy the file locally",
            );
            return Vec::new();
        }
        let base = including.parent().unwrap_or(Path::new("."));
        let pattern = base.join(&target.text);
        let mut files: Vec<PathBuf> = Vec::new();
        if target.text.contains(['*', '?', '[']) {
            match glob::glob(&pattern.to_string_lossy()) {
                Ok(paths) => files.extend(paths.filter_map(Result::ok)),
                Err(e) => {
                    self.diags.error(&target.location, format!("include: invalid glob {:?}: {}", target.text, e.msg));
                    return Vec::new();
                }
            }
            files.sort();
            if files.is_empty() {
                self.diags.missing_include(
                    Severity::Warning,
                    &target.location,
                    &target.text,
                    format!("include: no file matches {:?}", target.text),
                );
            }
        } else {
            files.push(pattern);
        }
        let mut nodes = Vec::new();
        for file in files {
            let canonical = std::fs::canonicalize(&file).unwrap_or_else(|_| file.clone());
            if self.stack.contains(&canonical) {
                let chain: Vec<String> =
                    self.stack.iter().chain([&canonical]).map(|p| p.display().to_string()).collect();
                self.diags.error(&target.location, format!("include cycle: {}", chain.join(" -> ")));
                continue;
            }
            if self.stack.len() >= MAX_INCLUDE_DEPTH {
                self.diags.error(&target.location, format!("include: nested more than {MAX_INCLUDE_DEPTH} deep"));
                continue;
            }
            let display: Arc<str> = Arc::from(file.display().to_string());
            if let Some(text) = self.read(&file, &display, Some(&target.location)) {
                nodes.extend(self.parse_text(&display, &text, &file, bit));
            }
        }
        nodes
    }
}

/// The node written last in the block being filled.
fn last_node<'a>(root: &'a mut [Node], open: &'a mut [Open]) -> Option<&'a mut Node> {
    match open.last_mut() {
        Some(o) => o.block.children.last_mut(),
        None => root.last_mut(),
    }
}

fn push(root: &mut Vec<Node>, open: &mut [Open], node: Node) {
    match open.last_mut() {
        Some(o) => o.block.children.push(node),
        None => root.push(node),
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// ` (did you mean "x"?)` when a known name is within a small edit distance (a swapped pair of
/// letters counts as one edit: `$tdl` is closest to `$tld`).
pub fn suggest<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> String {
    let limit = |k: &str| 2.max(k.chars().count() / 4);
    let chars = name.chars().count();
    let letters = CharCounts::of(name);
    // Two lower bounds on the distance rule out almost every name before the length² distance
    // is computed: the difference in length, and half the letters one name has and the other
    // lacks (an insertion or a deletion changes one count, a substitution two, a transposition
    // none). Without them a file full of long unknown words cost length² per word and known
    // name (~500 directive names), most of the time of a config check.
    let best = known
        .filter(|k| chars.abs_diff(k.chars().count()) <= limit(k))
        .filter(|k| letters.difference(k).div_ceil(2) <= limit(k))
        .map(|k| (strsim::osa_distance(name, k), k))
        .filter(|(d, k)| *d <= limit(k) && *d > 0)
        .min_by_key(|(d, _)| *d);
    match best {
        Some((_, k)) => format!(" (did you mean \"{k}\"?)"),
        None => String::new(),
    }
}

/// How often each character occurs in a name: ASCII one by one, anything else together (a
/// coarser count only makes the bound weaker, never wrong).
struct CharCounts([u16; 129]);

impl CharCounts {
    fn of(name: &str) -> CharCounts {
        let mut counts = [0u16; 129];
        for c in name.chars() {
            let slot = &mut counts[(c as usize).min(128)];
            *slot = slot.saturating_add(1);
        }
        CharCounts(counts)
    }

    /// How many characters the two names do not have in common, counted both ways.
    fn difference(&self, other: &str) -> usize {
        let theirs = CharCounts::of(other);
        self.0.iter().zip(theirs.0.iter()).map(|(a, b)| a.abs_diff(*b) as usize).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The suggestion without the cheap bounds: the definition the filtered one must match.
    fn suggest_by_distance_alone(name: &str, known: &[&str]) -> String {
        let limit = |k: &str| 2.max(k.chars().count() / 4);
        match known
            .iter()
            .map(|k| (strsim::osa_distance(name, k), *k))
            .filter(|(d, k)| *d <= limit(k) && *d > 0)
            .min_by_key(|(d, _)| *d)
        {
            Some((_, k)) => format!(" (did you mean \"{k}\"?)"),
            None => String::new(),
        }
    }

    const NAMES: &[&str] = &[
        "max-smtp-out",
        "max-msg-rate",
        "retry-after",
        "bounce-after",
        "smtp-source-host",
        "dkim-sign",
        "dkim-identity",
        "use-starttls",
        "require-starttls",
        "mx-rollup",
        "queue-priority",
        "virtual-mta",
        "virtual-mta-pool",
        "$tld",
        "étiquette",
    ];

    #[test]
    fn common_typos_are_suggested() {
        assert_eq!(suggest("max-smpt-out", NAMES.iter().copied()), " (did you mean \"max-smtp-out\"?)");
        assert_eq!(suggest("$tdl", NAMES.iter().copied()), " (did you mean \"$tld\"?)");
        assert_eq!(suggest("virtual-mt", NAMES.iter().copied()), " (did you mean \"virtual-mta\"?)");
        assert_eq!(suggest("etiquette", NAMES.iter().copied()), " (did you mean \"étiquette\"?)");
        assert_eq!(suggest("completely-unrelated", NAMES.iter().copied()), "");
    }

    proptest! {
        /// Edits of known names (and of anything else) get the same suggestion with and without
        /// the bounds that skip hopeless names.
        #[test]
        fn bounds_never_change_the_suggestion(
            base in 0..NAMES.len(),
            edits in proptest::collection::vec((0usize..4, 0usize..40, proptest::char::range('$', 'z')), 0..4),
            other in "[a-z$é-]{0,20}",
        ) {
            let mut name: Vec<char> = NAMES[base].chars().collect();
            for (kind, at, c) in edits {
                let at = at % (name.len() + 1);
                match kind {
                    0 => name.insert(at, c),
                    1 if at < name.len() => { name.remove(at); }
                    2 if at < name.len() => name[at] = c,
                    3 if at + 1 < name.len() => name.swap(at, at + 1),
                    _ => {}
                }
            }
            let name: String = name.into_iter().collect();
            prop_assert_eq!(suggest(&name, NAMES.iter().copied()), suggest_by_distance_alone(&name, NAMES));
            prop_assert_eq!(suggest(&other, NAMES.iter().copied()), suggest_by_distance_alone(&other, NAMES));
        }
    }
}
