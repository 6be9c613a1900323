//! Builds the block tree of a configuration from its files: matches `<tag>` with `</tag>`,
//! splices `include`d files in place, and reports unbalanced or unreadable input.
//!
//! Owns file reading (UTF-8 checks), include resolution (relative paths, globs, cycles). Knows
//! nothing about what directives mean: that is `model.rs`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::diag::{Diagnostics, Location};
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
                let what = if from.is_some() { "include: cannot read" } else { "cannot read" };
                self.diags.error(&here, format!("{what} {}: {}", path.display(), io_reason(&e)));
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
                self.diags.warning(&target.location, format!("include: no file matches {:?}", target.text));
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
    // The distance is at least the difference in length: skipping hopeless names first keeps a
    // file full of long unknown words from costing length² per word and known name.
    let best = known
        .filter(|k| chars.abs_diff(k.chars().count()) <= limit(k))
        .map(|k| (strsim::osa_distance(name, k), k))
        .filter(|(d, k)| *d <= limit(k) && *d > 0)
        .min_by_key(|(d, _)| *d);
    match best {
        Some((_, k)) => format!(" (did you mean \"{k}\"?)"),
        None => String::new(),
    }
}
